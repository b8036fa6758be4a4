"""The manifest: pydantic models, canonical JSON encoding and decoding (spec/format.md §7-§8).

The models are the single source of spec/manifest.schema.json (``python -m capsa.schema``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import FormatError

__all__ = [
    "FORMAT_VERSION",
    "Author",
    "Bind",
    "Blob",
    "BundleMeta",
    "ComparePolicy",
    "FileEntry",
    "HostInfo",
    "Identifier",
    "Manifest",
    "ProvenanceRecord",
    "RuntimeInfo",
    "Step",
    "StepFile",
    "canonical_json",
    "parse_manifest",
    "schema",
]

FORMAT_VERSION = "1.1"
"""The capsa bundle format version this code writes and the newest it reads (spec §9)."""
MAJOR, MINOR = (int(x) for x in FORMAT_VERSION.split("."))
MEDIA_TYPE = "application/vnd.capsa.bundle+zip"
MAX_MANIFEST = 64 << 20

Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$", description="sha256:<64 hex>")]
MAX_PATH_BYTES = 4096
"""Longest logical or container path, in bytes of UTF-8 (spec §2)."""
MAX_STEP_NAME_BYTES = 200
"""Longest step name, in bytes of UTF-8: ``logs/<name>.stdout`` must stay one file name (§2.1)."""


def _utf8_at_most(limit: int) -> AfterValidator:
    def check(v: str) -> str:
        try:
            n = len(v.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("not valid UTF-8 (a lone surrogate)") from None
        if n > limit:
            raise ValueError(f"{n} bytes of UTF-8, more than {limit}")
        return v

    return AfterValidator(check)


# Logical paths: relative, '/'-separated, no empty, '.' or '..' segments, no NUL/backslash.
_CHAR = r"[^/\\\x00-\x1f]"
_NODOT = r"[^/\\\x00-\x1f.]"
# Any segment but "." and "..", without look-around (pydantic's regex engine has none).
_SEGMENT = rf"(?:{_NODOT}{_CHAR}*|\.{_NODOT}{_CHAR}*|\.\.{_CHAR}+)"
LogicalPath = Annotated[
    str,
    Field(
        pattern=rf"^{_SEGMENT}(/{_SEGMENT})*$",
        max_length=MAX_PATH_BYTES,
        description="relative POSIX path inside the bundle; no '.', '..' or empty segments",
    ),
    _utf8_at_most(MAX_PATH_BYTES),
]
ContainerPath = Annotated[
    str,
    Field(
        pattern=rf"^(/{_SEGMENT})+$",
        max_length=MAX_PATH_BYTES,
        description="absolute POSIX path inside the container, not '/'; no '.', '..' or empty "
        "segments",
    ),
    _utf8_at_most(MAX_PATH_BYTES),
]
StepName = Annotated[
    str,
    Field(
        pattern=rf"^{_SEGMENT}$",
        max_length=MAX_STEP_NAME_BYTES,
        description="one path segment: no '/', backslash or control character, not '.' or '..'",
    ),
    _utf8_at_most(MAX_STEP_NAME_BYTES),
]
EnvName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=255,
        description="an environment variable name: letters, digits and '_', not starting with "
        "a digit",
    ),
]
NoNul = Annotated[str, Field(pattern=r"^[^\x00]*$", description="no NUL character")]
"""A string that reaches execve (argv, env values): NUL would truncate it."""
HostPath = Annotated[
    str,
    Field(
        pattern=r"^/[^\x00]*$",
        max_length=MAX_PATH_BYTES,
        description="an absolute path without NUL",
    ),
]
Role = Literal["input", "output", "intermediate", "image", "other"]
Encoding = Literal["zstd-seekable", "identity"]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, use_attribute_docstrings=True
    )


class Author(_Model):
    name: str = Field(min_length=1)
    """Full name as it should be cited."""
    orcid: str | None = Field(default=None, pattern=r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")
    """ORCID iD without the URL prefix."""
    affiliation: str | None = None


class Identifier(_Model):
    scheme: str = Field(min_length=1, max_length=64)
    """E.g. "doi", "arxiv", "url", "handle"."""
    value: str = Field(min_length=1)


class BundleMeta(_Model):
    title: str = ""
    description: str = ""
    authors: tuple[Author, ...] = ()
    license: str | None = None
    """SPDX licence expression of the bundle's content, e.g. "CC-BY-4.0"."""
    identifiers: tuple[Identifier, ...] = ()
    created: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    """UTC time given by the user or SOURCE_DATE_EPOCH; never the packing clock (spec §7.2)."""


class Blob(_Model):
    size: int = Field(ge=0)
    """Uncompressed size in bytes: the length of the content the digest is over."""
    stored_size: int = Field(ge=0)
    """Size of the blob's ZIP entry."""
    encoding: Encoding
    media_type: str = Field(min_length=1, max_length=255)
    stored_digest: Digest | None = None
    """SHA-256 of the entry's stored bytes, for zstd-seekable blobs (format 1.1): routine fixity
    checks hash what is stored without decompressing it."""

    @model_validator(mode="after")
    def _stored(self) -> Blob:
        if self.encoding == "identity" and self.stored_digest is not None:
            raise ValueError("an identity blob's stored digest is its digest; do not repeat it")
        return self


