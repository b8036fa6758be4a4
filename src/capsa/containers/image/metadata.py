"""What an imported image says about itself, stored the way Apptainer stores it: the OCI
config's environment in ``/.singularity.d/env/10-docker2singularity.sh``, its labels in
``/.singularity.d/labels.json``, the ENTRYPOINT/CMD runscript, and the SIF objects
``oci-config.json`` and ``inspect-metadata.json``; plus a CycloneDX SBOM read off the tree
(os-release, dpkg, pip)."""

from __future__ import annotations

import json
import re
import shlex
from email.parser import HeaderParser
from typing import Any

from .layers import Tree

__all__ = ["ENV_FILE", "env_script", "image_env", "install_metadata", "labels_of", "sbom"]

ENV_FILE = ".singularity.d/env/10-docker2singularity.sh"
_ENV_BASE = "#!/bin/sh\n# Custom environment shell code should follow\n"


def _dq(value: str) -> str:
    """``value`` inside POSIX double quotes."""
    return '"' + re.sub(r'([\\"`$])', r"\\\1", value) + '"'


def env_script(env: list[str]) -> str:
    """Apptainer's 10-docker2singularity.sh: PATH set, every other variable a default the
    caller's environment may override (conveyorPacker_oci.go ``insertEnv``)."""
    lines = ["#!/bin/sh"]
    for item in env:
        key, sep, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        if not sep:
            lines.append(f'export {key}="${{{key}:-}}"')
        elif key == "PATH":
            lines.append(f"export PATH={_dq(value)}")
        else:
            lines.append(f'export {key}="${{{key}:-{_dq(value)}}}"')
    return "\n".join(lines) + "\n"


def image_env(config: dict[str, Any]) -> dict[str, str]:
    """The OCI config's ``Env`` as a mapping (later entries win, as in Docker)."""
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            if key:
                out[key] = value
    return out


def _runscript(config: dict[str, Any]) -> str:
    """ENTRYPOINT then CMD, then the arguments: what ``apptainer run`` and ``docker run`` do."""
    entry = [str(a) for a in config.get("Entrypoint") or []]
    cmd = [str(a) for a in config.get("Cmd") or []]
    head = " ".join(shlex.quote(a) for a in entry)
    if not entry and not cmd:
        return '#!/bin/sh\nexec /bin/sh "$@"\n'
    default = " ".join(shlex.quote(a) for a in entry + cmd)
    with_args = f'exec {head} "$@"' if entry else 'exec "$@"'
    return f"#!/bin/sh\nif [ $# -gt 0 ]; then\n    {with_args}\nfi\nexec {default}\n"


def labels_of(
    config: dict[str, Any], reference: str, digest: str, transport: str
) -> dict[str, str]:
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    labels.update(
        {
            "org.label-schema.schema-version": "1.0",
            "org.label-schema.usage.singularity.deffile.bootstrap": transport,
            "org.label-schema.usage.singularity.deffile.from": reference,
            "capsa.source.reference": reference,
            "capsa.source.transport": transport,
        }
    )
    if digest:
        labels["capsa.source.digest"] = digest
    return dict(sorted(labels.items()))


def install_metadata(
    tree: Tree, config: dict[str, Any], labels: dict[str, str], deffile: str
) -> dict[str, Any]:
    """Write /.singularity.d into the tree; return Apptainer's inspect-metadata.json document."""
    env = env_script([e for e in config.get("Env") or [] if isinstance(e, str)])
    runscript = _runscript(config)
    labels_json = json.dumps(labels, indent="\t") + "\n"
    for d in ("", "/env", "/actions", "/libs"):
        tree.add_dir(f".singularity.d{d}")
    tree.add_file(ENV_FILE, env.encode(), 0o755)
    tree.add_file(".singularity.d/env/90-environment.sh", _ENV_BASE.encode(), 0o755)
    tree.add_file(".singularity.d/runscript", runscript.encode(), 0o755)
    tree.add_file(".singularity.d/startscript", b"#!/bin/sh\n", 0o755)
    tree.add_file(".singularity.d/labels.json", labels_json.encode())
    tree.add_file(".singularity.d/Singularity", deffile.encode())
    tree.add_symlink("singularity", ".singularity.d/runscript")
    tree.add_symlink("environment", ".singularity.d/env/90-environment.sh")
    return {
        "data": {
            "attributes": {
                "deffile": deffile,
                "environment": {
                    f"/{ENV_FILE}": env,
                    "/.singularity.d/env/90-environment.sh": _ENV_BASE,
                },
                "labels": labels,
                "runscript": runscript,
                "startscript": "#!/bin/sh\n",
            }
        },
        "type": "container",
    }


def _os_release(tree: Tree) -> dict[str, str]:
    raw = tree.read("etc/os-release") or tree.read("usr/lib/os-release") or b""
    out = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip().strip("\"'")
    return out


def _dpkg(tree: Tree) -> list[tuple[str, str, str]]:
    raw = tree.read("var/lib/dpkg/status", limit=256 << 20) or b""
    found = []
    for para in raw.decode("utf-8", "replace").split("\n\n"):
        fields = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in para.splitlines() if line[:1] != " ")
        )
        if fields.get("Package") and "installed" in fields.get("Status", "").split()[-1:]:
            arch = fields.get("Architecture", "")
            found.append((fields["Package"], fields.get("Version", ""), arch))
    return sorted(set(found))


def _pip(tree: Tree) -> list[tuple[str, str]]:
    """Python distributions: every ``*.dist-info/METADATA`` under a site- or dist-packages."""
    found = set()
    stack = ["usr/lib", "usr/local/lib", "opt"]
    for base in stack:
        for py in tree.listdir(base):
            for sp in ("site-packages", "dist-packages"):
                d = f"{base}/{py}/{sp}"
                for name in tree.listdir(d):
                    if name.endswith(".dist-info"):
                        meta = tree.read(f"{d}/{name}/METADATA", limit=4 << 20)
                        if meta:
                            h = HeaderParser().parsestr(meta.decode("utf-8", "replace"))
                            if h.get("Name"):
                                found.add((str(h["Name"]), str(h.get("Version", ""))))
    return sorted(found)


def sbom(tree: Tree, reference: str, digest: str) -> dict[str, Any]:
    """A CycloneDX 1.5 document of the tree (deterministic: no timestamp, no serial number)."""
    components: list[dict[str, Any]] = []
    osr = _os_release(tree)
    distro = osr.get("ID", "")
    if osr:
        components.append(
            {
                "type": "operating-system",
                "name": distro or osr.get("NAME", "linux"),
                "version": osr.get("VERSION_ID", ""),
                "description": osr.get("PRETTY_NAME", ""),
            }
        )
    for name, version, arch in _dpkg(tree):
        purl = f"pkg:deb/{distro or 'debian'}/{name}@{version}" + (f"?arch={arch}" if arch else "")
        components.append({"type": "library", "name": name, "version": version, "purl": purl})
    for name, version in _pip(tree):
        components.append(
            {
                "type": "library",
                "name": name,
                "version": version,
                "purl": f"pkg:pypi/{name.lower()}@{version}",
            }
        )
    subject: dict[str, Any] = {"type": "container", "name": reference}
    if digest:
        subject["hashes"] = [{"alg": "SHA-256", "content": digest.partition(":")[2]}]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {"component": subject, "tools": [{"name": "capsa"}]},
        "components": components,
    }
