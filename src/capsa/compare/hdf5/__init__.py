"""The ``hdf5`` comparator: a canonical content digest and a semantic diff of HDF5 files
(spec/format.md §7.5 "HDF5 content", spec/replay.md §4).

Replay must decide whether a re-made HDF5 output is the same as the recorded one when its bytes
are not: HDF5 writes object modification times, and the same data can be stored contiguous or
chunked, compressed or not, with old or new file-format structures. Those are never content. What
is content: the tree of groups, datasets and committed datatypes (by sorted link name), soft and
external links by their target, each dataset's datatype, shape and values, and every attribute's
datatype, shape and value. A policy (:class:`~capsa.format.policy.Hdf5Policy`) can also ignore
named attributes (``/path@name``, ``*@name``) and allow numeric tolerances
(``|a - b| <= atol + rtol * |b|``).

Datasets are read in blocks of at most ``BLOCK_BYTES`` (the two files in step, block by block), so
memory stays bounded whatever the file size. ``b`` is the reference: "missing" means in ``b`` but
not in ``a``; relative differences are relative to ``|b|``. Importing this package imports h5py's
dependency numpy, never h5py itself until a file is opened.
"""

from __future__ import annotations

from ._encode import _selections
from ._h5 import EXIT_DIFFERENT, KINDS
from .diff import Hdf5Comparator, compare, diff
from .digest import content_digest
from .limits import BLOCK_BYTES
from .policy import make_policy
from .report import H5Difference

__all__ = [
    "BLOCK_BYTES",
    "EXIT_DIFFERENT",
    "KINDS",
    "H5Difference",
    "Hdf5Comparator",
    "_selections",
    "compare",
    "content_digest",
    "diff",
    "make_policy",
]
