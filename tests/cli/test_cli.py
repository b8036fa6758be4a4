"""capsa.cli: commands, one-line errors with documented exit codes, cheap --help, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import capsa
from capsa.cli.main import main
from capsa.format import zstdseek

if TYPE_CHECKING:
    from conftest import CliResult, Corpus

Run = Callable[..., subprocess.CompletedProcess[bytes]]
FRAME = zstdseek.FRAME_SIZE


# -- cat -----------------------------------------------------------------------------------------


def test_cat_every_member(bundle_path: Path, corpus: Corpus, cli: Callable[..., CliResult]) -> None:
    for path in corpus.files:
        r = cli("cat", bundle_path, path)
        assert r.rc == 0 and r.err == ""
        assert r.out == corpus.data(path), path


@pytest.mark.parametrize(
    "offset,length",
    [
        (0, 1),
        (FRAME - 1, 2),
        (FRAME, 1),
        (FRAME + 1, 3 * FRAME),
        (3 * FRAME + FRAME // 2 - 1, 10),
        (10**9, 5),
        (5, 0),
        (123, None),
    ],
)
def test_cat_byte_range(
    bundle_path: Path,
    corpus: Corpus,
    cli: Callable[..., CliResult],
    offset: int,
    length: int | None,
) -> None:
    data = corpus.data("analysis/signal.bin")
    args = ["cat", bundle_path, "analysis/signal.bin", "--offset", str(offset)]
    if length is not None:
        args += ["--length", str(length)]
    r = cli(*args)
    assert r.rc == 0
    end = len(data) if length is None else offset + length
    assert r.out == data[offset:end]


def test_cat_negative_range_is_usage_error(
    bundle_path: Path, cli: Callable[..., CliResult]
) -> None:
    for args in (["--offset", "-1"], ["--length", "-5"]):
        r = cli("cat", bundle_path, "analysis/signal.bin", *args)
        assert r.rc == 2
        assert len(r.err_lines) == 1 and r.err.startswith("capsa: error: ")
        assert r.out == b""


def test_cat_missing_member_exit_9(bundle_path: Path, cli: Callable[..., CliResult]) -> None:
    r = cli("cat", bundle_path, "missing/path")
    assert r.rc == 9
    assert r.err_lines == [
        f"capsa: error: {bundle_path}: missing/path: no such member (`capsa ls` lists the members)"
    ]
    assert r.out == b""


def test_cat_as_real_process(bundle_path: Path, corpus: Corpus, run_capsa: Run) -> None:
    for path in ("analysis/signal.bin", "analysis/run.h5", "analysis/empty.dat"):
        r = run_capsa("cat", bundle_path, path)
        assert r.returncode == 0, r.stderr
        assert r.stderr == b""
        assert r.stdout == corpus.data(path)
    r = run_capsa("cat", bundle_path, "missing/path")
    assert r.returncode == 9
    assert r.stderr.decode().count("\n") == 1 and b"Traceback" not in r.stderr


def test_cat_into_closed_pipe_is_quiet(bundle_path: Path) -> None:
    """`capsa cat B big | head -c 10`: the reader leaving is not an error."""
    with subprocess.Popen(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "capsa",
            "cat",
            str(bundle_path),
            "analysis/noise.bin",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        head = proc.stdout.read(10)
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 0
    assert len(head) == 10
    assert err == b""


# -- ls, pack, extract, verify output ----------------------------------------------------------


def test_ls(bundle_path: Path, corpus: Corpus, cli: Callable[..., CliResult]) -> None:
    r = cli("ls", bundle_path)
    assert r.rc == 0
    lines = r.out.decode().splitlines()
    assert lines[0].split() == ["ROLE", "SIZE", "STORED", "ENCODING", "DIGEST", "PATH"]
    assert [ln.split("  ")[-1] for ln in lines[1:]] == sorted(corpus.files)
    assert any("zstd-seekable" in ln and ln.endswith("analysis/signal.bin") for ln in lines)


def test_ls_json(bundle_path: Path, bundle: capsa.Bundle, cli: Callable[..., CliResult]) -> None:
    r = cli("ls", bundle_path, "--json")
    doc = json.loads(r.out)
    assert doc["id"] == bundle.id
    assert doc["format"] == capsa.FORMAT_VERSION
    assert {m["path"]: m["digest"] for m in doc["members"]} == {
        p: f.digest for p, f in bundle.manifest.files.items()
    }


def test_pack_summary_and_json(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    r = cli("pack", corpus.root, "-o", tmp_path / "a.capsa")
    assert r.rc == 0 and r.err == ""
    text = r.out.decode()
    assert text.startswith(f"packed {len(corpus.files)} files ({corpus.distinct_contents} blobs")
    assert "bundle id sha256:" in text
    r = cli("pack", corpus.root, "-o", tmp_path / "b.capsa", "--json")
    doc = json.loads(r.out)
    with capsa.open(tmp_path / "b.capsa") as b:
        assert doc["id"] == b.id
    assert doc["files"] == len(corpus.files)
    assert doc["blobs"] == corpus.distinct_contents
    assert doc["size"] == (tmp_path / "b.capsa").stat().st_size


def test_pack_metadata_and_roles(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    out = tmp_path / "m.capsa"
    r = cli(
        "pack",
        corpus.root,
        "-o",
        out,
        "-q",
        "--title",
        "Muon run",
        "--author",
        "A. B",
        "--author",
        "C. D",
        "--license",
        "CC0-1.0",
        "--identifier",
        "doi:10.1/x",
        "--created",
        "2024-01-01T00:00:00Z",
        "--role",
        "*.h5=output",
        "--role",
        "input",
    )
    assert r.rc == 0, r.err
    assert r.out == b""
    with capsa.open(out) as b:
        meta = b.manifest.bundle
        assert (meta.title, meta.license, meta.created) == (
            "Muon run",
            "CC0-1.0",
            "2024-01-01T00:00:00Z",
        )
        assert [a.name for a in meta.authors] == ["A. B", "C. D"]
        assert (meta.identifiers[0].scheme, meta.identifiers[0].value) == ("doi", "10.1/x")
        roles = {p: f.role for p, f in b.manifest.files.items()}
    assert roles.pop("analysis/run.h5") == "output"
    assert set(roles.values()) == {"input"}


@pytest.mark.parametrize(
    "args",
    [["--identifier", "nocolon"], ["--role", "*.h5=sources"], ["--created", "yesterday"]],
)
def test_pack_bad_arguments_exit_2(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult], args: list[str]
) -> None:
    r = cli("pack", corpus.root, "-o", tmp_path / "x.capsa", *args)
    assert r.rc == 2
    assert len(r.err_lines) == 1 and r.err.startswith("capsa: error: ")
    assert list(tmp_path.iterdir()) == []


def test_extract_json(bundle_path: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    r = cli("extract", bundle_path, "analysis/bin", "-C", tmp_path, "--json")
    assert r.rc == 0
    assert json.loads(r.out)["extracted"] == [str(tmp_path / "analysis/bin/run.sh")]


def test_verify_json(
    bundle_path: Path, bundle: capsa.Bundle, cli: Callable[..., CliResult]
) -> None:
    doc = json.loads(cli("verify", bundle_path, "--json").out)
    assert doc["ok"] is True and doc["problems"] == [] and doc["id"] == bundle.id
    assert doc["bytes_checked"] == sum(b.size for b in bundle.manifest.blobs.values())


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_flag_either_side_of_command(
    corpus: Corpus, tmp_path: Path, cli: Callable[..., CliResult], where: str
) -> None:
    args = ["pack", corpus.files["analysis/empty.dat"], "-o", tmp_path / "q.capsa"]
    r = cli("-q", *args) if where == "before" else cli(*args, "-q")
    assert r.rc == 0
    assert r.out == b"" and r.err == ""


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert (
        capsys.readouterr().out.strip()
        == f"capsa {capsa.__version__} (format {capsa.FORMAT_VERSION})"
    )


def test_usage_errors_from_argparse_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"], ["pack", "x"], ["verify", "b", "--level", "paranoid"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    assert "usage: capsa" in capsys.readouterr().err


# -- errors: one line, documented exit code, traceback only with -v ----------------------------


NOT_BUNDLES: dict[str, tuple[Callable[[Path], object], int]] = {
    "text": (lambda p: p.write_text("hello\n"), 3),
    "directory": (lambda p: p.mkdir(), 3),
    "empty": (lambda p: p.write_bytes(b""), 3),
    "nonexistent": (lambda p: None, 9),
}


@pytest.mark.parametrize("kind", list(NOT_BUNDLES))
@pytest.mark.parametrize(
    "command", [["ls"], ["verify"], ["cat", "@", "x"], ["extract", "@", "-C", "out"]]
)
def test_not_a_bundle_one_line(
    tmp_path: Path, cli: Callable[..., CliResult], kind: str, command: list[str]
) -> None:
    make, code = NOT_BUNDLES[kind]
    p = tmp_path / "thing.capsa"
    make(p)
    subs = {"@": str(p), "out": str(tmp_path / "out")}
    argv = [subs.get(a, a) for a in command]
    if "@" not in command:
        argv.append(str(p))
    r = cli(*argv)
    assert r.rc == code
    assert len(r.err_lines) == 1
    assert r.err_lines[0].startswith(f"capsa: error: {p}: ")
    assert "Traceback" not in r.err
    assert r.out == b""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("position", ["global", "command"])
def test_verbose_shows_traceback(
    tmp_path: Path, cli: Callable[..., CliResult], position: str
) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("not a bundle\n")
    r = cli("-v", "ls", p) if position == "global" else cli("ls", "-v", p)
    assert r.rc == 3
    assert "Traceback (most recent call last)" in r.err
    assert "capsa.errors.FormatError" in r.err
    assert r.err_lines[-1].startswith(f"capsa: error: {p}: not a capsa bundle")


def test_errors_in_real_process(tmp_path: Path, run_capsa: Run) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("not a bundle\n")
    r = run_capsa("verify", p)
    assert r.returncode == 3
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("capsa: error: ") and "Traceback" not in err
    r = run_capsa("-v", "verify", p)
    assert r.returncode == 3
    assert "Traceback" in r.stderr.decode()
    r = run_capsa("ls", tmp_path / "nope.capsa")
    assert r.returncode == 9
    assert r.stderr.decode() == f"capsa: error: {tmp_path / 'nope.capsa'}: no such bundle\n"


def test_io_error_exit_10(bundle_path: Path, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    r = cli("extract", bundle_path, "-C", blocker)  # a file where the directory should be
    assert r.rc == 10
    assert len(r.err_lines) == 1 and r.err.startswith("capsa: error: ")


# -- `capsa --help` stays cheap ------------------------------------------------------------------


def test_help_does_not_import_h5py() -> None:
    code = textwrap.dedent("""
        import sys, contextlib, io
        import capsa.cli
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                capsa.cli.main(["--help"])
            except SystemExit as e:
                assert e.code == 0, e.code
        assert "pack" in out.getvalue()
        for sub in ("pack", "ls", "cat", "extract", "verify"):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    capsa.cli.main([sub, "--help"])
                except SystemExit:
                    pass
        assert "h5py" not in sys.modules, "capsa --help imported h5py"
        assert "numpy" not in sys.modules, "capsa --help imported numpy"
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_help_importtime_has_no_h5py() -> None:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "capsa", "--help"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0
    assert "usage: capsa" in r.stdout
    imported = [
        ln.rsplit("|", 1)[-1].strip()
        for ln in r.stderr.splitlines()
        if ln.startswith("import time:")
    ]
    assert "capsa.cli" in imported  # the measurement works...
    assert not [m for m in imported if m.split(".")[0] == "h5py"]  # ...and h5py is absent


