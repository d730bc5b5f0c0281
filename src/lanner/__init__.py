"""lanner: a fast multi-protocol proxy gateway."""

__version__ = "0.1.0"