class FileEntry(_Model):
    digest: Digest
    role: Role
    mode: Literal["0644", "0755"] = "0644"
    """Permission bits restored on extraction; only the executable bit is kept."""


class Bind(_Model):
    source: HostPath
    """The recording host's path (informational: replay never opens it)."""
    target: ContainerPath
    readonly: bool = False


Decimal = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+(\.[0-9]+)?([eE]-?[0-9]+)?$",
        description="a non-negative decimal number as a string",
    ),
]


class ComparePolicy(_Model):
    """How replay compares a re-made output with the recorded one (spec/format.md §7.5)."""

    method: Literal["bytes", "hdf5"] = "bytes"
    """bytes: identical SHA-256 only; hdf5: same HDF5 content (object times never count)."""
    ignore_attrs: tuple[str, ...] = ()
    """HDF5 attributes whose values may differ: "/group/dataset@name", or "*@name" anywhere."""
    rtol: Decimal | None = None
    """Relative tolerance for floating-point dataset values (hdf5 only)."""
    atol: Decimal | None = None
    """Absolute tolerance for floating-point dataset values (hdf5 only)."""


class StepFile(_Model):
    path: LogicalPath
    """Path relative to the step's work directory, and the file's path in the bundle."""
    digest: Digest
    compare: ComparePolicy | None = None
    """Outputs only: how replay compares it; absent means identical bytes."""


class RuntimeInfo(_Model):
    name: str
    version: str = ""


class HostInfo(_Model):
    """Facts about the recording host: an annotation, never something replay must reproduce."""

    hostname: str = ""
    kernel: str = ""
    machine: str = ""
    started: str = ""
    """UTC start time, YYYY-MM-DDTHH:MM:SSZ."""
    duration_ms: int = 0
    capsa_version: str = ""


class ProvenanceRecord(_Model):
    """A tool's own provenance log attached to a step (an annotation replay does not reproduce)."""

    path: LogicalPath
    """Where the log is stored in the bundle (provenance/<step>/<file name>)."""
    digest: Digest
    format: Literal["ctapipe", "km3pipe", "json"]
    """Recognised layout: ctapipe provenance log, km3pipe/thepipe .prov.json, or other JSON."""
    activities: int = Field(default=0, ge=0)


class Step(_Model):
    """One recorded execution of a command inside a container image (filled by `capsa run`)."""

    name: StepName
    """Unique within the bundle; one file name, never a path (spec §2.1)."""
    image: Digest
    """Digest of the SIF image blob the step ran in."""
    argv: tuple[NoNul, ...] = Field(min_length=1)
    env: dict[EnvName, NoNul] = {}
    workdir: ContainerPath = "/work"
    binds: tuple[Bind, ...] = ()
    inputs: tuple[StepFile, ...] = ()
    outputs: tuple[StepFile, ...] = ()
    exit_code: int = 0
    runtime: RuntimeInfo
    stdout: Digest | None = None
    """Digest of what the command wrote to standard output (format 1.1)."""
    stderr: Digest | None = None
    """Digest of what the command wrote to standard error (format 1.1)."""
    host: HostInfo | None = None
    """Where and when it was recorded (format 1.1); not part of what replay reproduces."""
    provenance: tuple[ProvenanceRecord, ...] = ()
    """The tool's own provenance logs (format 1.1); annotations, not reproduced by replay."""


class Manifest(_Model):
    """The signed description of a bundle; its canonical bytes are the bundle identity."""

    capsa: str = Field(pattern=r"^[0-9]+\.[0-9]+$")
    """Format version "MAJOR.MINOR" (spec §9)."""
    bundle: BundleMeta = BundleMeta()
    blobs: dict[Digest, Blob] = {}
    """Every stored blob by the digest of its uncompressed bytes."""
    files: dict[LogicalPath, FileEntry] = {}
    """Logical path → content; several paths may share one blob."""
    steps: tuple[Step, ...] = ()
    """Recorded steps in execution order (spec §7.5; filled by `capsa run`)."""

    @field_validator("capsa")
    @classmethod
    def _version(cls, v: str) -> str:
        major, minor = (int(x) for x in v.split("."))
        if major != MAJOR or minor > MINOR:
            raise ValueError(f"format {v} is not readable by this capsa ({FORMAT_VERSION})")
        return v

    @model_validator(mode="after")
    def _references(self) -> Manifest:
        for path, f in self.files.items():
            if f.digest not in self.blobs:
                raise ValueError(f"file {path!r} refers to a blob that is not listed")
        conflict = file_dir_conflict(self.files)
        if conflict is not None:
            raise ValueError(f"path {conflict!r} is both a file and a directory")
        names: set[str] = set()
        for s in self.steps:
            if s.name in names:
                raise ValueError(f"two steps are named {s.name!r}")
            names.add(s.name)
            for kind, files in (("input", s.inputs), ("output", s.outputs)):
                paths = [f.path for f in files]
                if len(set(paths)) != len(paths):
                    raise ValueError(f"step {s.name!r}: an {kind} path is listed twice")
                conflict = file_dir_conflict(paths)
                if conflict is not None:
                    raise ValueError(
                        f"step {s.name!r}: {kind} {conflict!r} is both a file and a directory"
                    )
            refs = [("image", s.image), ("stdout", s.stdout), ("stderr", s.stderr)]
            refs += [(f"input {f.path!r}", f.digest) for f in s.inputs]
            refs += [(f"output {f.path!r}", f.digest) for f in s.outputs]
            refs += [(f"provenance {f.path!r}", f.digest) for f in s.provenance]
            for what, digest in refs:
                if digest is not None and digest not in self.blobs:
                    raise ValueError(f"step {s.name!r}: {what} is not in the bundle")
        return self


