"""Helpers shared by several layers; not public API."""
