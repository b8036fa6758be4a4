"""`capsa image import`: layers applied with whiteouts, links, devices, owners; the same input
gives the same SIF bytes; the image's ENV reaches a step under bwrap and podman; the source's
reference and digest show in `capsa show`; SIFs capsa cannot run get one clear line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capsa.containers.runtime import RunSpec, get_runtime
from capsa.containers.runtime.cache import ImageCache
from capsa.containers.sif import SifObject, open_sif, write_sif
from capsa.errors import FormatError
from capsa.format.digest import sha256_file
from conftest import CliResult
from images import image

pytestmark = pytest.mark.container  # real containers (bwrap, podman) and built test images

IMAGE_PATH = "/opt/ci/bin:/usr/bin:/bin"


def _layer(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, 0o644 if kind == tarfile.REGTYPE else 0o755, 12345
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _oci_layout(root: Path, layers: list[bytes], config: dict[str, object]) -> Path:
    """An OCI image layout written by hand: index → manifest → config and layers."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return {"digest": f"sha256:{h}", "size": len(data)}

    cfg = put(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", **put(layer)}
            for layer in layers
        ],
    }
    m = put(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **m,
                "annotations": {"org.opencontainers.image.ref.name": "example.org/layers:2"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def _listing(sif: Path) -> dict[str, str]:
    """path → `unsquashfs -lln` line (mode, owner, size or device, link) of the SIF's rootfs."""
    img, close = open_sif(sif)
    try:
        offset = img.primary_partition().offset
    finally:
        close()
    out = subprocess.run(
        ["unsquashfs", "-lln", "-o", str(offset), str(sif)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        if " squashfs-root" not in line:
            continue
        head, _, path = line.partition(" squashfs-root")
        rows[path or "/"] = " ".join(head.split()[:3]) + (
            " -> " + path.split(" -> ")[1] if " -> " in path else ""
        )
    return {k.split(" -> ")[0]: v for k, v in rows.items()}


def test_layers_apply_in_order_with_whiteouts_links_devices_and_owners(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    base = _layer(
        [
            (_entry("etc", tarfile.DIRTYPE), b""),
            (_entry("etc/keep", uid=1000, gid=100, mode=0o600), b"keep"),
            (_entry("etc/gone"), b"gone"),
            (_entry("opt", tarfile.DIRTYPE), b""),
            (_entry("opt/old1"), b"1"),
            (_entry("opt/old2"), b"2"),
            (_entry("bin", tarfile.DIRTYPE), b""),
            (_entry("bin/tool", mode=0o4755), b"#!/bin/sh\n"),
            (_entry("bin/alias", tarfile.LNKTYPE, linkname="bin/tool"), b""),
            (_entry("bin/sym", tarfile.SYMTYPE, linkname="tool"), b""),
            (_entry("dev", tarfile.DIRTYPE), b""),
            (_entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), b""),
            (_entry("../escape"), b"never"),
        ]
    )
    top = _layer(
        [
            (_entry("etc/.wh.gone"), b""),
            (_entry("opt/.wh..wh..opq"), b""),
            (_entry("opt/new"), b"new"),
            (_entry("etc/keep", uid=1000, gid=100, mode=0o640), b"changed"),
            (_entry("usr/lib/deep/file"), b"implicit parents"),
        ]
    )
    layout = _oci_layout(
        tmp_path / "layout",
        [base, top],
        {
            "created": "2024-01-02T03:04:05Z",
            "architecture": "amd64",
            "config": {"Env": ["PATH=/bin", "CI_BUILD=1"], "Labels": {"a": "b"}},
        },
    )
    out = tmp_path / "img.sif"
    r = cli("image", "import", f"oci:{layout}:2", "-o", out, "--json")
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    assert doc["reference"] == "example.org/layers:2"
    assert doc["env"] == {"PATH": "/bin", "CI_BUILD": "1"}
    rows = _listing(out)
    assert "/etc/gone" not in rows and "/opt/old1" not in rows and "/opt/old2" not in rows
    assert "/escape" not in rows and "/../escape" not in rows
    assert rows["/opt/new"].startswith("-rw-r--r-- 0/0")
    assert rows["/etc/keep"] == "-rw-r----- 1000/100 7"
    assert rows["/bin/tool"].startswith("-rwsr-xr-x")
    assert rows["/bin/alias"] == rows["/bin/tool"]  # a hard link: the same inode
    assert rows["/bin/sym"].endswith("-> tool")
    assert rows["/dev/null"].startswith("crw-rw-rw- 0/0")
    assert rows["/usr/lib/deep"].startswith("drwxr-xr-x")
    # Apptainer's metadata, inside the image.
    assert rows["/.singularity.d/env/10-docker2singularity.sh"].startswith("-rwxr-xr-x")
    assert "/.singularity.d/labels.json" in rows and "/.singularity.d/runscript" in rows
    # The same input gives the same bytes; SOURCE_DATE_EPOCH changes them.
    again = tmp_path / "again.sif"
    assert cli("image", "import", "-q", f"oci:{layout}", "-o", again).rc == 0
    assert again.read_bytes() == out.read_bytes()
    os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
    try:
        assert cli("image", "import", "-q", f"oci:{layout}", "-o", tmp_path / "e.sif").rc == 0
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    assert (tmp_path / "e.sif").read_bytes() != out.read_bytes()


def test_bad_sources_are_one_line(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    r = cli("image", "import", "registry:foo", "-o", tmp_path / "x.sif")
    assert r.rc == 2 and "unknown image source" in r.err
    r = cli("image", "import", f"oci-archive:{tmp_path}/none.tar", "-o", tmp_path / "x.sif")
    assert r.rc == 9 and "no such file" in r.err
    (tmp_path / "junk.tar").write_bytes(b"not a tar" * 100)
    r = cli("image", "import", f"oci-archive:{tmp_path}/junk.tar", "-o", tmp_path / "x.sif")
    assert r.rc == 3 and len(r.err_lines) == 1, r.err
    assert not (tmp_path / "x.sif").exists()


def _unpack(sif: Path, dest: Path) -> Path:
    img, close = open_sif(sif)
    try:
        offset = img.primary_partition().offset
    finally:
        close()
    subprocess.run(
        ["unsquashfs", "-q", "-n", "-d", str(dest), "-o", str(offset), str(sif)],
        check=True,
        capture_output=True,
    )
    return dest


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A docker-archive and an OCI archive made locally by buildah and podman (no registry)
    from the busybox test image's root file system, with an ENV and a label."""
    for tool in ("buildah", "podman"):
        if shutil.which(tool) is None:
            pytest.skip(f"making OCI archives needs {tool} (Debian: apt-get install {tool})")
    busybox = image("busybox")
    d = tmp_path_factory.mktemp("archives")
    rootfs = _unpack(busybox, d / "rootfs")
    store = ["--root", str(d / "storage"), "--runroot", str(d / "run"), "--storage-driver", "vfs"]
    name = f"localhost/capsa-i13-{secrets.token_hex(4)}:1"

    def run(*cmd: str) -> str:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"{' '.join(cmd[:2])} cannot run here: {r.stderr.strip()[-300:]}")
        return r.stdout.strip()

    ctr = run("buildah", *store, "from", "scratch")
    run("buildah", *store, "copy", "--quiet", ctr, str(rootfs), "/")
    run(
        "buildah", *store, "config", "--env", "CI_BUILD=1", "--env", "GREETING=hello image",
        "--env", f"PATH={IMAGE_PATH}", "--label", "org.km3net.test=yes", "--cmd", "/bin/sh", ctr,
    )  # fmt: skip
    run("buildah", *store, "commit", "--quiet", ctr, name)
    run("buildah", *store, "rm", ctr)
    out = {"rootfs": rootfs, "name": Path(name)}
    for fmt in ("docker-archive", "oci-archive"):
        out[fmt] = d / f"{fmt}.tar"
        run("podman", *store, "save", "--quiet", "--format", fmt, "-o", str(out[fmt]), name)
    yield out
    subprocess.run(["buildah", *store, "rmi", "--all", "--force"], capture_output=True)
    subprocess.run(["chmod", "-R", "u+rwX", str(d / "storage")], capture_output=True)


@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_archives_import_byte_identically_and_keep_env_labels_and_digest(
    archives: dict[str, Path], transport: str, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    a, b = tmp_path / "a.sif", tmp_path / "b.sif"
    r = cli("image", "import", f"{transport}:{archives[transport]}", "-o", a, "--json")
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    assert doc["reference"] == str(archives["name"])
    assert doc["digest"].startswith("sha256:") and len(doc["digest"]) == 71
    assert doc["env"]["CI_BUILD"] == "1"
    assert cli("image", "import", "-q", f"{transport}:{archives[transport]}", "-o", b).rc == 0
    assert a.read_bytes() == b.read_bytes()

    r = cli("image", "inspect", a, "--json")
    info = json.loads(r.out)
    assert info["source"] == {
        "reference": str(archives["name"]),
        "digest": doc["digest"],
        "transport": transport,
    }
    assert info["labels"]["org.km3net.test"] == "yes"
    assert "CI_BUILD=1" in info["env"]
    assert info["sbom_format"] == "cyclonedx-json"
    text = cli("image", "inspect", a).out.decode()
    assert f"source: {archives['name']} {doc['digest']}" in text
    assert "label: org.km3net.test=yes" in text and "env: GREETING=hello image" in text


def _env_in(runtime: str, sif: Path, work: Path, cache: ImageCache) -> str:
    from capsa.containers.runtime.bwrap import BwrapRuntime
    from capsa.containers.runtime.podman import PodmanRuntime

    if shutil.which(runtime if runtime == "podman" else "bwrap") is None:
        pytest.skip(f"{runtime} is not installed")
    rt = BwrapRuntime(cache) if runtime == "bwrap" else PodmanRuntime(cache)
    env = {"PATH": "/bin:/usr/bin", "HOME": "/home/capsa", "GREETING": "the step wins"}
    spec = RunSpec(sif, sha256_file(sif), ("sh", "-c", "env | sort"), env, "/work", work)
    r = rt.run(spec, work / f"{runtime}.out", work / f"{runtime}.err")
    assert r.exit_code == 0, (work / f"{runtime}.err").read_text()
    return (work / f"{runtime}.out").read_text()


@pytest.mark.parametrize("runtime", ["bwrap", "podman"])
def test_the_image_env_reaches_the_step_before_the_steps_own(
    archives: dict[str, Path], runtime: str, tmp_path: Path
) -> None:
    from capsa.containers.image import import_image

    sif = tmp_path / "img.sif"
    import_image(f"oci-archive:{archives['oci-archive']}", sif)
    work = tmp_path / "work"
    work.mkdir()
    out = _env_in(runtime, sif, work, ImageCache(tmp_path / "cache"))
    lines = set(out.splitlines())
    assert "CI_BUILD=1" in lines  # the image's ENV
    assert "GREETING=the step wins" in lines  # the step's env over the image's
    assert "PATH=/bin:/usr/bin" in lines


def test_capsa_show_and_history_name_the_source(
    archives: dict[str, Path],
    cli: Callable[..., CliResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    sif = tmp_path / "img.sif"
    assert (
        cli("image", "import", "-q", f"docker-archive:{archives['docker-archive']}", "-o", sif).rc
        == 0
    )
    digest = json.loads(cli("image", "inspect", sif, "--json").out)["source"]["digest"]
    monkeypatch.chdir(proj)
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    r = cli(
        "run", "-q", "--runtime", "bwrap", "--image", sif, "--name", "ci", "--output", "ci.txt",
        "--", "sh", "-c", "echo $CI_BUILD > ci.txt",
    )  # fmt: skip
    assert r.rc == 0, r.err
    assert (proj / "ci.txt").read_text() == "1\n"
    log = json.loads(cli("log", "--json").out)
    assert log[0]["step"]["env"]["PATH"] == IMAGE_PATH  # the image's PATH, recorded
    assert cli("pack", "-q", "-o", tmp_path / "b.capsa", "--from-journal", "ci.txt").rc == 0
    show = cli("show", tmp_path / "b.capsa").out.decode()
    assert f"from {archives['name']} {digest}" in show
    hist = cli("history", tmp_path / "b.capsa", "ci.txt").out.decode()
    assert f"source {archives['name']} {digest}" in hist


def test_files_that_are_not_runnable_sifs_say_what_they_are(
    archives: dict[str, Path], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    r = cli("sif", "inspect", archives["oci-archive"])
    assert r.rc == 3 and "this is an OCI archive" in r.err
    assert "capsa image import oci-archive:" in r.err and len(r.err_lines) == 1
    r = cli("sif", "inspect", archives["docker-archive"])
    assert "this is a docker archive" in r.err and "docker-archive:" in r.err
    oci_sif = tmp_path / "oci.sif"
    with oci_sif.open("wb") as f:
        write_sif(f, [SifObject("OCIRootIndex", b"{}"), SifObject("OCIBlob", b"{}")])
    img, close = open_sif(oci_sif)
    try:
        with pytest.raises(FormatError, match="OCI-SIF"):
            img.primary_partition()
    finally:
        close()
    enc = tmp_path / "enc.sif"
    with enc.open("wb") as f:
        write_sif(f, [SifObject.partition(b"hsqs" + bytes(60), fs_type="EncryptedSquashfs")])
    img, close = open_sif(enc)
    try:
        with pytest.raises(FormatError, match="encrypted"):
            img.primary_partition()
    finally:
        close()


def test_cache_ls_and_prune(
    archives: dict[str, Path],
    cli: Callable[..., CliResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    sif = tmp_path / "img.sif"
    assert cli("image", "import", "-q", f"dir:{archives['rootfs']}", "-o", sif).rc == 0
    get_runtime("bwrap").rootfs(  # type: ignore[attr-defined]
        RunSpec(sif, sha256_file(sif), ("true",), {}, "/work", tmp_path)
    )
    (tmp_path / "cache" / "images" / f".{'0' * 64}.dead").mkdir()
    entries = json.loads(cli("image", "cache", "ls", "--json").out)
    assert {e["complete"] for e in entries} == {True, False}
    done = next(e for e in entries if e["complete"])
    assert done["digest"] == sha256_file(sif) and done["size"] > 500_000
    r = cli("image", "cache", "prune", "--older-than", "1d", "--json")
    assert json.loads(r.out) == []  # just used
    assert cli("image", "cache", "prune", "--older-than", "soon").rc == 2
    removed = json.loads(cli("image", "cache", "prune", "--json").out)
    assert len(removed) == 2
    assert json.loads(cli("image", "cache", "ls", "--json").out) == []


def test_tar_and_dir_sources_import_the_same_tree(
    archives: dict[str, Path], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    rootfs = archives["rootfs"]
    for name, mode in (("plain.tar", "w"), ("packed.tar.gz", "w:gz")):
        with tarfile.open(tmp_path / name, mode) as t:  # type: ignore[call-overload]
            t.add(rootfs, arcname=".")
    sifs = {}
    for src in ("tar:plain.tar", "tar:packed.tar.gz", "dir:rootfs"):
        where = rootfs.parent if src.startswith("dir:") else tmp_path
        out = tmp_path / f"{src.split(':')[1]}.sif"
        r = cli(
            "image", "import", "-q", f"{src.split(':')[0]}:{where / src.split(':')[1]}", "-o", out
        )
        assert r.rc == 0, r.err
        # The tree, not capsa's metadata (which names the source).
        sifs[src] = {k: v for k, v in _listing(out).items() if ".singularity.d" not in k}
    assert sifs["tar:plain.tar"] == sifs["tar:packed.tar.gz"] == sifs["dir:rootfs"]
    assert sifs["dir:rootfs"]["/bin/busybox"].startswith("-rwxr-xr-x 0/0")
