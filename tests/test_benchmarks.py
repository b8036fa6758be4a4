"""Every committed benchmark runs to its end: each one in its smoke mode (tiny sizes, one run), as
a real process, exactly as a user would start it. Timings are never asserted; the benchmarks
print them. A benchmark that cannot start its baseline tool fails here, so CI installs it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

SMOKE = {
    "bench": ["--smoke", "--markdown", "smoke.md"],  # the report is written too
    "bench_dask": ["--smoke"],
    "bench_record": ["--smoke"],
    "bench_snakemake": ["--smoke"],
    "bench_report": ["--steps", "30", "--repeat", "1"],
    "bench_compare": ["--entries", "200000"],
    "large_manifest": ["--files", "20000", "--blobs", "200"],
}


def run_bench(name: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAPSA_CACHE": str(tmp / "cache"), "TMPDIR": str(tmp)}
    return subprocess.run(
        [sys.executable, str(BENCH / f"{name}.py"), *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMOKE))
def test_benchmark_runs_to_its_end(name: str, tmp_path: Path) -> None:
    if name == "bench_compare":
        pytest.importorskip("uproot", reason="the root extra (uproot) is not installed")
    args = list(SMOKE[name])
    if name == "large_manifest":
        args += ["--dir", str(tmp_path / "lm")]
    p = run_bench(name, args, tmp_path)
    assert p.returncode == 0, (
        f"{name} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    )
    assert "Traceback" not in p.stderr
    assert p.stdout.strip(), f"{name} printed no results"


# Smoke-run by a test of their own, which also checks what they measure.
ELSEWHERE = {"bench_remote": "tests/storage/test_bench_remote.py"}


def test_every_benchmark_has_a_smoke_run() -> None:
    """A new benchmark gets a smoke run here, or CI would not notice when it stops working."""
    scripts = {p.stem for p in BENCH.glob("*.py")} - {"make_corpus"}
    missing = scripts - set(SMOKE) - set(ELSEWHERE)
    assert not missing, sorted(missing)
    for test in ELSEWHERE.values():
        assert (BENCH.parent / test).is_file(), test


# The public API (src/capsa/__init__.py): `capsa`'s own __all__ and the packages it names.
PUBLIC_MODULES = {"capsa", "capsa.compare", "capsa.replay"}
# large_manifest.py writes its bundle of up to a million logical files straight from the format
# pieces (ZIP writer, canonical JSON, DSSE) in seconds: no public writer makes such a bundle
# without packing that many real files, which would take longer than what it measures.
PRIVATE_ALLOWED = {"large_manifest"}


def capsa_imports(path: Path) -> set[str]:
    """Every capsa module a script imports (``import capsa.x``, ``from capsa.x import y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "capsa":  # `from capsa import compare` imports capsa.compare
                names += [f"capsa.{a.name}" for a in node.names if a.name in ("compare", "replay")]
        else:
            continue
        found |= {n for n in names if n == "capsa" or n.startswith("capsa.")}
    return found


def test_benchmarks_use_only_the_public_api() -> None:
    """A benchmark that reaches into capsa's internals breaks with the next refactor (and then
    measures something a user cannot run): only the public modules are imported."""
    bad = {
        f"{p.name}: {m}"
        for p in sorted(BENCH.glob("*.py"))
        if p.stem not in PRIVATE_ALLOWED
        for m in capsa_imports(p) - PUBLIC_MODULES
    }
    assert not bad, sorted(bad)
    # and the exemption is still needed: drop it once large_manifest.py goes public-only
    assert all(capsa_imports(BENCH / f"{s}.py") - PUBLIC_MODULES for s in PRIVATE_ALLOWED)


def test_capsa_imports_sees_private_modules(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text(
        "import capsa\nimport capsa.format.zstdseek\nfrom capsa.replay import replay\n"
        "from capsa._internal.crc import crc32\ndef f():\n    from capsa.bundle import pack\n"
    )
    assert capsa_imports(script) - PUBLIC_MODULES == {
        "capsa.format.zstdseek",
        "capsa._internal.crc",
        "capsa.bundle",
    }
