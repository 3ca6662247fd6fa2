"""cpaas-cli: command-line operations toolkit for an A2P messaging platform."""

__version__ = "0.1.0"
