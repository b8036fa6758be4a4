"""Naming what to compare on the command line: a path, or ``BUNDLE.capsa:member/path`` — a
member read in place from a bundle."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..bundle import open_bundle
from .base import Source

__all__ = ["open_source"]


@contextlib.contextmanager
def open_source(spec: str | os.PathLike[str]) -> Iterator[Source]:
    """A path as given, or for ``BUNDLE.capsa:member/path`` the member read in place."""
    text = os.fspath(spec)
    if ".capsa:" in text and not Path(text).exists():
        bundle, _, member = text.partition(".capsa:")
        with open_bundle(bundle + ".capsa") as b, b.open_member(member) as f:
            yield f
    else:
        yield text
