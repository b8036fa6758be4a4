"""Import a tool's own provenance log (ctapipe, km3pipe/thepipe) as a step annotation
(spec/recording.md §5). The log is kept byte for byte; it is parsed only to check it and to
recognise its layout."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import FormatError

__all__ = ["MAX_LOG", "detect", "read_log"]

MAX_LOG = 64 << 20


def _activities(doc: Any) -> list[dict[str, Any]] | None:
    if isinstance(doc, list) and doc and all(isinstance(a, dict) for a in doc):
        return doc
    if isinstance(doc, dict):
        for key in ("activities", "provenance"):
            if isinstance(doc.get(key), list):
                return _activities(doc[key])
    return None


def read_log(fd: int, where: str) -> bytes:
    """The bytes of a provenance log open at ``fd`` (closed here), at most MAX_LOG of them."""
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_LOG + 1)
    if len(data) > MAX_LOG:
        raise FormatError(f"provenance file larger than {MAX_LOG} bytes", where=where)
    return data


def detect(data: bytes, where: str) -> tuple[str, int]:
    """(format, number of activities) of a provenance log; FormatError if it is not one."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(
            f"malformed provenance file (not JSON): {e}".splitlines()[0], where=where
        ) from e
    acts = _activities(doc)
    if acts is None:
        if isinstance(doc, dict):
            return "json", 0
        raise FormatError(
            "malformed provenance file: expected a JSON object or a list of activities",
            where=where,
        )
    keys = set().union(*(a.keys() for a in acts))
    if {"activity_name", "activity_uuid"} & keys:
        return "ctapipe", len(acts)
    if {"uuid", "name"} <= keys and ({"input", "output", "parameters"} & keys):
        return "km3pipe", len(acts)
    return "json", len(acts)