# -- bounded memory ------------------------------------------------------------------------------

MEMORY_DRIVER = textwrap.dedent("""
    import hashlib, json, os, resource, subprocess, sys
    work = sys.argv[1]
    src = os.path.join(work, "big.bin")
    out = os.path.join(work, "big.capsa")
    half = 300 << 20
    want = hashlib.sha256()
    line = b"".join(b"capsa memory test record %08d\\n" % i for i in range(1 << 15))
    with open(src, "wb") as f:
        n = 0
        while n < half:  # compressible half
            chunk = line[: half - n]
            f.write(chunk); want.update(chunk); n += len(chunk)
        for _ in range(half // (8 << 20)):  # random half
            chunk = os.urandom(8 << 20)
            f.write(chunk); want.update(chunk)
        rest = os.urandom(half % (8 << 20))
        f.write(rest); want.update(rest)
    capsa = [sys.executable, "-m", "capsa", "-q"]
    subprocess.run(capsa + ["pack", src, "-o", out], check=True)
    os.unlink(src)
    subprocess.run(capsa + ["verify", out], check=True)
    proc = subprocess.Popen(capsa + ["cat", out, "big.bin"], stdout=subprocess.PIPE)
    got = hashlib.sha256()
    while chunk := proc.stdout.read(1 << 20):
        got.update(chunk)
    assert proc.wait() == 0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_mib": peak_kib / 1024, "same": got.digest() == want.digest(),
                      "bundle": os.path.getsize(out)}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux")
def test_pack_verify_cat_600_mib_in_bounded_memory(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", MEMORY_DRIVER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["same"], "cat did not reproduce the packed file"
    assert result["bundle"] < 0.7 * (600 << 20)  # the compressible half was compressed
    assert result["peak_mib"] < 200, f"peak RSS {result['peak_mib']:.0f} MiB"


def test_memory_driver_measures_children() -> None:
    """The measurement itself: a child that allocates 300 MiB is seen."""
    code = textwrap.dedent("""
        import resource, subprocess, sys
        touch = "b = bytearray(300 << 20); b[::4096] = b'x' * len(b[::4096])"
        subprocess.run([sys.executable, "-c", touch], check=True)
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(r.stdout) >= 300
