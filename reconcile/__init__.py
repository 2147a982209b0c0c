"""reconcile: declarative package layering for OSTree systems."""

__version__ = "0.1.0"
