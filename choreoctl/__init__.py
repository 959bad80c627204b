"""choreoctl: install and manage a multi-plane internal developer platform."""

__version__ = "0.1.0"
