"""Runtimes: bwrap really runs images, isolated like apptainer --containall --cleanenv; the
apptainer command line is right; bad images and missing commands give clear errors."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

import capsa
from capsa.containers.runtime import RunSpec, get_runtime
from capsa.containers.runtime.apptainer import ApptainerRuntime
from capsa.containers.runtime.bwrap import BwrapRuntime
from capsa.containers.runtime.cache import MARKER, ImageCache
from capsa.containers.sif import SifObject, write_sif
from capsa.errors import FormatError, RuntimeError_, UsageError
from capsa.format.digest import sha256_file
from images import image

pytestmark = pytest.mark.container  # real containers (bwrap) and built test images

SIF = Path(__file__).resolve().parents[2] / "fixtures" / "sif"


@pytest.fixture
def busybox() -> Path:
    return image("busybox")


@pytest.fixture
def cache(tmp_path: Path) -> ImageCache:
    return ImageCache(tmp_path / "cache")


def _spec(img: Path, work: Path, argv: list[str], **kw: object) -> RunSpec:
    env = {"PATH": "/bin:/usr/bin", "HOME": "/home/capsa", "TZ": "UTC"}
    return RunSpec(img, sha256_file(img), tuple(argv), env, "/work", work, **kw)  # type: ignore[arg-type]


def _run(rt: BwrapRuntime, spec: RunSpec, tmp: Path) -> tuple[int, str, str]:
    r = rt.run(spec, tmp / "out", tmp / "err")
    return r.exit_code, (tmp / "out").read_text(), (tmp / "err").read_text()


def test_bwrap_isolation_matches_containall_cleanenv(
    busybox: Path, cache: ImageCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("CAPSA_SECRET_HOST_VAR", "leak")
    script = (
        "env | sort; echo HOST=$(hostname); echo PWD=$(pwd); ls -A /tmp | wc -l; "
        "ls -A $HOME | wc -l; touch /should-fail 2>/dev/null && echo ROOT-WRITABLE; "
        "echo hi > /work/made.txt; ls /proc/self >/dev/null && echo PROC; "
        "wget -q -T 2 http://127.0.0.1:9/ 2>&1 | head -1; ip link 2>/dev/null | grep -c '^[0-9]'"
    )
    code, out, err = _run(BwrapRuntime(cache), _spec(busybox, work, ["sh", "-c", script]), tmp_path)
    assert code == 0, err
    env_lines = [line for line in out.splitlines() if "=" in line and line.split("=")[0].isupper()]
    assert "CAPSA_SECRET_HOST_VAR" not in out
    assert {line.split("=")[0] for line in env_lines} >= {"HOME", "PATH", "TZ"}
    assert "HOST=capsa" in out and "PWD=/work" in out
    assert "ROOT-WRITABLE" not in out and "PROC" in out
    assert (work / "made.txt").read_text() == "hi\n"  # the work directory is bound read-write


def test_bwrap_exit_code_and_streams_are_kept(
    busybox: Path, cache: ImageCache, tmp_path: Path
) -> None:
    code, out, err = _run(
        BwrapRuntime(cache),
        _spec(busybox, tmp_path, ["sh", "-c", "printf 'out\\0bin'; echo err >&2; exit 7"]),
        tmp_path,
    )
    assert (code, out, err) == (7, "out\0bin", "err\n")


def test_timeout_kills_the_step(busybox: Path, cache: ImageCache, tmp_path: Path) -> None:
    r = BwrapRuntime(cache).run(
        _spec(busybox, tmp_path, ["sleep", "30"], timeout=0.5), tmp_path / "o", tmp_path / "e"
    )
    assert r.timed_out and r.exit_code != 0


def test_command_not_found_in_image(busybox: Path, cache: ImageCache, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError_, match="command not found in the image: no-such-tool"):
        BwrapRuntime(cache).run(
            _spec(busybox, tmp_path, ["no-such-tool"]), tmp_path / "o", tmp_path / "e"
        )


def test_image_is_extracted_once_and_completely(
    busybox: Path, cache: ImageCache, tmp_path: Path
) -> None:
    rt = BwrapRuntime(cache)
    spec = _spec(busybox, tmp_path, ["true"])
    root = rt.rootfs(spec)
    marker = root.parent / MARKER
    assert marker.is_file() and (root / "bin" / "busybox").is_file()
    before = marker.stat().st_mtime_ns
    assert rt.rootfs(spec) == root and marker.stat().st_mtime_ns == before  # reused
    # An interrupted extraction (no marker) is redone, and leftovers are removed.
    marker.unlink()
    (cache.root / f".{spec.image_digest[7:]}.dead").mkdir()
    assert rt.rootfs(spec) == root and marker.is_file()
    assert not list(cache.root.glob(".*"))


def test_extraction_as_an_unprivileged_user(
    busybox: Path, cache: ImageCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The non-root path (-no-xattrs; device nodes and ownership may fail) yields a usable root."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    root = BwrapRuntime(cache).rootfs(_spec(busybox, tmp_path, ["true"]))
    assert (root / "bin" / "sh").exists()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root to drop to an unprivileged user with setpriv",
)
def test_bwrap_runs_rootless_as_nobody(busybox: Path, tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "cache")
    rt = BwrapRuntime(cache)
    work = tmp_path / "work"
    work.mkdir()
    spec = _spec(busybox, work, ["sh", "-c", "id -u; echo ok > /work/by-nobody"])
    cmd = rt.command(spec, rt.rootfs(spec))
    for p in (tmp_path, work):
        p.chmod(0o777)
    for d in (tmp_path.parent, tmp_path.parent.parent):
        d.chmod(d.stat().st_mode | stat.S_IXOTH)
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0 and "namespace" in r.stderr:
        pytest.skip(f"unprivileged user namespaces are disabled here: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "65534" and (work / "by-nobody").read_text() == "ok\n"


# -- images that cannot run -------------------------------------------------------------------


def _sif(tmp_path: Path, objects: list[SifObject]) -> Path:
    p = tmp_path / "bad.sif"
    with p.open("wb") as f:
        write_sif(f, objects)
    return p


def test_not_a_sif(cache: ImageCache, tmp_path: Path) -> None:
    p = tmp_path / "x.sif"
    p.write_bytes(b"not an image" * 20)
    with pytest.raises(FormatError, match="not a SIF image"):
        BwrapRuntime(cache).rootfs(_spec(p, tmp_path, ["true"]))


def test_sif_without_primary_partition(cache: ImageCache, tmp_path: Path) -> None:
    p = _sif(tmp_path, [SifObject("GenericJSON", b"{}")])
    with pytest.raises(FormatError, match="no primary system partition"):
        BwrapRuntime(cache).rootfs(_spec(p, tmp_path, ["true"]))


def test_non_squashfs_partition(cache: ImageCache, tmp_path: Path) -> None:
    p = _sif(tmp_path, [SifObject.partition(b"\0" * 8192, fs_type="Ext3")])
    with pytest.raises(FormatError, match="Ext3, not squashfs"):
        BwrapRuntime(cache).rootfs(_spec(p, tmp_path, ["true"]))


def test_image_for_another_architecture(cache: ImageCache, tmp_path: Path) -> None:
    squash = (SIF / "one-group.sif").read_bytes()[36864:40960]
    other = "s390x" if os.uname().machine != "s390x" else "amd64"
    p = _sif(tmp_path, [SifObject.partition(squash, arch=other)])
    with pytest.raises(RuntimeError_, match=f"built for {other}"):
        BwrapRuntime(cache).rootfs(_spec(p, tmp_path, ["true"]))


def test_damaged_squashfs(cache: ImageCache, tmp_path: Path) -> None:
    p = _sif(tmp_path, [SifObject.partition(b"hsqs" + b"\xff" * 8188)])
    with pytest.raises(FormatError, match="cannot unpack"):
        BwrapRuntime(cache).rootfs(_spec(p, tmp_path, ["true"]))
    assert not any(cache.root.iterdir())  # nothing half-extracted stays behind


# -- choosing a runtime -----------------------------------------------------------------------


def test_auto_prefers_apptainer_then_singularity_then_bwrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(RuntimeError_, match="no container runtime found") as e:
        get_runtime("auto")
    assert "apt-get install bubblewrap" in e.value.diagnostics()
    for name in ("bwrap", "singularity", "apptainer"):
        (bindir / name).write_text("#!/bin/sh\n")
        (bindir / name).chmod(0o755)
        assert get_runtime("auto").name == name
    with pytest.raises(UsageError):
        get_runtime("docker")


def test_missing_named_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError_, match="apptainer is not installed"):
        get_runtime("apptainer")
    with pytest.raises(RuntimeError_, match=r"bwrap.*not installed"):
        BwrapRuntime().version()


def test_apptainer_command_line_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spython says 'singularity' and replaces the whole environment: both are handled."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "log"
    fake = bindir / "apptainer"
    # A stand-in apptainer: records its argv and environment, then behaves like the command.
    fake.write_text(
        "#!/bin/sh\n"
        "if [ \"$1\" = --version ]; then echo 'apptainer version 1.3.4'; exit 0; fi\n"
        f"printf '%s\\n' \"$@\" > {log}.argv\nenv > {log}.env\n"
        "echo out; echo err >&2; exit 3\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("CAPSA_SECRET_HOST_VAR", "leak")
    img = SIF / "one-group.sif"
    work = tmp_path / "work"
    work.mkdir()
    spec = RunSpec(
        img,
        "sha256:" + "0" * 64,
        ("python3", "ana.py"),
        {"TZ": "UTC", "PYTHONHASHSEED": "0", "HOME": "/home/capsa"},
        "/work",
        work,
    )
    rt = get_runtime("auto")
    assert isinstance(rt, ApptainerRuntime)
    r = rt.run(spec, tmp_path / "o", tmp_path / "e")
    assert (r.exit_code, (tmp_path / "o").read_text(), (tmp_path / "e").read_text()) == (
        3,
        "out\n",
        "err\n",
    )
    assert (r.runtime, r.version) == ("apptainer", "1.3.4")
    argv = Path(f"{log}.argv").read_text().splitlines()
    assert argv[0] == "exec"
    assert argv[argv.index("--bind") + 1] == f"{work}:/work"
    for flag in ("--containall", "--cleanenv", "--pwd", "--net"):
        assert flag in argv
    assert argv[-3:] == [str(img), "python3", "ana.py"]
    env = dict(
        line.split("=", 1) for line in Path(f"{log}.env").read_text().splitlines() if "=" in line
    )
    assert env["APPTAINERENV_TZ"] == "UTC" and env["APPTAINERENV_PYTHONHASHSEED"] == "0"
    assert "APPTAINERENV_HOME" not in env  # apptainer refuses to override HOME this way
    assert "CAPSA_SECRET_HOST_VAR" not in env  # the runtime itself gets a minimal host environment
    assert env["PATH"].startswith(str(bindir))


def test_capsa_run_reads_a_sif_inside_a_bundle_in_place(tmp_path: Path) -> None:
    """A SIF stored as an identity blob can be unpacked straight out of the bundle."""
    busybox = image("analysis")  # large and incompressible: stored as identity
    b = capsa.pack(tmp_path / "b.capsa", [busybox]).path
    with capsa.open(b) as bundle:
        assert bundle.members()[0].encoding == "identity"
        f = bundle.open_member(busybox.name)
        from capsa.containers.sif import sif_from_file

        img = sif_from_file(f, f.size, where="bundle")
        _, entry = bundle.blob_entry(bundle.manifest.files[busybox.name].digest)
        root = ImageCache(tmp_path / "c").rootfs(
            img, sha256_file(busybox), extent=(b, entry.data_offset)
        )
    assert (root / "usr" / "bin" / "python3").exists()
