"""rtpose: real-time closed-loop pose inference for animal-behaviour labs."""

__version__ = "0.1.0"
