"""Typed errors. Every message says what went wrong *and* what to do about it.

Catch :class:`RtposeError` to handle anything rtpose raises on purpose; the CLI
prints these without a traceback and exits with status 2.
"""

from __future__ import annotations


class RtposeError(Exception):
    """Base class of every error rtpose raises on purpose."""


class ConfigError(RtposeError):
    """A command-line option, rules file or configuration value is invalid."""


class MissingDependencyError(RtposeError):
    """An optional package is needed for this feature; the message names the pip command."""


class SourceError(RtposeError):
    """A frame source failed: missing file, unplugged camera, wrong frame shape.

    ``source`` names the source (e.g. ``video:/data/m3.mp4`` or ``camera:0``).
    """

    def __init__(self, source: str, message: str):
        self.source = source
        super().__init__(f"{source}: {message}")


class CameraNotFoundError(SourceError):
    """No camera matches the spec (index past the end, unknown serial number, nothing connected)."""


class CameraInUseError(SourceError):
    """The camera exists but another program (or another rtpose run) holds it open."""


class CameraDisconnectedError(SourceError):
    """The camera went away during the run (unplugged, power or network lost). Everything recorded
    up to that frame stays on disk; ``frames`` says how many frames were read before."""

    def __init__(self, source: str, message: str, frames: int = 0):
        self.frames = frames
        super().__init__(source, message)


class ModelError(RtposeError):
    """A pose model cannot be loaded or does not carry what rtpose needs."""


class ModelInputError(ModelError):
    """Frames given to a model have the wrong shape, dtype or batch size."""


class ExportError(RtposeError):
    """A TensorFlow/DeepLabCut model could not be exported or failed its numeric check."""


class OutputDeviceError(RtposeError):
    """A hardware output (serial/TTL device) is missing, unplugged or not answering."""


class RecordingError(RtposeError):
    """A recording file cannot be opened or written."""
