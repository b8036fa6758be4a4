"""The comparator registry and the one verdict rule (spec/replay.md §3).

Comparators register by method with a cheap content sniff, and load on first use (h5py, uproot
and the like stay unimported until a file of theirs is compared). ``compare`` is what replay and
``capsa diff`` call: identical bytes first; then the policy's comparator; under the strict
``bytes`` policy a comparator that recognises the files still *explains* what differs.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import FormatError, NotFoundError, UsageError
from ..format.policy import BytesPolicy, ComparePolicy, compare_policy
from .base import Comparator, Comparison, Diff, Difference, Source

__all__ = [
    "ComparatorEntry",
    "comparator",
    "compare",
    "detect",
    "detect_policy",
    "method_for_media_type",
    "methods",
    "register_comparator",
    "require",
    "same_bytes",
]

SNIFF_BYTES = 4096


@dataclass(frozen=True)
class ComparatorEntry:
    """A comparator as the registry knows it before loading it."""

    method: str
    label: str
    """What it compares, for messages ("HDF5 content")."""
    sniff: Callable[[bytes], bool] | None
    """Whether the first SNIFF_BYTES of a file (all of it when shorter) are of its kind
    (None: never by content). Sniffs are tried in registration order; the first wins."""
    load: Callable[[], Comparator]
    equivalent_note: str = ""
    """What never counts as content, said when an output is equivalent."""
    defaults: Callable[[bytes], dict[str, Any]] | None = None
    """Policy options read off the reference's first bytes (the csv delimiter)."""
    media_types: tuple[str, ...] = ()
    """Recorded media types of its files (a hint when content sniffing finds nothing)."""


_REGISTRY: dict[str, ComparatorEntry] = {}
_LOADED: dict[str, Comparator] = {}


def register_comparator(entry: ComparatorEntry) -> None:
    _REGISTRY[entry.method] = entry
    _LOADED.pop(entry.method, None)


def methods() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def entry(method: str) -> ComparatorEntry:
    found = _REGISTRY.get(method)
    if found is None:
        raise UsageError(
            f"unknown comparison {method!r}", hint=f"use one of {', '.join(methods())}"
        )
    return found


def comparator(method: str) -> Comparator:
    if method not in _LOADED:
        _LOADED[method] = entry(method).load()
    return _LOADED[method]


def _head(source: Source) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        try:
            with Path(source).open("rb") as f:
                return f.read(SNIFF_BYTES)
        except FileNotFoundError:
            raise NotFoundError("no such file", where=os.fspath(source)) from None
        except IsADirectoryError:
            raise FormatError("is a directory, not a file", where=os.fspath(source)) from None
    source.seek(0)
    data = source.read(SNIFF_BYTES)
    source.seek(0)
    return bytes(data)


def detect(*sources: Source) -> str | None:
    """The method whose sniff recognises every one of ``sources``, or None."""
    heads = [_head(s) for s in sources]
    for e in _REGISTRY.values():
        if e.sniff is not None and all(e.sniff(h) for h in heads):
            return e.method
    return None


def detect_policy(a: Source, b: Source, **options: Any) -> ComparePolicy | None:
    """The default policy of the method that recognises both files (``b`` the reference),
    with the options its sniff reads off ``b`` and then ``options``; None if no method does."""
    method = detect(a, b)
    if method is None:
        return None
    found = entry(method)
    defaults = found.defaults(_head(b)) if found.defaults else {}
    return compare_policy(method, **(defaults | options))


def method_for_media_type(media_type: str | None) -> str | None:
    """The method whose files have this recorded media type, if any."""
    return next((e.method for e in _REGISTRY.values() if media_type in e.media_types), None)


def require(module: str, extra: str, what: str) -> Any:
    """Import ``module`` for a comparator, or one clear line saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(
            f"comparing {what} needs the Python package {module.split('.')[0]}, "
            "which is not installed",
            hint=f"pip install 'capsa[{extra}]'",
        ) from None


@contextlib.contextmanager
def _opened(source: Source) -> Iterator[BinaryIO | io.RawIOBase]:
    if isinstance(source, (str, os.PathLike)):
        try:
            f = Path(source).open("rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise NotFoundError("no such file", where=os.fspath(source)) from None
        except IsADirectoryError:
            raise FormatError("is a directory, not a file", where=os.fspath(source)) from None
        with f:
            yield f
    else:
        source.seek(0)
        try:
            yield source
        finally:
            source.seek(0)


def first_difference(a: Source, b: Source) -> tuple[int | None, int, int]:
    """(offset of the first differing byte or None, size of a, size of b), streamed."""
    with _opened(a) as fa, _opened(b) as fb:
        sizes = []
        for f in (fa, fb):
            f.seek(0, os.SEEK_END)
            sizes.append(f.tell())
            f.seek(0)
        offset = 0
        while True:
            x, y = _read_full(fa, 1 << 20), _read_full(fb, 1 << 20)
            if x != y:
                n = next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), None)
                return offset + (n if n is not None else min(len(x), len(y))), sizes[0], sizes[1]
            if not x:
                return None, sizes[0], sizes[1]
            offset += len(x)


def same_bytes(a: Source, b: Source) -> bool:
    return first_difference(a, b)[0] is None


def _read_full(f: Any, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end (raw files may return short reads)."""
    data = f.read(n)
    while data and len(data) < n:
        more = f.read(n - len(data))
        if not more:
            break
        data += more
    return bytes(data)


def _label(source: Source, given: str | None) -> str:
    if given:
        return given
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, (str, os.PathLike)) else f"<{type(source).__name__}>"


def compare(
    a: Source,
    b: Source,
    policy: ComparePolicy | None = None,
    *,
    method: str | None = None,
    max_items: int = 10,
    names: tuple[str, str] | None = None,
) -> Comparison:
    """The verdict on ``a`` against the reference ``b`` under ``policy`` (default: bytes).

    ``identical`` when the bytes are; else the policy's comparator decides ``equivalent`` or
    ``different``. Under ``bytes`` the verdict is ``different``, and ``method`` (or the
    comparator that recognises both files) says what differs — or that the content is the same.
    """
    la, lb = _label(a, names and names[0]), _label(b, names and names[1])
    offset, size_a, size_b = first_difference(a, b)
    if offset is None:
        return Comparison("identical", Diff(la, lb), method=policy.method if policy else "bytes")
    policy = policy if policy is not None else BytesPolicy()
    if policy.method != "bytes":
        d = comparator(policy.method).diff(a, b, policy, max_items=max_items, names=(la, lb))
        return Comparison("different" if d.differences else "equivalent", d, method=policy.method)
    explain = method or detect(a, b)
    detail: dict[str, Any] = {"offset": offset, "size_a": size_a, "size_b": size_b}
    detail["text"] = f"first differing byte at offset {offset} (sizes {size_a} and {size_b})"
    plain = Diff(la, lb, [Difference("", "bytes", detail)])
    if explain is None or explain == "bytes":
        return Comparison("different", plain, "bytes differ")
    try:
        found = detect_policy(a, b)  # with what the content says (a TSV's delimiter)
        default = found if found is not None and found.method == explain else None
        default = default or compare_policy(explain)
        d = comparator(explain).diff(a, b, default, max_items=max_items, names=(la, lb))
    except (FormatError, UsageError) as e:
        # Explaining is best effort: the verdict is the same, the reason is said.
        return Comparison("different", plain, f"bytes differ; not compared as {explain}: {e.what}")
    note = (
        ""
        if d.differences
        else (f"same {entry(explain).label} but different bytes; the policy is bytes")
    )
    return Comparison("different", d, note, method="bytes", explained_by=explain)
