"""Recorded vs replayed values of a dataset that differs, sampled for a small plot.

The replay JSON holds only summaries (how many elements differ, the first indices, the largest
absolute and relative difference); those are always plotted (:func:`.svg.difference_bars`). When
the replayed files are still there (``capsa replay --keep``: the report's ``workdir`` names them)
the values themselves are read, a few hundred at most: every k-th element along the first axis
plus the first differing ones, the first element of any other axes, one numeric field of a
compound dataset. Memory stays bounded by the number of points, whatever the dataset's size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..._internal.fs import open_regular, open_root
from ...bundle import Bundle
from ...errors import Error

__all__ = ["POINTS", "Series", "replayed_file", "sample_pair"]

POINTS = 300


@dataclass
class Series:
    dataset: str
    field: str
    index: list[int]
    """Positions along the first axis."""
    recorded: list[float]
    replayed: list[float]
    length: int


def replayed_file(workdir: str | None, step_index: int, step_name: str, path: str) -> int | None:
    """An fd of the replayed output ``path`` of a kept replay directory, read without following
    links (replay/engine.py's layout: ``NNN-<step>/work/<path>``), or None when it is gone."""
    if not workdir:
        return None
    try:
        root = open_root(Path(workdir))
    except OSError:
        return None
    try:
        return open_regular(root, f"{step_index + 1:03d}-{step_name}/work/{path}")
    except (OSError, Error):
        return None
    finally:
        os.close(root)


def sample_pair(
    b: Bundle, digest: str, replayed_fd: int, wanted: list[dict[str, Any]]
) -> list[Series]:
    """Sampled series for each data difference in ``wanted`` (dicts of replay's report), from the
    recorded blob ``digest`` and the replayed file; anything not plottable is left out."""
    try:
        import h5py  # type: ignore[import-untyped]
        import numpy as np
    except ImportError:  # pragma: no cover - h5py is a dependency
        return []
    out: list[Series] = []
    with os.fdopen(os.dup(replayed_fd), "rb") as replayed, b.open_blob(digest) as recorded:
        try:
            fa, fb = h5py.File(recorded, "r"), h5py.File(replayed, "r")
        except (OSError, ValueError):
            return []
        with fa, fb:
            for diff in wanted:
                try:
                    s = _sample(fa, fb, diff, h5py, np)
                except (OSError, ValueError, TypeError, KeyError, IndexError):
                    s = None
                if s is not None:
                    out.append(s)
    return out


def _sample(fa: Any, fb: Any, diff: dict[str, Any], h5py: Any, np: Any) -> Series | None:
    path = diff.get("path")
    if not isinstance(path, str) or path not in fa or path not in fb:
        return None
    da, db = fa[path], fb[path]
    if not isinstance(da, h5py.Dataset) or not isinstance(db, h5py.Dataset):
        return None
    if not da.shape or not db.shape:
        return None
    field = ""
    if da.dtype.names:
        fields = (diff.get("detail") or {}).get("fields") or {}
        names = [n for n in da.dtype.names if n in fields] or list(da.dtype.names)
        numeric = [n for n in names if da.dtype[n].kind in "iufb" and not da.dtype[n].shape]
        if not numeric or numeric[0] not in (db.dtype.names or ()):
            return None
        field = numeric[0]
    elif da.dtype.kind not in "iufb" or db.dtype.kind not in "iufb":
        return None
    n = min(da.shape[0], db.shape[0])
    if n == 0:
        return None
    step = max(1, math.ceil(n / POINTS))
    index = set(range(0, n, step))
    for first in (diff.get("detail") or {}).get("first") or []:
        if isinstance(first, list) and first and isinstance(first[0], int) and 0 <= first[0] < n:
            index.add(first[0])
    picks = sorted(index)
    rest = (0,) * (len(da.shape) - 1)
    if len(db.shape) != len(da.shape) or any(s == 0 for s in (*da.shape[1:], *db.shape[1:])):
        return None

    def read(d: Any) -> list[float]:
        src = d.fields(field) if field else d
        values = np.asarray(src[(picks, *rest)], dtype=np.float64).reshape(-1)
        return [float(v) for v in values]

    return Series(path, field, picks, read(da), read(db), n)
