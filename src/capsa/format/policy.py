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
    "BytesPolicy",
    "ComparePolicy",
    "Hdf5Policy",
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


ComparePolicy = Annotated[BytesPolicy | Hdf5Policy, Field(discriminator="method")]
"""A comparison policy of any method (the manifest's ``compare`` field)."""

_ADAPTER: TypeAdapter[BytesPolicy | Hdf5Policy] = TypeAdapter(ComparePolicy)
METHODS: tuple[str, ...] = ("bytes", "hdf5")
"""Every method the format defines, in the order help texts list them."""


def compare_policy(method: str = "bytes", **options: Any) -> BytesPolicy | Hdf5Policy:
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
