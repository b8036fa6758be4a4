"""The manifest: pydantic models and their decoding (spec/format.md §7, §9).

The models are the single source of spec/manifest.schema.json (``python -m capsa.format.schema``).
Strings with rules are in :mod:`.names`, comparison policies in :mod:`.policy`, the canonical
encoding in :mod:`.canonical`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import FormatError
from .canonical import canonical_chunks, loads_strict
from .canonical import canonical_json as canonical_json  # re-exported: the one encoding
from .names import (
    ContainerPath,
    Digest,
    EnvName,
    HostPath,
    LogicalPath,
    NoNul,
    StepName,
    explain,
    file_dir_conflict,
    show_loc,
)
from .policy import ComparePolicy

__all__ = [
    "FORMAT_VERSION",
    "MEDIA_TYPE",
    "Author",
    "Bind",
    "Blob",
    "BundleMeta",
    "FileEntry",
    "HostInfo",
    "Identifier",
    "Manifest",
    "ProvenanceRecord",
    "Role",
    "RuntimeInfo",
    "Step",
    "StepFile",
    "encode_manifest",
    "manifest_chunks",
    "parse_manifest",
    "schema",
    "schema_text",
]

FORMAT_VERSION = "1.3"
"""The capsa bundle format version this code writes and the newest it reads (spec §9)."""
MAJOR, MINOR = (int(x) for x in FORMAT_VERSION.split("."))
MEDIA_TYPE = "application/vnd.capsa.bundle+zip"
MAX_MANIFEST = 64 << 20
"""Largest manifest a reader accepts and a writer writes (spec §3.5): about 500 000 files."""

Role = Literal["input", "output", "intermediate", "image", "other"]
Encoding = Literal["zstd-seekable", "identity"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Author(_Model):
    name: str = Field(min_length=1)
    """Full name as it should be cited."""
    orcid: str | None = Field(default=None, pattern=r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")
    """ORCID iD without the URL prefix."""
    affiliation: str | None = None
    """The organisation the author belongs to."""


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
    publisher: str | None = Field(default=None, min_length=1)
    """The organisation that publishes the bundle (format 1.2), e.g. a collaboration."""


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


class StepFile(_Model):
    path: LogicalPath
    """Path relative to the step's work directory, and the file's path in the bundle (for an
    input under a bind: ``binds/<target>/<path below the target>``, and ``at`` says where)."""
    digest: Digest
    compare: ComparePolicy | None = None
    """Outputs only: how replay compares it; absent means identical bytes."""
    compare_set: Literal["pack"] | None = None
    """(1.2) ``pack`` when ``compare`` was set when packing (``capsa pack --compare``), not when
    the step was recorded."""
    at: ContainerPath | None = None
    """(1.2) Inputs outside the work directory only: the file's path in the container, below
    one of the step's ``binds`` targets."""


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
    image: Digest | None = None
    """Digest of the SIF image blob the step ran in; (1.3) absent for a step recorded without an
    image (on the recording host's own software): replay never runs it and reports it skipped."""
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
    dirs: tuple[LogicalPath, ...] | None = None
    """(1.2) Directories of the work directory that existed before the step and that its
    outputs were written into; replay makes them before the step runs."""
    group: str | None = Field(default=None, min_length=1, max_length=200)
    """(1.2) What the step is an instance of, e.g. the Snakemake rule of ``histogram[run=42]``;
    views group a production's steps by it."""
    params: dict[str, str] | None = None
    """(1.2) The workflow's parameters of the step (Snakemake ``params:``), as text;
    informational, replay runs ``argv``."""


def minor_of(version: str) -> int:
    return int(version.split(".")[1])


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
            targets = [b.target for b in s.binds]
            for sf in s.inputs:
                if sf.at is not None and not any(
                    sf.at == t or sf.at.startswith(t + "/") for t in targets
                ):
                    raise ValueError(
                        f"step {s.name!r}: input {sf.path!r} is at {sf.at!r}, below no bind"
                    )
            if any(sf.at is not None for sf in s.outputs):
                raise ValueError(f"step {s.name!r}: outputs are in the work directory only")
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
            if s.image is None and minor_of(self.capsa) < 3:
                raise ValueError(
                    f"step {s.name!r} has no image (format 1.3), in a {self.capsa} bundle"
                )
            refs = [("image", s.image), ("stdout", s.stdout), ("stderr", s.stderr)]
            refs += [(f"input {f.path!r}", f.digest) for f in s.inputs]
            refs += [(f"output {f.path!r}", f.digest) for f in s.outputs]
            refs += [(f"provenance {f.path!r}", f.digest) for f in s.provenance]
            for what, digest in refs:
                if digest is not None and digest not in self.blobs:
                    raise ValueError(f"step {s.name!r}: {what} is not in the bundle")
        return self


