"""``content_digest``: one SHA-256 over an HDF5 file's content (spec/format.md §7.5 "Digest")."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ...format.policy import BytesPolicy, Hdf5Policy
from . import limits
from ._encode import (
    _attr_names,
    _block_elements,
    _dataset_shape,
    _describe_dtype,
    _Encoder,
    _read,
    _read_attr,
    _selections,
)
from ._h5 import _OBJECTS, _U64, MAGIC, Array, _open_h5, _open_object, _walk
from .policy import _rules


def _frame(h: Any, obj: Any) -> None:
    data = (
        obj
        if isinstance(obj, bytes)
        else json.dumps(
            obj,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8", "surrogateescape")
    )
    h.update(_U64.pack(len(data)))
    h.update(data)


def _buffer(x: bytes | Array) -> bytes:
    """What hashlib takes: bytes as they are, a C-contiguous array without a copy."""
    return x if isinstance(x, bytes) else x.reshape(-1).view(np.uint8)  # type: ignore[return-value]


def content_digest(source: Any, policy: Hdf5Policy | BytesPolicy | None = None) -> str:
    """``sha256:<hex>`` of the HDF5 content (spec/format.md §7.5, "HDF5 content").

    ``source``: a path, a seekable binary file object, or an open ``h5py.File``. Of the policy
    only ``ignore_attrs`` counts (tolerances cannot be hashed). Raises `FormatError` for a file
    that is not HDF5, `NotFoundError` for a missing one.
    """
    rules = _rules(policy)
    h = hashlib.sha256()
    with _open_h5(source) as (f, _where):
        _frame(h, MAGIC)
        nodes, seen = _walk(f)
        enc = _Encoder(f, seen)
        for node in nodes:
            header: dict[str, Any] = {"path": node.path, "kind": node.kind}
            if node.kind not in _OBJECTS:
                header["target"] = node.target
                if node.kind == "extlink":
                    header["file"] = node.file
                _frame(h, header)
                continue
            oid, obj = _open_object(f, node)
            names = [n for n in _attr_names(oid) if rules.ignored(node.path, n) is None]
            header["attributes"] = len(names)
            if node.kind != "group":
                header["dtype"] = _describe_dtype(oid.dtype)
            shape = _dataset_shape(obj) if obj is not None else None
            if obj is not None:
                header["shape"] = None if shape is None else list(shape)
            _frame(h, header)
            for name in names:
                attr = _read_attr(oid, name)
                _frame(h, attr.header(name))
                if attr.value is not None:
                    vdt = attr.dtype if attr.dtype.kind == "O" else None
                    h.update(_buffer(enc.array(attr.value, vdt, inplace=True)))
            if shape is not None:
                limit = _block_elements(obj.dtype, limits.BLOCK_BYTES)
                vdt = obj.dtype if obj.dtype.kind == "O" else None
                for sel, _start in _selections(shape, limit, obj.chunks):
                    h.update(_buffer(enc.array(_read(obj, sel), vdt, inplace=True)))
    return "sha256:" + h.hexdigest()
