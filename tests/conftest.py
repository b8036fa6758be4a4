"""Shared fixtures: a small but realistic corpus, a bundle packed from it, CLI runners.

The corpus (session-scoped, treat as read-only; copy it with ``corpus_copy`` before changing it):

    analysis/run.h5                      HDF5 made by h5py: contiguous, chunked+gzip, 2-D, strings,
                                         attributes, an empty dataset
    analysis/signal.bin                  3.5 MiB compressible (4 zstd frames, the last one partial)
    analysis/noise.bin                   1.25 MiB random bytes (incompressible)
    analysis/empty.dat                   empty file
    analysis/bin/run.sh                  executable script (mode 0755)
    analysis/nested/deeper/notes.txt     text
    analysis/nested/copy-of-notes.txt    the same bytes as notes.txt (stored once)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest

import capsa
from capsa.cli.main import main as cli_main
from capsa.format import zstdseek

FRAME = zstdseek.FRAME_SIZE
SIGNAL_SIZE = 3 * FRAME + FRAME // 2
NOISE_SIZE = FRAME + FRAME // 4
NOTES = "Run 4711: calibration looked fine.\nÜnïcödé survives, and so do tabs\tand CRLF\r\n" * 20


@dataclass
class Corpus:
    """Files on disk, keyed by the logical path capsa gives them when packing ``root``."""

    root: Path  # the directory ``analysis`` (pack it as a whole)
    files: dict[str, Path]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # HDF5 dataset name → content

    def data(self, logical: str) -> bytes:
        return self.files[logical].read_bytes()

    @property
    def distinct_contents(self) -> int:
        return len({self.data(p) for p in self.files})


def make_hdf5(path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A small HDF5 file with the layouts real analyses use."""
    arrays = {
        "raw/counts": rng.poisson(40, size=50_000).astype(np.int32),  # contiguous
        "raw/energy": rng.normal(100.0, 5.0, size=30_000),  # chunked + gzip
        "calib/matrix": np.outer(np.arange(64), np.arange(48)).astype(np.float32),  # 2-D
        "empty": np.zeros(0, dtype=np.float64),
    }
    with h5py.File(path, "w") as f:
        f.attrs["experiment"] = "capsa test"
        f.attrs["run"] = 4711
        f.create_dataset("raw/counts", data=arrays["raw/counts"])
        f.create_dataset(
            "raw/energy",
            data=arrays["raw/energy"],
            chunks=(4096,),
            compression="gzip",
            compression_opts=6,
            shuffle=True,
        )
        f.create_dataset("calib/matrix", data=arrays["calib/matrix"])
        f["calib/matrix"].attrs["unit"] = "keV/ch"
        f.create_dataset("empty", data=arrays["empty"])
        f.create_dataset("labels", data=np.array([b"alpha", b"beta", b"gamma"]))
    return arrays


def compressible_bytes(n: int, seed: int = 7) -> bytes:
    """Detector-like text records: compresses well but is not trivially repetitive."""
    rng = np.random.default_rng(seed)
    lines = []
    size = 0
    i = 0
    values = rng.integers(0, 4096, size=n // 16 + 1)
    while size < n:
        line = b"evt %08d ch %04d adc %05d\n" % (i, i % 64, values[i % len(values)])
        lines.append(line)
        size += len(line)
        i += 1
    return b"".join(lines)[:n]


def build_corpus(base: Path) -> Corpus:
    rng = np.random.default_rng(20240611)
    root = base / "analysis"
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "bin").mkdir()
    arrays = make_hdf5(root / "run.h5", rng)
    (root / "signal.bin").write_bytes(compressible_bytes(SIGNAL_SIZE))
    (root / "noise.bin").write_bytes(rng.bytes(NOISE_SIZE))
    (root / "empty.dat").write_bytes(b"")
    script = root / "bin" / "run.sh"
    script.write_text('#!/bin/sh\necho analysing "$@"\n')
    script.chmod(0o755)
    (root / "nested" / "deeper" / "notes.txt").write_bytes(NOTES.encode())
    (root / "nested" / "copy-of-notes.txt").write_bytes(NOTES.encode())
    files = {
        f"analysis/{p.relative_to(root).as_posix()}": p
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    return Corpus(root, files, arrays)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def corpus_copy(corpus: Corpus, tmp_path: Path) -> Corpus:
    """A private copy of the corpus that a test may touch, chmod or delete."""
    dest = tmp_path / "copy"
    dest.mkdir()
    shutil.copytree(corpus.root, dest / "analysis", symlinks=True)
    files = {k: dest / "analysis" / Path(k).relative_to("analysis") for k in corpus.files}
    return Corpus(dest / "analysis", files, corpus.arrays)


@pytest.fixture(scope="session")
def bundle_path(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus packed once with defaults. Read-only: copy it (``bundle_copy``) to damage it."""
    out = tmp_path_factory.mktemp("bundle") / "corpus.capsa"
    capsa.pack(out, [corpus.root], title="test corpus", authors=["A. Tester"], progress=False)
    out.chmod(0o444)
    return out


@pytest.fixture
def bundle_copy(bundle_path: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy.capsa"
    shutil.copyfile(bundle_path, dest)
    return dest


@pytest.fixture
def bundle(bundle_path: Path) -> Iterator[capsa.Bundle]:
    with capsa.open(bundle_path) as b:
        yield b


@dataclass
class CliResult:
    rc: int
    out: bytes
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture
def cli(capsysbinary: pytest.CaptureFixture[bytes]) -> Callable[..., CliResult]:
    """Run ``capsa ARGS`` in-process; returns exit code, stdout bytes and stderr text."""

    def run(*args: str | os.PathLike[str]) -> CliResult:
        capsysbinary.readouterr()
        rc = cli_main([str(a) for a in args])
        out, err = capsysbinary.readouterr()
        return CliResult(rc, out, err.decode())

    return run


def capsa_subprocess(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """``python -W error -m capsa ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "capsa", *[str(a) for a in args]],
        cwd=cwd,
        env=env,
        capture_output=True,
        check=check,
        timeout=300,
    )


def capsa_text(
    *args: str | os.PathLike[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`capsa_subprocess` with its stdout and stderr decoded."""
    r = capsa_subprocess(*args, cwd=cwd, env=env)
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


@pytest.fixture
def run_capsa() -> Callable[..., subprocess.CompletedProcess[bytes]]:
    return capsa_subprocess


def flip_byte(path: Path, offset: int) -> None:
    """Invert one byte of a file in place (and nothing else)."""
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)
        assert len(b) == 1
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


@pytest.fixture
def flip() -> Callable[[Path, int], None]:
    return flip_byte


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture
def tool() -> Callable[[str], str]:
    """``tool("unzip")`` → its path, or skip the test with the reason."""
    return require_tool
