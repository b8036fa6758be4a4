"""Import a tool's own provenance log (ctapipe, km3pipe/thepipe) as a step annotation
(spec/recording.md §5). The log is kept byte for byte; it is parsed only to check it and to
recognise its layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import FormatError

__all__ = ["MAX_LOG", "detect"]

MAX_LOG = 64 << 20


def _activities(doc: Any) -> list[dict[str, Any]] | None:
    if isinstance(doc, list) and doc and all(isinstance(a, dict) for a in doc):
        return doc
    if isinstance(doc, dict):
        for key in ("activities", "provenance"):
            if isinstance(doc.get(key), list):
                return _activities(doc[key])
    return None


def detect(path: Path) -> tuple[str, int]:
    """(format, number of activities) of a provenance log; FormatError if it is not one."""
    try:
        if path.stat().st_size > MAX_LOG:
            raise FormatError(f"provenance file larger than {MAX_LOG} bytes", where=str(path))
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise FormatError(
            "provenance file was not written",
            where=str(path),
            hint="check the path the tool writes its provenance to",
        ) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(
            f"malformed provenance file (not JSON): {e}".splitlines()[0], where=str(path)
        ) from e
    acts = _activities(doc)
    if acts is None:
        if isinstance(doc, dict):
            return "json", 0
        raise FormatError(
            "malformed provenance file: expected a JSON object or a list of activities",
            where=str(path),
        )
    keys = set().union(*(a.keys() for a in acts))
    if {"activity_name", "activity_uuid"} & keys:
        return "ctapipe", len(acts)
    if {"uuid", "name"} <= keys and ({"input", "output", "parameters"} & keys):
        return "km3pipe", len(acts)
    return "json", len(acts)
