"""Where poses go: every output of the pipeline is a :class:`Sink`."""

from .base import Sink

__all__ = ["Sink"]
