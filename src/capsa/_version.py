"""The version of capsa (the package; the format version is capsa.FORMAT_VERSION)."""

__version__ = "0.2.0"