class _Version(BaseModel):
    """Only the version of a manifest, read before the models (spec §9: say which version)."""

    model_config = ConfigDict(extra="ignore")
    capsa: Any = None


_EXPAND = ("blobs", "files", "steps")


def manifest_chunks(manifest: Manifest) -> Iterator[bytes]:
    """``canonical_json(manifest)`` in pieces of one blob, file or step each (bounded memory)."""
    return canonical_chunks(manifest, _EXPAND)


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest's canonical bytes (spec §8), without building its whole JSON tree."""
    return b"".join(manifest_chunks(manifest))


def parse_manifest(data: bytes, *, where: str = "manifest.json") -> Manifest:
    """Decode manifest bytes, insisting on the canonical form the writer produces.

    The bytes are parsed once, into the models; the canonical form is then checked by encoding
    the models piece by piece against the bytes, so no second tree of the manifest is built
    (a manifest of 450 000 files is ~60 MiB of JSON). A duplicate key or a float — which the
    encoding check catches as "not canonical" — is named by a strict re-parse, on failure only.
    """
    if len(data) > MAX_MANIFEST:
        raise FormatError(f"manifest larger than {MAX_MANIFEST} bytes (spec §3.5)", where=where)
    try:
        version = _Version.model_validate_json(data).capsa
    except ValidationError as e:
        first = e.errors()[0]
        if first["type"] == "model_type":
            raise FormatError("manifest is not a JSON object", where=where) from e
        raise FormatError(f"manifest is not valid JSON: {first['msg']}", where=where) from e
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
        _strict_reason(data, where)
        first = e.errors()[0]
        loc = ".".join(show_loc(p) for p in first["loc"])
        raise FormatError(
            f"invalid manifest at {loc or 'top level'}: {explain(first)}", where=where
        ) from e
    view, pos = memoryview(data), 0
    try:
        for chunk in manifest_chunks(manifest):
            if view[pos : pos + len(chunk)] != chunk:
                break
            pos += len(chunk)
    except ValueError as e:
        raise FormatError(f"manifest is not canonical JSON: {e}", where=where) from e
    if pos != len(data):
        _strict_reason(data, where)
        raise FormatError("manifest is not in canonical form", where=where)
    return manifest


def _attribute_docs(module: Any) -> dict[str, dict[str, str]]:
    """{class: {field: docstring}} from the string literal after each field of each class in
    ``module``'s source — what pydantic's ``use_attribute_docstrings`` reads, but only when the
    schema is written (reading sources at every import costs capsa's start-up ~40 ms)."""
    import ast
    import inspect

    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, str] = {}
        for a, b in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
                and isinstance(b.value.value, str)
            ):
                fields[a.target.id] = inspect.cleandoc(b.value.value)
        docs[node.name] = fields
    return docs


def _strict_reason(data: bytes, where: str) -> None:
    """Raise the precise reason when the bytes are not even strict JSON (duplicate keys,
    floats, NaN); return when they are."""
    try:
        loads_strict(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"manifest is not valid JSON: {e}", where=where) from e


def schema() -> dict[str, Any]:
    import sys

    from . import policy

    docs = _attribute_docs(sys.modules[__name__]) | _attribute_docs(policy)
    s = Manifest.model_json_schema(mode="validation")
    for name, d in [("Manifest", s), *s.get("$defs", {}).items()]:
        for field_name, prop in d.get("properties", {}).items():
            text = docs.get(name, {}).get(field_name)
            if text and "description" not in prop:
                prop["description"] = text
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["$id"] = f"https://capsa.invalid/spec/manifest-{FORMAT_VERSION}.schema.json"
    return s


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"
