"""Comparison policies: how replay compares a re-made output with the recorded one
(spec/format.md §7.5 "compare", spec/replay.md §3).

One model per method, told apart by ``method`` (a discriminated union), so a method's options
never become fields of another's: a new method is a new model here plus a comparator in
``capsa.compare``. The models are part of the format (the manifest schema lists each of them);
what a method *does* lives in its comparator.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from ..errors import UsageError
from .names import Decimal, explain

__all__ = [
    "METHODS",
    "MODELS",
    "BytesPolicy",
    "ComparePolicy",
    "CsvPolicy",
    "Hdf5Policy",
    "ImagePolicy",
    "JsonPolicy",
    "RootPolicy",
    "TextPolicy",
    "Tolerance",
    "compare_policy",
]


class _Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class BytesPolicy(_Policy):
    """Identical bytes (the same SHA-256); the default when an output has no policy."""

    method: Literal["bytes"] = "bytes"
    ignore_attrs: tuple[str, ...] | None = None
    """Format 1.1 wrote the HDF5 fields for every method; they have no effect here and a 1.2
    writer never writes them (kept so that 1.1 manifests read unchanged)."""
    rtol: Decimal | None = None
    """As ``ignore_attrs``: 1.1 compatibility only, no effect."""
    atol: Decimal | None = None
    """As ``ignore_attrs``: 1.1 compatibility only, no effect."""


class Hdf5Policy(_Policy):
    """The same HDF5 content: groups, datasets' dtype, shape and values, attributes; object
    modification times and storage layout never count."""

    method: Literal["hdf5"] = "hdf5"
    ignore_attrs: tuple[str, ...] = ()
    """HDF5 attributes whose values may differ: "/group/dataset@name", or "*@name" anywhere."""

    @field_validator("ignore_attrs")
    @classmethod
    def _rules(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for rule in v:
            obj, sep, name = rule.rpartition("@")
            if not sep or not name or not (obj == "*" or obj.startswith("/")):
                raise ValueError(
                    f"ignored attribute {rule!r} is not OBJECT@NAME "
                    "(e.g. /@kid, /group/dataset@name, or *@kid for any object)"
                )
        return v

    rtol: Decimal | None = None
    """Relative tolerance for floating-point values."""
    atol: Decimal | None = None
    """Absolute tolerance for floating-point values (and integers)."""


def _check_globs(v: tuple[str, ...], what: str) -> tuple[str, ...]:
    for g in v:
        if not g or "\x00" in g:
            raise ValueError(f"{what} {g!r} is not a glob pattern")
    return v


class Tolerance(_Policy):
    """A tolerance for the numbers at the places ``where`` matches (a glob: a ROOT branch,
    a CSV column, a JSON pointer), instead of the policy's ``rtol``/``atol``."""

    where: str
    rtol: Decimal | None = None
    atol: Decimal | None = None


class RootPolicy(_Policy):
    """The same ROOT content: directories, keys by name and class, TTree/RNTuple branches
    (types, entry counts, values), histograms, other objects by their streamed members; times,
    UUIDs, file names, cycles' bookkeeping and basket/compression layout never count."""

    method: Literal["root"] = "root"
    ignore_keys: tuple[str, ...] = ()
    """Keys (objects, directories) whose content is not compared: globs over their path in the
    file, e.g. "META/*" (``*`` within one path segment, ``**`` across segments)."""
    ignore_branches: tuple[str, ...] = ()
    """Branches or fields not compared: globs over TREE/BRANCH, e.g. "events/*_timing"."""
    rtol: Decimal | None = None
    """Relative tolerance for floating-point values (branches, histograms, object members)."""
    atol: Decimal | None = None
    """Absolute tolerance for floating-point values."""
    tolerances: tuple[Tolerance, ...] = ()
    """Per-branch tolerances (``where`` a glob over TREE/BRANCH); the first match wins."""

    @field_validator("ignore_keys", "ignore_branches")
    @classmethod
    def _globs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_globs(v, "pattern")


def _check_regexes(v: tuple[str, ...]) -> tuple[str, ...]:
    import re

    for rule in v:
        try:
            re.compile(rule)
        except re.error as e:
            raise ValueError(f"ignored line {rule!r} is not a regular expression ({e})") from None
    return v