def file_dir_conflict(paths: Iterable[str]) -> str | None:
    """A path that is also a parent directory of another path (``a`` and ``a/b``), or None.

    Every proper prefix is looked up: comparing sorted neighbours is not enough, because
    ``a.txt`` sorts between ``a`` and ``a/b``.
    """
    names = set(paths)
    for path in sorted(names):
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in names:
                return prefix
    return None


def canonical_json(value: Any) -> bytes:
    """The one canonical encoding (spec §8): sorted keys, no whitespace, UTF-8, no floats."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    _check_values(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


_MAX_INT = 2**53


def _check_values(v: Any) -> None:
    if isinstance(v, float):
        raise ValueError("floats are not allowed in canonical JSON")
    if isinstance(v, int) and not isinstance(v, bool) and not -_MAX_INT <= v <= _MAX_INT:
        raise ValueError(f"integer {v} is outside the canonical JSON range ±2**53")
    if isinstance(v, dict):
        for x in v.values():
            _check_values(x)
    elif isinstance(v, list | tuple):
        for x in v:
            _check_values(x)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return d


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_manifest(data: bytes, *, where: str = "manifest.json") -> Manifest:
    """Decode manifest bytes, insisting on the canonical form the writer produces."""
    if len(data) > MAX_MANIFEST:
        raise FormatError(f"manifest larger than {MAX_MANIFEST} bytes", where=where)
    try:
        raw = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=lambda s: _no_constant("a float"),
            parse_constant=_no_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"manifest is not valid JSON: {e}", where=where) from e
    if not isinstance(raw, dict):
        raise FormatError("manifest is not a JSON object", where=where)
    version = raw.get("capsa")
    if isinstance(version, str) and re.fullmatch(r"[0-9]+\.[0-9]+", version):
        major, minor = (int(x) for x in version.split("."))
        if major != MAJOR:
            raise FormatError(
                f"unknown major format version {version}",
                where=where,
                hint=f"this capsa reads format {MAJOR}.x",
            )
        if minor > MINOR:
            raise FormatError(
                f"format {version} is newer than this capsa ({FORMAT_VERSION})",
                where=where,
                hint="upgrade capsa",
            )
    try:
        manifest = Manifest.model_validate_json(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(_show_loc(p) for p in first["loc"])
        raise FormatError(
            f"invalid manifest at {loc or 'top level'}: {explain(first)}", where=where
        ) from e
    try:
        canonical = canonical_json(manifest)
    except ValueError as e:
        raise FormatError(f"manifest is not canonical JSON: {e}", where=where) from e
    if canonical != data:
        raise FormatError("manifest is not in canonical form", where=where)
    return manifest


def _pattern_help() -> dict[str, str]:
    out = {}
    for t in (LogicalPath, ContainerPath, StepName, EnvName, NoNul, HostPath, Digest):
        for info in t.__metadata__:  # type: ignore[attr-defined]
            for m in getattr(info, "metadata", ()):
                if getattr(m, "pattern", None) and info.description:
                    out[m.pattern] = info.description
    return out


_PATTERN_HELP = _pattern_help()


def _show_loc(part: object) -> str:
    """A location segment as it may be printed: short, and no control character reaches a
    terminal (a hostile key could hold escape sequences)."""
    text = str(part)
    if not text.isprintable():
        text = repr(text)
    return text if len(text) <= 60 else text[:57] + "..."


def explain(error: Any) -> str:
    """One readable line for a pydantic error: a pattern becomes the rule it stands for."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        rule = _PATTERN_HELP.get(pattern, "not allowed here")
        return f"{str(error.get('input'))[:80]!r} is not allowed: {rule}"
    return str(error.get("msg", "invalid"))


def schema() -> dict[str, Any]:
    s = Manifest.model_json_schema(mode="validation")
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["$id"] = f"https://capsa.invalid/spec/manifest-{FORMAT_VERSION}.schema.json"
    return s


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"
