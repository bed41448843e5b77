"""lipstream: real-time talking-avatar streaming server."""

__version__ = "0.1.0"
