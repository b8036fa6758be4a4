"""Hardening (spec/format.md §2.1): a signed bundle never reaches outside its sandbox, and a
step's symbolic link never makes capsa read, seal or print a host file.

Hostile bundles are written and signed by tests/hostile.py; capsa runs as a real process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import capsa
from capsa._internal.fs import open_dir, open_root
from capsa.errors import FormatError
from capsa.recording.journal import Journal
from capsa.signing.keys import keygen, load_private_key
from conftest import capsa_subprocess
from hostile import digest, step, write_bundle
from images import image

pytestmark = pytest.mark.container  # real containers (bwrap) and built test images

SECRET = b"host secret: never in a bundle\n"


@pytest.fixture
def signer(tmp_path: Path) -> tuple[object, Path]:
    priv, pub, _ = keygen(tmp_path / "attacker")
    return load_private_key(priv), pub


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"name": "x/../../../../VICTIM/evil"}, "steps.0.name"),
        ({"name": ".."}, "steps.0.name"),
        ({"workdir": "/work/../../VICTIM"}, "steps.0.workdir"),
        ({"workdir": "work"}, "steps.0.workdir"),
        (
            {"binds": [{"source": "/data", "target": "/x/../../VICTIM", "readonly": True}]},
            "steps.0.binds.0.target",
        ),
        ({"argv": ["sh", "-c", "echo a\u0000b"]}, "steps.0.argv.2"),
        ({"env": {"PATH": "/bin", "A=B": "1"}}, "steps.0.env"),
        ({"env": {"PATH": "/bin\u0000:/evil"}}, "steps.0.env.PATH"),
    ],
)
def test_a_signed_bundle_with_a_hostile_step_is_refused_before_anything_runs(
    tmp_path: Path, signer: tuple[object, Path], fields: dict[str, object], where: str
) -> None:
    busybox = image("busybox").read_bytes()
    victim = tmp_path / "victim"
    victim.mkdir()
    fields = json.loads(json.dumps(fields).replace("VICTIM", str(victim).strip("/")))
    argv = ["sh", "-c", "echo pwned > stdout-was-here; mkdir -p w; echo x > w/x"]
    hostile = {**step("select", busybox, argv), **fields}
    key, pub = signer
    b = write_bundle(tmp_path / "hostile.capsa", {"images/b.sif": busybox}, [hostile], key=key)  # type: ignore[arg-type]
    work = tmp_path / "replays"
    work.mkdir()
    for args in (
        ["verify", b, "--key", pub],
        ["replay", b, "--key", pub, "--workdir", work, "--runtime", "bwrap"],
        ["history", b],
        ["export", b, "--prov", tmp_path / "p.json"],
    ):
        r = capsa_subprocess(*args, env={**os.environ, "CAPSA_CACHE": str(tmp_path / "c")})
        err = r.stderr.decode()
        assert r.returncode == 3, (args, err)
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"invalid manifest at {where}" in err
    assert _tree(victim) == [] and _tree(work) == []
    assert not (tmp_path / "p.json").exists()


def test_confined_directories_refuse_a_name_that_is_a_path(tmp_path: Path) -> None:
    """Defence in depth: even a name that slipped past the models is one segment or nothing."""
    fd = open_root(tmp_path)
    try:
        for bad in ("x/../../escape", "..", "", "a\0b"):
            with pytest.raises(FormatError):
                open_dir(fd, [bad], create=True)
    finally:
        os.close(fd)
    assert _tree(tmp_path) == []


def test_chain_replay_never_copies_through_a_link(
    tmp_path: Path, signer: tuple[object, Path]
) -> None:
    """Step 1's replayed "output" is a link to a host file; step 2 (its consumer) must not get
    the host file's bytes: the output is missing, the consumer skipped."""
    busybox = image("busybox").read_bytes()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    data = b"recorded data\n"
    s1 = step(
        "make",
        busybox,
        ["sh", "-c", f"ln -s {secret} data.txt"],
        outputs=[
            {
                "path": "data.txt",
                "digest": digest(data),
            }
        ],
    )
    s2 = step(
        "use",
        busybox,
        ["sh", "-c", "cat data.txt > copy.txt"],
        inputs=[{"path": "data.txt", "digest": s1["outputs"][0]["digest"]}],
        outputs=[{"path": "copy.txt", "digest": s1["outputs"][0]["digest"]}],
    )
    key, pub = signer
    b = write_bundle(
        tmp_path / "chain.capsa", {"images/b.sif": busybox, "data.txt": data}, [s1, s2], key=key
    )  # type: ignore[arg-type]
    r = capsa_subprocess(
        "replay",
        b,
        "--key",
        pub,
        "--runtime",
        "bwrap",
        "--json",
        env={**os.environ, "CAPSA_CACHE": str(tmp_path / "c")},
    )
    doc = json.loads(r.stdout)
    assert r.returncode == 1, r.stderr
    make, use = doc["steps"]
    assert make["outputs"][0]["verdict"] == "missing"
    assert "never followed" in make["outputs"][0]["note"]
    assert use["status"] == "skipped"
    assert SECRET.decode() not in r.stdout.decode()


# -- recording: a step's links never seal a host file ------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    d = tmp_path / "ana"
    d.mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "hostdir").mkdir()
    (tmp_path / "hostdir" / "x.txt").write_bytes(SECRET)
    return d