class TextPolicy(_Policy):
    """The same lines, in order; lines matching ``ignore_lines`` are left out of both files
    (and named as ignored)."""

    method: Literal["text"] = "text"
    ignore_lines: tuple[str, ...] = ()
    """Python regular expressions searched in each line (without its line ending), e.g.
    "^# written at "."""

    @field_validator("ignore_lines")
    @classmethod
    def _regexes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_regexes(v)


class CsvPolicy(_Policy):
    """The same table: header, row count and every cell, column by column; numbers compare as
    numbers (with tolerances), everything else as text."""

    method: Literal["csv"] = "csv"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    """The field separator: "," (CSV), a tab (TSV), ";" or any one character."""
    ignore_columns: tuple[str, ...] = ()
    """Columns not compared, by header name (globs)."""
    ignore_lines: tuple[str, ...] = ()
    """Lines left out before the table is read (regular expressions), e.g. a "# generated"
    header."""
    rtol: Decimal | None = None
    """Relative tolerance for numeric cells."""
    atol: Decimal | None = None
    """Absolute tolerance for numeric cells."""
    tolerances: tuple[Tolerance, ...] = ()
    """Per-column tolerances (``where`` a glob over header names); the first match wins."""

    @field_validator("ignore_lines")
    @classmethod
    def _regexes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_regexes(v)

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v: str) -> str:
        if v in '"\r\n':
            raise ValueError(f"{v!r} cannot separate fields")
        return v


class JsonPolicy(_Policy):
    """The same JSON value: objects by key (any order), arrays by position, numbers as numbers
    (1 equals 1.0, NaN equals NaN), strings, booleans and null exactly."""

    method: Literal["json"] = "json"
    ignore_pointers: tuple[str, ...] = ()
    """Members not compared: JSON pointers (RFC 6901) or globs over them, e.g. "/created",
    "/runs/*/host" (``*`` within one segment, ``**`` across segments)."""
    rtol: Decimal | None = None
    """Relative tolerance for numbers."""
    atol: Decimal | None = None
    """Absolute tolerance for numbers."""
    tolerances: tuple[Tolerance, ...] = ()
    """Per-member tolerances (``where`` a pointer glob); the first match wins."""

    @field_validator("ignore_pointers")
    @classmethod
    def _pointers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for g in v:
            if not g.startswith("/"):
                raise ValueError(f"ignored pointer {g!r} does not start with /")
        return v


class ImagePolicy(_Policy):
    """The same picture: frames, dimensions, mode and every pixel; metadata (text chunks,
    EXIF, resolution) and the encoding never count."""

    method: Literal["image"] = "image"
    pixel_tolerance: int = Field(default=0, ge=0)
    """A pixel is the same when no channel differs by more than this (in the image's own
    units: 0 to 255 for 8-bit images)."""
    max_differing: Decimal | None = None
    """The fraction of pixels allowed to differ beyond ``pixel_tolerance`` (e.g. "0.001")."""


_Any = BytesPolicy | Hdf5Policy | RootPolicy | TextPolicy | CsvPolicy | JsonPolicy | ImagePolicy
ComparePolicy = Annotated[_Any, Field(discriminator="method")]
"""A comparison policy of any method (the manifest's ``compare`` field)."""

_ADAPTER: TypeAdapter[_Any] = TypeAdapter(ComparePolicy)
METHODS: tuple[str, ...] = ("bytes", "hdf5", "root", "text", "csv", "json", "image")
"""Every method the format defines, in the order help texts list them."""
MODELS: dict[str, type[_Policy]] = {
    "bytes": BytesPolicy,
    "hdf5": Hdf5Policy,
    "root": RootPolicy,
    "text": TextPolicy,
    "csv": CsvPolicy,
    "json": JsonPolicy,
    "image": ImagePolicy,
}
"""The model of each method (what options it takes: its fields)."""


def compare_policy(method: str = "bytes", **options: Any) -> _Any:
    """The policy of ``method`` with ``options`` (UsageError for an unknown method or option)."""
    if method not in METHODS:
        raise UsageError(f"unknown comparison {method!r}", hint=f"use one of {', '.join(METHODS)}")
    try:
        return _ADAPTER.validate_python({"method": method, **options}, strict=False)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"][1:])
        raise UsageError(
            f"invalid {method} comparison policy{f' ({loc})' if loc else ''}: {explain(err)}"
        ) from None
