"""capsa: seal a finished analysis (SIF images, data, provenance) into one signed file.

The public API is what ``__all__`` lists, and the ``__all__`` of the packages it names:
``capsa.compare`` (comparators and verdicts) and ``capsa.replay`` (re-running a bundle).
Everything else is internal. Importing this module loads nothing but the errors: every other
name loads on first access (PEP 562), so ``capsa --help`` stays fast and the command can catch
Ctrl-C before it imports anything heavy (``capsa.__main__``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    Error,
    ExistsError,
    ExitCode,
    FormatError,
    IntegrityError,
    NotFoundError,
    ReplayError,
    RuntimeError_,
    SignatureError,
    UsageError,
)

# Public packages, imported on first access like the names below.
_PACKAGES = ("compare", "replay")

if TYPE_CHECKING:
    from .bundle import (
        Bundle,
        Member,
        MemberFile,
        PackResult,
        Problem,
        VerifyReport,
        pack,
        sign_bundle,
    )
    from .bundle import open_bundle as open
    from .format.manifest import FORMAT_VERSION, Manifest, Step, StepFile
    from .format.policy import BytesPolicy, ComparePolicy, Hdf5Policy, compare_policy
    from .recording.lineage import pack_from_journal
    from .recording.run import RunOutcome, run_step
    from .signing.envelopes import load_trusted_keys
    from .signing.keys import PrivateKey, PublicKey, keygen, load_private_key, load_public_key

# name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    **dict.fromkeys(
        ("Bundle", "Member", "MemberFile", "PackResult", "Problem", "VerifyReport", "pack"),
        "capsa.bundle",
    ),
    "sign_bundle": "capsa.bundle",
    "open": "capsa.bundle",
    **dict.fromkeys(("FORMAT_VERSION", "Manifest", "Step", "StepFile"), "capsa.format.manifest"),
    **dict.fromkeys(
        ("BytesPolicy", "ComparePolicy", "Hdf5Policy", "compare_policy"), "capsa.format.policy"
    ),
    "pack_from_journal": "capsa.recording.lineage",
    "RunOutcome": "capsa.recording.run",
    "run_step": "capsa.recording.run",
    "load_trusted_keys": "capsa.signing.envelopes",
    "PrivateKey": "capsa.signing.keys",
    "PublicKey": "capsa.signing.keys",
    "keygen": "capsa.signing.keys",
    "load_private_key": "capsa.signing.keys",
    "load_public_key": "capsa.signing.keys",
}

_RENAMED = {"open": "open_bundle"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _PACKAGES:
        return importlib.import_module(f"capsa.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'capsa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "BytesPolicy",
    "ComparePolicy",
    "Error",
    "ExistsError",
    "ExitCode",
    "FormatError",
    "Hdf5Policy",
    "IntegrityError",
    "Manifest",
    "Member",
    "MemberFile",
    "NotFoundError",
    "PackResult",
    "PrivateKey",
    "Problem",
    "PublicKey",
    "ReplayError",
    "RunOutcome",
    "RuntimeError_",
    "SignatureError",
    "Step",
    "StepFile",
    "UsageError",
    "VerifyReport",
    "__version__",
    "compare",
    "compare_policy",
    "keygen",
    "load_private_key",
    "load_public_key",
    "load_trusted_keys",
    "open",
    "pack",
    "pack_from_journal",
    "replay",
    "run_step",
    "sign_bundle",
]
