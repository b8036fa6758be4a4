"""Opening ROOT files with uproot, walking their keys, and reading any object as plain data;
every failure of a damaged file becomes one FormatError naming the file."""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import FormatError, UsageError
from ..registry import require

DIR_CLASSES = ("TDirectory", "TDirectoryFile")
TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD")
RNTUPLE = "ROOT::RNTuple"


def uproot() -> Any:
    require("awkward", "root", "ROOT files")
    return require("uproot", "root", "ROOT files")


def _damaged() -> tuple[type[BaseException], ...]:
    up = uproot()
    kinds: list[type[BaseException]] = [
        OSError,
        ValueError,
        zlib.error,
        struct.error,
        IndexError,
        KeyError,
        EOFError,
        ArithmeticError,
        up.deserialization.DeserializationError,
    ]
    with contextlib.suppress(ImportError):
        import cramjam

        kinds.append(cramjam.DecompressionError)
    return tuple(kinds)


def cannot_interpret() -> tuple[type[BaseException], ...]:
    """What uproot raises for data it cannot turn into arrays (not damage): read raw bytes."""
    up = uproot()
    kinds: list[type[BaseException]] = [
        NotImplementedError,
        TypeError,
        ValueError,
        AttributeError,
        ArithmeticError,
        up.deserialization.DeserializationError,
    ]
    with contextlib.suppress(AttributeError):
        kinds.append(up.interpretation.objects.CannotBeAwkward)
    with contextlib.suppress(AttributeError):
        kinds.append(up.interpretation.identify.UnknownInterpretation)
    return tuple(kinds)


@contextlib.contextmanager
def reading(label: str) -> Iterator[None]:
    """Turns uproot's and the decompressors' errors into one FormatError for ``label``."""
    try:
        yield
    except (FormatError, UsageError):
        raise
    except _damaged() as e:
        first = " ".join(str(e).split()) or type(e).__name__
        if len(first) > 160:
            first = first[:159] + "…"
        raise FormatError(f"not a readable ROOT file: {first}", where=label) from e


def open_root(source: Any, label: str) -> Any:
    up = uproot()
    if not isinstance(source, (str, os.PathLike)):
        source.seek(0)
    with reading(label):
        head = _head(source)
        if head != b"root":
            raise FormatError("not a ROOT file (no 'root' signature)", where=label)
        return up.open(
            os.fspath(source) if isinstance(source, (str, os.PathLike)) else source,
            array_cache=None,
            object_cache=None,
        )


def _head(source: Any) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        with Path(source).open("rb") as f:
            return f.read(4)
    source.seek(0)
    head = source.read(4)
    source.seek(0)
    return bytes(head)


def walk(
    directory: Any, label: str, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, key) of the highest cycle of every name, depth first. The key list itself is read
    (not ``keys()``), so names holding "/" (KM3NeT's ``chi2/NDF``) stay one segment."""
    with reading(label):
        keys = list(directory._keys)
    best: dict[str, Any] = {}
    for k in keys:
        if k.fName not in best or k.fCycle > best[k.fName].fCycle:
            best[k.fName] = k
    for name in sorted(best):
        key = best[name]
        path = (*prefix, name)
        yield path, key
        if key.fClassName in DIR_CLASSES:
            with reading(label):
                sub = key.get()
            yield from walk(sub, label, path)


def cycles(directory: Any, label: str, prefix: tuple[str, ...] = ()) -> dict[str, list[int]]:
    """Every name's cycles (bookkeeping: what the comparison does not count)."""
    with reading(label):
        keys = list(directory._keys)
    out: dict[str, list[int]] = {}
    for k in keys:
        out.setdefault("/".join((*prefix, k.fName)), []).append(k.fCycle)
    return {k: sorted(v) for k, v in out.items()}


def raw_payload(key: Any, label: str) -> bytes:
    """The uncompressed streamed bytes of the object behind ``key`` (for classes uproot cannot
    read): exact, and free of compression and file offsets."""
    with reading(label):
        chunk, cursor = key.get_uncompressed_chunk_cursor()
        return bytes(chunk.get(cursor.index, cursor.index + key.fObjlen, cursor, {}).tobytes())


def canon(x: Any) -> Any:
    """Any uproot object as plain data: its class, every base's members (a TH1D's bin contents
    live in its TArrayD base, which ``tojson()`` drops) and every member, recursively."""
    import numpy as np

    up = uproot()
    from collections.abc import Sequence

    if isinstance(x, up.model.Model):
        d: dict[str, Any] = {"_class": x.classname}
        for base in x.bases:
            for k, v in canon(base).items():
                if k != "_class":
                    d[k if k not in d else f"{base.classname}::{k}"] = v
        d.update({k: canon(v) for k, v in x.members.items()})
        if isinstance(x, str):
            d["fString"] = str(x)
        elif isinstance(x, up.models.TArray.Model_TArray):
            d["fArray"] = np.asarray(x).tolist()
        elif isinstance(x, Sequence):
            d["_items"] = [canon(v) for v in x]
        return d
    if isinstance(x, dict):
        return {str(k): canon(v) for k, v in x.items()}
    if isinstance(x, up.containers.STLMap):
        return [[canon(k), canon(v)] for k, v in x.items()]
    if isinstance(x, (up.containers.Container, list, tuple)):
        return [canon(v) for v in (x.tolist() if hasattr(x, "tolist") else x)]
    if isinstance(x, np.ndarray):
        return x.tolist() if x.dtype != object else [canon(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, bytes):
        return x.hex()
    if isinstance(x, str):
        return str(x)
    return x
