"""Reading a replay report back: the JSON of ``capsa replay --json`` (replay/report.py's
dataclasses as dicts), checked field by field, so a damaged or foreign file is one clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from ...errors import FormatError, NotFoundError
from ...replay.report import ReplayReport

__all__ = ["load_replay", "replay_from_dict"]

_MAX = 256 << 20
_ADAPTER: TypeAdapter[ReplayReport] = TypeAdapter(ReplayReport)


def replay_from_dict(doc: object, *, where: str = "replay report") -> ReplayReport:
    """A :class:`ReplayReport` from its dict form; extra keys (``ok``, ``counts``) are ignored."""
    if not isinstance(doc, dict):
        raise FormatError("not a replay report: not a JSON object", where=where)
    try:
        return _ADAPTER.validate_python(doc)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise FormatError(
            f"not a replay report: {loc or 'top level'}: {err['msg']}",
            where=where,
            hint="give the output of `capsa replay --json`",
        ) from None


def load_replay(path: str | os.PathLike[str]) -> ReplayReport:
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(_MAX + 1)
    except FileNotFoundError:
        raise NotFoundError("no such replay report", where=str(p)) from None
    except IsADirectoryError:
        raise FormatError("is a directory, not a replay report", where=str(p)) from None
    if len(data) > _MAX:
        raise FormatError(f"replay report larger than {_MAX >> 20} MiB", where=str(p))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(
            f"not JSON: {e}", where=str(p), hint="give the output of `capsa replay --json`"
        ) from None
    return replay_from_dict(doc, where=str(p))