def _run(project: Path, *args: str | Path) -> tuple[int, str]:
    r = capsa_subprocess(
        "run",
        "--runtime",
        "bwrap",
        "--image",
        image("busybox"),
        *args,
        cwd=project,
        env={**os.environ, "CAPSA_CACHE": str(project.parent / "cache")},
    )
    return r.returncode, r.stderr.decode()


def _no_secret_anywhere(project: Path) -> None:
    for p in project.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert SECRET not in p.read_bytes(), p


def test_a_declared_output_that_is_a_link_is_refused_not_sealed(project: Path) -> None:
    secret = project.parent / "secret.txt"
    rc, err = _run(
        project, "--name", "leak", "--output", "out.txt", "--", "ln", "-s", str(secret), "out.txt"
    )
    assert rc == 1, err
    (entry,) = Journal(project).entries()
    assert entry.status == "failed" and "symbolic links are never followed" in entry.reason
    assert entry.step.outputs == ()
    r = capsa_subprocess("pack", "-o", "b.capsa", "--from-journal", cwd=project)
    assert r.returncode == 9 and b"no successful recorded steps" in r.stderr
    _no_secret_anywhere(project)


def test_a_linked_directory_above_an_output_is_refused(project: Path) -> None:
    hostdir = project.parent / "hostdir"
    rc, err = _run(
        project,
        "--name",
        "leak",
        "--output",
        "outdir/x.txt",
        "--",
        "ln",
        "-s",
        str(hostdir),
        "outdir",
    )
    assert rc == 1, err
    (entry,) = Journal(project).entries()
    assert entry.status == "failed" and "outdir/x.txt" in entry.reason
    _no_secret_anywhere(project)


def test_an_undeclared_link_is_ignored_and_the_bundle_holds_no_host_bytes(
    project: Path, tmp_path: Path
) -> None:
    secret = project.parent / "secret.txt"
    rc, err = _run(
        project,
        "--name",
        "ok",
        "--output",
        "real.txt",
        "--",
        "sh",
        "-c",
        f"ln -s {secret} side.txt; echo fine > real.txt",
    )
    assert rc == 0, err
    (entry,) = Journal(project).entries()
    assert [o.path for o in entry.step.outputs] == ["real.txt"]
    r = capsa_subprocess("pack", "-o", tmp_path / "b.capsa", "--from-journal", cwd=project)
    assert r.returncode == 0, r.stderr
    assert SECRET not in (tmp_path / "b.capsa").read_bytes()
    with capsa.open(tmp_path / "b.capsa") as b:
        assert "side.txt" not in b.manifest.files


def test_an_output_replaced_by_a_link_after_recording_is_not_packed(
    project: Path, tmp_path: Path
) -> None:
    rc, err = _run(
        project, "--name", "ok", "--output", "out.txt", "--", "sh", "-c", "echo fine > out.txt"
    )
    assert rc == 0, err
    (project / "out.txt").unlink()
    (project / "out.txt").symlink_to(project.parent / "secret.txt")
    r = capsa_subprocess("pack", "-o", tmp_path / "b.capsa", "--from-journal", cwd=project)
    err = r.stderr.decode()
    assert r.returncode == 2 and "symbolic link" in err and err.count("\n") == 1, err
    assert not (tmp_path / "b.capsa").exists()


def test_a_provenance_link_is_refused_and_nothing_of_it_is_kept(project: Path) -> None:
    secret = project.parent / "secret.txt"
    rc, err = _run(
        project,
        "--name",
        "p",
        "--provenance",
        "prov.json",
        "--",
        "ln",
        "-s",
        str(secret),
        "prov.json",
    )
    assert rc == 2 and "symbolic link" in err and err.count("\n") == 1, err
    (entry,) = Journal(project).entries()
    assert entry.step.provenance == ()
    _no_secret_anywhere(project)


def test_the_step_never_sees_or_changes_the_journal(project: Path) -> None:
    assert _run(project, "--name", "first", "--", "true")[0] == 0
    before = _tree(project / ".capsa")
    rc, err = _run(
        project,
        "--name",
        "peek",
        "--",
        "sh",
        "-c",
        "ls -A /work/.capsa; echo forged > /work/.capsa/000009.json",
    )
    assert rc != 0 and "Read-only file system" in err
    entries = Journal(project).entries()
    assert [e.step.name for e in entries] == ["first", "peek"]
    peek = entries[1]
    assert peek.status == "failed" and peek.step.stdout is not None
    # what `ls -A /work/.capsa` saw inside the sandbox: nothing
    assert Journal(project).blob_path(peek.step.stdout).read_bytes() == b""
    new = [p for p in _tree(project / ".capsa") if p not in before]
    assert not any("000009" in p for p in new)


def test_the_sandbox_does_not_see_host_paths_in_pid_1s_command_line(project: Path) -> None:
    """bwrap is pid 1 inside the sandbox; its command line (the unpacked image in the host's
    cache, the project directory) went to /proc/1/cmdline. Its options now go through a file
    descriptor (issue 10 item 11)."""
    rc, err = _run(project, "--name", "peek", "--", "cat", "/proc/1/cmdline")
    assert rc == 0, err
    (entry,) = Journal(project).entries()
    assert entry.step.stdout is not None
    seen = Journal(project).blob_path(entry.step.stdout).read_bytes().split(b"\0")
    assert seen[:2] == [b"bwrap", b"--args"] and seen[2].isdigit() and seen[3] == b"--", seen
    text = b" ".join(seen).decode()
    assert str(project) not in text and str(project.parent / "cache") not in text, text
    assert seen[-3:-1] == [b"cat", b"/proc/1/cmdline"]
