"""capsa: seal a finished analysis (SIF images, HDF5 data, provenance) into one signed file.

The public API is what ``__all__`` lists; everything else is internal. This module must stay
cheap to import (no h5py), because ``capsa --help`` imports it.
"""

from __future__ import annotations

from .bundle import Bundle, Member, MemberFile, PackResult, open_bundle, pack
from .errors import (
    Error,
    ExistsError,
    FormatError,
    IntegrityError,
    NotFoundError,
    ReplayError,
    RuntimeError_,
    SignatureError,
    UsageError,
)
from .format.manifest import FORMAT_VERSION, Manifest

open = open_bundle

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "Error",
    "ExistsError",
    "FormatError",
    "IntegrityError",
    "Manifest",
    "Member",
    "MemberFile",
    "NotFoundError",
    "PackResult",
    "ReplayError",
    "RuntimeError_",
    "SignatureError",
    "UsageError",
    "__version__",
    "open",
    "pack",
]
