"""``capsa image build RECIPE``: a Debian root file system from a small TOML recipe (mmdebstrap),
Python distributions pinned by hash (pip ``--require-hashes``), files, env and labels; squashed
like an import, with the recipe stored as the SIF's deffile.

A recipe (every key but ``suite`` optional)::

    suite = "bookworm"                      # Debian suite
    packages = ["python3-h5py", "python3-numpy"]
    sources = ""                            # apt sources file; default: this machine's
    epoch = 1700000000                      # SOURCE_DATE_EPOCH of the build (default 0)
    [pip]
    requirements = "requirements.txt"       # every line pinned with --hash=sha256:...
    find_links = "wheels"                   # a local wheel directory (then no index is used)
    [files]
    "/opt/ana/config.yaml" = "config.yaml"  # container path = host path, relative to the recipe
    [env]
    CI_BUILD = "1"
    [labels]
    "org.example.image" = "analysis"

The same recipe and the same package sources give the same SIF bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ...errors import FormatError, NotFoundError, RuntimeError_, UsageError
from .layers import Tree

__all__ = ["PIP_PACKAGES", "Recipe", "build_rootfs", "load_recipe"]

PIP_PACKAGES = ("python3", "python3-pip", "libstdc++6", "libgomp1")
"""Added when the recipe installs Python distributions: pip itself, and the C++ and OpenMP
runtimes manylinux wheels (numpy, scipy, awkward) link against but do not ship."""
_KEYS = {"suite", "packages", "sources", "epoch", "variant", "pip", "files", "env", "labels"}
_EXCLUDE = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")


@dataclass(frozen=True)
class Recipe:
    path: Path
    text: str
    suite: str
    packages: list[str]
    sources: str
    epoch: int
    variant: str = "essential"
    requirements: Path | None = None
    find_links: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def _strs(doc: dict[str, Any], key: str, where: str) -> dict[str, str]:
    v = doc.get(key) or {}
    if not isinstance(v, dict) or not all(isinstance(x, (str, int)) for x in v.values()):
        raise FormatError(f"[{key}] must be a table of strings", where=where)
    return {str(k): str(x) for k, x in v.items()}


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    p = Path(path)
    where = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise NotFoundError("no such recipe", where=where) from e
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FormatError(f"recipe is not valid TOML: {e}", where=where) from e
    unknown = set(doc) - _KEYS
    if unknown:
        raise FormatError(f"unknown recipe keys: {', '.join(sorted(unknown))}", where=where)
    if not isinstance(doc.get("suite"), str):
        raise FormatError('the recipe needs suite = "<debian suite>"', where=where)
    base = p.parent
    pip = doc.get("pip") or {}
    req = base / pip["requirements"] if pip.get("requirements") else None
    links = base / pip["find_links"] if pip.get("find_links") else None
    if req is not None:
        lines = [
            ln.strip()
            for ln in req.read_text().splitlines()
            if ln.strip() and not ln.strip().startswith("#")
        ]
        for ln in lines:
            if "--hash=" not in ln and not ln.endswith("\\"):
                raise FormatError(
                    f"requirement without a hash: {ln}",
                    where=str(req),
                    hint="pin every one: name==version --hash=sha256:… (pip hash FILE)",
                )
    packages = [str(x) for x in doc.get("packages") or []]
    if req is not None:
        packages += [x for x in PIP_PACKAGES if x not in packages]
    files = {k: base / v for k, v in _strs(doc, "files", where).items()}
    for target, src in files.items():
        if not target.startswith("/") or ".." in target.split("/"):
            raise FormatError(f"file target must be an absolute path: {target}", where=where)
        if not src.is_file():
            raise NotFoundError("no such file (named in [files])", where=str(src))
    return Recipe(
        p,
        text,
        doc["suite"],
        packages,
        str(base / doc["sources"]) if doc.get("sources") else "",
        int(doc.get("epoch", os.environ.get("SOURCE_DATE_EPOCH") or 0)),
        str(doc.get("variant", "essential")),
        req,
        links,
        files,
        _strs(doc, "env", where),
        _strs(doc, "labels", where),
    )


def _apt_sources() -> str:
    for p in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        if Path(p).is_file() and Path(p).stat().st_size:
            return p
    raise UsageError("no apt sources on this machine", hint='name one with sources = "FILE"')


def build_rootfs(recipe: Recipe, tree: Tree) -> float:
    """Make the recipe's root file system with mmdebstrap and add it to ``tree``; the seconds
    mmdebstrap took."""
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError_(
            "mmdebstrap is not installed", hint="Debian: apt-get install mmdebstrap"
        )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="capsa-build-") as tmp:
        root = Path(tmp) / "rootfs"
        cmd = [
            "mmdebstrap",
            f"--mode={'root' if os.geteuid() == 0 else 'unshare'}",
            f"--variant={recipe.variant}",
            "--quiet",
            *[f"--dpkgopt=path-exclude={x}" for x in _EXCLUDE],
        ]
        if recipe.packages:
            cmd.append(f"--include={','.join(recipe.packages)}")
        if recipe.requirements is not None:
            pip = [
                "python3 -m pip install --quiet --no-compile --no-cache-dir --require-hashes",
                "--break-system-packages --root-user-action=ignore --disable-pip-version-check",
                "-r /tmp/capsa-pip/requirements.txt",
            ]
            cmd.append('--customize-hook=mkdir -p "$1"/tmp/capsa-pip')
            cmd.append(
                f"--customize-hook=upload {recipe.requirements} /tmp/capsa-pip/requirements.txt"
            )
            if recipe.find_links is not None:
                cmd.append(f"--customize-hook=copy-in {recipe.find_links} /tmp/capsa-pip")
                pip.append(f"--no-index --find-links /tmp/capsa-pip/{recipe.find_links.name}")
            cmd.append(f'--customize-hook=chroot "$1" sh -c "{" ".join(pip)}"')
            cmd.append('--customize-hook=rm -rf "$1"/tmp/capsa-pip')
        cmd += [
            '--customize-hook=rm -rf "$1"/var/cache/apt "$1"/var/lib/apt/lists "$1"/var/log/* '
            '"$1"/var/cache/ldconfig/aux-cache',
            '--customize-hook=find "$1" -xdev -name __pycache__ -prune -exec rm -rf {} +',
            recipe.suite,
            str(root),
            recipe.sources or _apt_sources(),
        ]
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(recipe.epoch), "LC_ALL": "C"}
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:] or ["?"]
            raise RuntimeError_(f"mmdebstrap failed: {' / '.join(tail)}", where=str(recipe.path))
        seconds = time.monotonic() - started
        tree.add_directory(str(root))
        subprocess.run(["chmod", "-R", "u+rwX", tmp], check=False)
    for target, src in sorted(recipe.files.items()):
        mode = 0o755 if os.access(src, os.X_OK) else 0o644
        tree.add_file(target.strip("/"), src.read_bytes(), mode)
    return seconds
