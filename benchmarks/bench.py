#!/usr/bin/env python3
"""capsa benchmarks: pack, verify, random access, extract, HDF5 diff, replay and startup
against standard tools (tar + zstd, sha256sum, bagit, h5diff, the bare step in bwrap).

    python benchmarks/bench.py [--corpus DIR] [--size-gb 2] [--workdir DIR] [--json OUT.json]
                               [--markdown OUT.md] [--repeat N] [--keep] [--update-readme]

Every command runs as its own process under ``/usr/bin/time`` (wall clock from the parent,
peak RSS and CPU from ``time``), after the corpus was read once so that it sits in the page
cache. Big outputs (bundle, tar.zst, bag, extracted trees) live in a work directory that is
removed at the end unless ``--keep``; the corpus is kept and reused (see make_corpus.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import filecmp
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_corpus import make_corpus

MB = 1000 * 1000
MIB = 1 << 20
TIME = "/usr/bin/time"
WARMUP = 1  # untimed runs before the timed ones (--warmup)
CORPUS = Path("/tmp/capsa-bench/corpus")


# --------------------------------------------------------------------------------------------
# running and measuring commands


@dataclass
class Run:
    wall: float
    rss_kib: int
    user: float
    sys: float
    rc: int
    other: float = 0.0  # CPU seconds used by other processes on the machine meanwhile


@dataclass
class Row:
    group: str
    name: str
    command: str
    wall: float  # median over runs, seconds
    walls: list[float]
    rss_mib: float | None  # max over runs
    cpu: float  # user + sys of the median run, seconds
    bytes: int | None = None  # bytes processed, for throughput
    baseline: str | None = None  # name of the row this one is compared with
    ratio: float | None = None  # speed(this) / speed(baseline)
    target: str | None = None
    ok: bool | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)
    other_load: float | None = 0.0  # mean cores busy with other processes (median run)
    best_ratio: float | None = None

    @property
    def mbps(self) -> float | None:
        return self.bytes / MB / self.wall if self.bytes and self.wall > 0 else None


def timed(
    cmd: list[str] | str,
    *,
    check: bool = True,
    stdout: int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run ``cmd`` (argv list, or a bash pipeline string) under /usr/bin/time."""
    fd, tfile = tempfile.mkstemp(prefix="capsa-bench-time-")
    os.close(fd)
    try:
        argv = cmd if isinstance(cmd, list) else ["bash", "-c", cmd]
        full = [TIME, "-f", "%e %M %U %S", "-o", tfile, *argv]
        busy0 = _busy_cpu()
        t0 = time.perf_counter()
        p = subprocess.run(full, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=cwd)
        wall = time.perf_counter() - t0
        busy = _busy_cpu() - busy0
        lines = Path(tfile).read_text().strip().splitlines()
    finally:
        Path(tfile).unlink()
    if check and p.returncode != 0:
        raise SystemExit(
            f"command failed ({p.returncode}): {show(cmd)}\n"
            f"{p.stderr.decode(errors='replace')[-2000:]}"
        )
    # GNU time prefixes "Command exited with non-zero status N" when rc != 0: take the last line.
    _, rss, user, sys_ = lines[-1].split()
    other = max(busy - float(user) - float(sys_), 0.0)
    return Run(wall, int(rss), float(user), float(sys_), p.returncode, other)


def _busy_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (all CPUs, from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def show(cmd: list[str] | str) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def measure(
    group: str,
    name: str,
    cmd: list[str] | str,
    *,
    repeat: int = 1,
    nbytes: int | None = None,
    before=None,
    check: bool = True,
    note: str = "",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    machine_cpu: bool = False,
) -> Row:
    """Median of ``repeat`` timed runs after WARMUP untimed ones.

    ``machine_cpu``: the command's work happens where ``/usr/bin/time`` cannot see it (a process
    in bwrap's PID namespace is never waited for by its ancestors), so CPU s is the whole
    machine's busy CPU time during the run and "other load" is not known.
    """
    runs = []
    for i in range(WARMUP + repeat):
        if before is not None:
            before()
        run = timed(cmd, check=check, env=env, cwd=cwd)
        if i >= WARMUP:  # the first run after big deletions/writes is often much slower
            runs.append(run)
    row, med = _timed_row(group, name, cmd, runs, nbytes, note)
    if machine_cpu:
        row.cpu = med.user + med.sys + med.other
        row.other_load = None
    _log_row(row)
    return row


def _timed_row(
    group: str, name: str, cmd: list[str] | str, runs: list[Run], nbytes: int | None, note: str = ""
) -> tuple[Row, Run]:
    """The row of ``runs`` (median wall time, peak RSS, the median run's CPU) and that run."""
    walls = [r.wall for r in runs]
    med = sorted(runs, key=lambda r: r.wall)[len(runs) // 2]
    row = Row(
        group,
        name,
        show(cmd),
        statistics.median(walls),
        walls,
        max(r.rss_kib for r in runs) / 1024,
        med.user + med.sys,
        nbytes,
        note=note,
        other_load=med.other / med.wall if med.wall > 0 else 0.0,
    )
    return row, med


def _log_row(row: Row, suffix: str = "") -> None:
    log(
        f"  {row.name:<34} {row.wall:8.3f} s  "
        + (f"{row.mbps:8.1f} MB/s  " if row.mbps else " " * 16)
        + f"RSS {row.rss_mib:7.1f} MiB  CPU {row.cpu:7.2f} s  other load "
        + _fmt(row.other_load, "4.2f")
        + suffix
    )


class _Stop(Exception):
    """--only: the operations asked for are measured."""


def measure_pair(
    a: tuple[str, str, list[str] | str],
    b: tuple[str, str, list[str] | str],
    *,
    repeat: int,
    nbytes: int | None,
    before: tuple,
) -> tuple[Row, Row]:
    """Like ``measure`` for two commands, their runs alternating (a, b, a, b, ...), so that a
    change in the machine's load hits both alike. ``b.extra["pair_ratio"]`` is the median of
    a's time / b's time over the pairs."""
    runs: tuple[list[Run], list[Run]] = ([], [])
    for i in range(WARMUP + repeat):
        for k, (_, _, cmd) in enumerate((a, b)):
            before[k]()
            run = timed(cmd)
            if i >= WARMUP:
                runs[k].append(run)
    out = []
    for (group, name, cmd), rs in zip((a, b), runs, strict=True):
        row, _ = _timed_row(group, name, cmd, rs, nbytes)
        _log_row(row, "  runs " + " ".join(f"{w:.2f}" for w in row.walls))
        out.append(row)
    out[1].extra["pair_ratio"] = statistics.median(
        x.wall / y.wall for x, y in zip(runs[0], runs[1], strict=True)
    )
    return out[0], out[1]


def compare(row: Row, base: Row, target: str | None = None, ok: bool | None = None) -> None:
    row.baseline = base.name
    row.ratio = base.wall / row.wall if row.wall > 0 else None
    row.best_ratio = min(base.walls) / min(row.walls) if min(row.walls) > 0 else None
    row.target, row.ok = target, ok


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sync() -> None:
    subprocess.run(["sync"], check=False)


def drop_dir(p: Path) -> None:
    if p.exists():
        shutil.rmtree(p)
    sync()


def version_of(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


# --------------------------------------------------------------------------------------------
# the benchmark


def corpus_files(root: Path) -> list[Path]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        out.extend(Path(dirpath) / f for f in sorted(files))
    return out


def warm(files: list[Path]) -> tuple[float, int]:
    t0 = time.perf_counter()
    total = 0
    buf = bytearray(8 << 20)
    for p in files:
        with p.open("rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return time.perf_counter() - t0, total


def capsa_cmd() -> list[str]:
    exe = shutil.which("capsa")
    return [exe] if exe else [sys.executable, "-m", "capsa"]


def bench(args: argparse.Namespace) -> dict:
    corpus = args.corpus.resolve()
    info = make_corpus(corpus, args.size_gb, args.blob_gib, args.seed)
    files = corpus_files(corpus)
    total = sum(p.stat().st_size for p in files)
    h5 = [f for f in info["files"] if f["path"].endswith(".h5")]
    n_gzip = sum(f["gzip"] for f in h5)
    log(
        f"corpus {corpus}: {len(files)} files, {total / MB:.1f} MB "
        f"({len(h5)} HDF5: {n_gzip} gzip-filtered, {len(h5) - n_gzip} uncompressed)"
    )

    work = (
        Path(args.workdir)
        if args.workdir
        else Path(tempfile.mkdtemp(prefix="capsa-bench-", dir="/tmp"))
    )
    work.mkdir(parents=True, exist_ok=True)
    capsa = capsa_cmd()
    bundle = work / "X.capsa"
    tarzst = work / "X.tar.zst"
    rows: list[Row] = []
    diff_detail: dict = {}
    replay_detail: dict = {}
    env_info = {
        "date": dt.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30), 1),
        "python": platform.python_version(),
        "capsa": version_of([*capsa, "--version"]),
        "zstd": version_of(["zstd", "--version"]),
        "tar": version_of(["tar", "--version"]),
        "sha256sum": version_of(["sha256sum", "--version"]),
        "bagit": version_of(["bagit.py", "--version"]),
        "h5py": _h5py_versions(),
        "h5diff": version_of(["h5diff", "--version"]) if shutil.which("h5diff") else None,
        "bwrap": version_of(["bwrap", "--version"]) if shutil.which("bwrap") else None,
        "kernel": platform.release(),
        "capsa_commit": _git_head(),
        "loadavg_start": os.getloadavg()[0],
    }
    log("environment: " + json.dumps(env_info))

    try:
        # -- page cache ----------------------------------------------------------------------
        log("warming the page cache (reading every corpus file once)")
        secs, n = warm(files)
        log(f"  read {n / MB:.1f} MB in {secs:.2f} s; second pass:")
        secs, n = warm(files)
        rows.append(
            Row(
                "io",
                "read corpus (warm cache)",
                "python read()",
                secs,
                [secs],
                0.0,
                secs,
                n,
                note="ceiling: bytes/s from the page cache",
            )
        )
        log(f"  read {n / MB:.1f} MB in {secs:.2f} s = {n / MB / secs:.0f} MB/s")

        log("single-core primitives")
        prim = micro(corpus, info)
        for k, v in prim.items():
            log(f"  {k:<52} {v:9.2f}")

        # -- pack ----------------------------------------------------------------------------
        log("pack")
        tar_pack = (
            f"tar --sort=name -C {shlex.quote(str(corpus.parent))} -cf - "
            f"{shlex.quote(corpus.name)} | zstd -3 -T2 -q -f -o {shlex.quote(str(tarzst))}"
        )
        pack_repeat = max(args.repeat, 3)  # the pack target is judged on a median of >= 3
        r_tar, r_pack = measure_pair(
            ("pack", "tar | zstd -3 -T2", "set -o pipefail; " + tar_pack),
            (
                "pack",
                "capsa pack",
                [*capsa, "pack", "-q", "--force", "-o", str(bundle), str(corpus)],
            ),
            repeat=pack_repeat,
            nbytes=total,
            before=(
                lambda: (tarzst.unlink(missing_ok=True), sync()),
                lambda: (bundle.unlink(missing_ok=True), sync()),
            ),
        )
        r_tar.extra["output_bytes"] = tarzst.stat().st_size
        r_pack.extra["output_bytes"] = bundle.stat().st_size
        r_tar_sync = measure(
            "pack",
            "tar | zstd -3 -T2, then fsync",
            f"set -o pipefail; {tar_pack} && sync {shlex.quote(str(tarzst))}",
            repeat=pack_repeat,
            nbytes=total,
            before=lambda: (tarzst.unlink(missing_ok=True), sync()),
            note="capsa pack fsyncs its output before renaming it into place",
        )
        rows += [r_tar, r_tar_sync]
        size_ratio = bundle.stat().st_size / tarzst.stat().st_size
        compare(r_pack, r_tar, "≥ 2.0x tar|zstd at ≤ 1.05x its size", None)
        r_pack.ok = r_pack.ratio is not None and r_pack.ratio >= 2.0 and size_ratio <= 1.05
        r_pack.extra["size_ratio"] = size_ratio
        r_pack.extra["ratio_vs_fsync_baseline"] = r_tar_sync.wall / r_pack.wall
        r_pack.note = (
            f"runs alternate with tar | zstd ({pack_repeat} each, after "
            f"{WARMUP} untimed); median of the per-pair ratios "
            f"{r_pack.extra['pair_ratio']:.2f}x; {r_tar_sync.wall / r_pack.wall:.2f}x the "
            f"fsync'ing baseline; includes capsa's own fsync; size {size_ratio:.3f}x the .tar.zst"
        )
        rows.append(r_pack)
        log(
            f"  sizes: tar.zst {tarzst.stat().st_size / MB:.1f} MB, "
            f"capsa {bundle.stat().st_size / MB:.1f} MB ({size_ratio:.3f}x) "
            f"(corpus {total / MB:.1f} MB); pack {r_pack.ratio:.2f}x tar | zstd (median of "
            f"{pack_repeat})"
        )
        members = _members(capsa, bundle)
        encodings = {m["path"]: m["encoding"] for m in members}
        sync()
        if args.only == "pack":
            raise _Stop

        # -- hashing / fixity ------------------------------------------------------------------
        log("hashing and fixity")
        listing = work / "files.list"
        listing.write_bytes(b"\0".join(os.fsencode(p) for p in files) + b"\0")
        q = shlex.quote(str(listing))
        rows.append(
            measure(
                "fixity",
                "sha256sum (1 process)",
                f"xargs -0 -a {q} sha256sum > /dev/null",
                repeat=args.repeat,
                nbytes=total,
            )
        )
        rows.append(
            measure(
                "fixity",
                "sha256sum (xargs -P2)",
                f"xargs -0 -a {q} -P2 -n1 sha256sum > /dev/null",
                repeat=args.repeat,
                nbytes=total,
            )
        )
        bag = work / "bag"

        def fresh_bag() -> None:
            drop_dir(bag)
            subprocess.run(["cp", "-al", str(corpus), str(bag)], check=True)

        r_bag_make = measure(
            "fixity",
            "bagit.py make (sha256, 2 procs)",
            ["bagit.py", "--quiet", "--sha256", "--processes", "2", str(bag)],
            repeat=args.repeat,
            nbytes=total,
            before=fresh_bag,
            note="hard-link copy of the corpus; bagit moves files into data/",
        )
        rows.append(r_bag_make)
        r_bag = measure(
            "fixity",
            "bagit.py --validate (2 procs)",
            ["bagit.py", "--quiet", "--validate", "--processes", "2", str(bag)],
            repeat=args.repeat,
            nbytes=total,
        )
        rows.append(r_bag)
        r_ver = measure(
            "fixity",
            "capsa verify (--jobs 2)",
            [*capsa, "verify", "-q", str(bundle)],
            repeat=args.repeat,
            nbytes=total,
            note="SHA-256 of every blob's stored bytes (format 1.1 stored_digest), "
            "no decompression; checks the manifest and seek tables too",
        )
        compare(r_ver, r_bag, "≥ 0.8x bagit validate", None)
        r_ver.ok = r_ver.ratio is not None and r_ver.ratio >= 0.8
        rows.append(r_ver)
        r_ver1 = measure(
            "fixity",
            "capsa verify --jobs 1",
            [*capsa, "verify", "-q", "--jobs", "1", str(bundle)],
            repeat=args.repeat,
            nbytes=total,
            note="how much the 2nd thread buys here",
        )
        compare(r_ver1, r_bag)
        rows.append(r_ver1)
        r_deep = measure(
            "fixity",
            "capsa verify --deep (--jobs 2)",
            [*capsa, "verify", "-q", "--deep", str(bundle)],
            repeat=args.repeat,
            nbytes=total,
            note="also decompresses every zstd frame and checks the content SHA-256",
        )
        compare(r_deep, r_bag)
        rows.append(r_deep)
        drop_dir(bag)

        # -- random access ---------------------------------------------------------------------
        log("random access: last 1 MiB of a member")
        largest_h5 = max(
            (f for f in info["files"] if f["path"].endswith(".h5") and not f["gzip"]),
            key=lambda f: f["size"],
        )
        targets = [(largest_h5, "largest uncompressed HDF5")]
        noise = next(f for f in info["files"] if f["path"] == "raw/noise.bin")
        targets.append(
            (noise, f"{noise['size'] / (1 << 30):g} GiB random blob, last in the archive")
        )
        for f, label in targets:
            member = f"{corpus.name}/{f['path']}"
            size = f["size"]
            off = size - MIB
            enc = encodings.get(member, "?")
            cat = [*capsa, "cat", str(bundle), member, "--offset", str(off), "--length", str(MIB)]
            # correctness first (untimed)
            got = subprocess.run(cat, check=True, capture_output=True).stdout
            with (corpus / f["path"]).open("rb") as fh:
                fh.seek(off)
                want = fh.read(MIB)
            if got != want:
                raise SystemExit(f"capsa cat returned wrong bytes for {member}")
            base = (
                f"zstd -dc {shlex.quote(str(tarzst))} | tar -xOf - --occurrence=1 "
                f"{shlex.quote(member)} | tail -c {MIB} > /dev/null"
            )
            r_b = measure(
                "random access",
                f"zstd -dc | tar -xO | tail ({enc})",
                base,
                repeat=args.repeat,
                check=False,
                note=f"{label}: {member}, {size / MB:.1f} MB",
            )
            r_b.extra = {"member": member, "member_size": size, "encoding": enc}
            rows.append(r_b)
            r_c = measure(
                "random access",
                f"capsa cat --offset ({enc})",
                cat,
                repeat=args.cat_repeat,
                note=f"{label}: {member}, {size / MB:.1f} MB; {args.cat_repeat} runs, median",
            )
            r_c.extra = {"member": member, "member_size": size, "encoding": enc}
            compare(r_c, r_b, "< 0.3 s", r_c.wall < 0.3)
            rows.append(r_c)

        # -- extract -------------------------------------------------------------------------
        log("extract")
        ex_tar, ex_capsa = work / "ex_tar", work / "ex_capsa"

        def fresh(d: Path):
            def f() -> None:
                drop_dir(d)
                d.mkdir()

            return f

        r_xt = measure(
            "extract",
            "zstd -dc | tar -x",
            f"set -o pipefail; zstd -dc {shlex.quote(str(tarzst))} "
            f"| tar -xf - -C {shlex.quote(str(ex_tar))}",
            repeat=args.repeat,
            nbytes=total,
            before=fresh(ex_tar),
        )
        rows.append(r_xt)
        r_xc = measure(
            "extract",
            "capsa extract",
            [*capsa, "extract", "-q", str(bundle), "-C", str(ex_capsa)],
            repeat=args.repeat,
            nbytes=total,
            before=fresh(ex_capsa),
            note="checks every member's SHA-256 while writing",
        )
        compare(r_xc, r_xt)
        rows.append(r_xc)
        bad = [
            str(p)
            for p in files
            if not filecmp.cmp(p, ex_capsa / corpus.name / p.relative_to(corpus), shallow=False)
        ]
        if bad:
            raise SystemExit(f"capsa extract produced different files: {bad[:5]}")
        drop_dir(ex_tar)
        drop_dir(ex_capsa)

        # -- HDF5 diff and replay ----------------------------------------------------------
        ctx = {
            "capsa": capsa,
            "work": work,
            "corpus": corpus,
            "largest_h5": corpus / largest_h5["path"],
        }
        diff_detail = bench_diff(args, ctx, rows)
        ctx["step_input"] = work / "h5diff" / "a.h5"
        replay_detail = bench_replay(args, ctx, rows)
        if "skipped" in replay_detail:
            log("  replay skipped: " + replay_detail["skipped"])
        shutil.rmtree(work / "replay", ignore_errors=True)
        shutil.rmtree(work / "h5diff", ignore_errors=True)

        # -- startup -------------------------------------------------------------------------
        log("startup")
        r_py = measure(
            "startup", "python -c pass", [sys.executable, "-c", "pass"], repeat=args.cat_repeat
        )
        rows.append(r_py)
        r_help = measure("startup", "capsa --help", [*capsa, "--help"], repeat=args.cat_repeat)
        rows.append(r_help)
        startup = _import_check()
        r_help.ok = not startup["h5py_imported"]
        r_help.target = "h5py not imported"
        r_help.note = (
            ("h5py imported!" if startup["h5py_imported"] else "h5py not imported")
            + f"; {startup['modules']} modules beyond the bare interpreter; import capsa.cli "
            f"{startup['import_capsa_cli_ms']:.0f} ms, heaviest packages: "
            + ", ".join(f"{m} {us / 1000:.0f} ms" for m, us in startup["top"][:4])
        )
        r_help.extra = startup
    except _Stop:
        log(f"--only {args.only}: the other operations are not measured")
    finally:
        if not args.keep:
            for p in (bundle, tarzst, work / "files.list"):
                p.unlink(missing_ok=True)
            for d in ("bag", "ex_tar", "ex_capsa", "h5diff"):
                shutil.rmtree(work / d, ignore_errors=True)
            with contextlib.suppress(OSError):
                shutil.rmtree(work / "replay", ignore_errors=True)
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)

    env_info["loadavg_end"] = os.getloadavg()[0]
    if _git_head() != env_info["capsa_commit"]:
        env_info["capsa_commit_end"] = _git_head()
        log(
            f"warning: capsa changed during the run ({env_info['capsa_commit']} -> "
            f"{env_info['capsa_commit_end']})"
        )
    # capsa's memory target applies to every capsa command
    for r in rows:
        if r.name.startswith("capsa") and r.group != "startup":
            rss = r.extra.get("rss_capsa_mib", r.rss_mib)  # capsa's own, not unsquashfs
            r.extra["rss_ok"] = rss is not None and rss < 200
    return {
        "environment": env_info,
        "corpus": {
            "path": str(corpus),
            "files": len(files),
            "bytes": total,
            "hdf5_files": len(h5),
            "hdf5_gzip": n_gzip,
            "params": info["params"],
            "encodings": _count(encodings),
        },
        "primitives": prim,
        "members": members,
        "hdf5_diff": diff_detail,
        "replay": replay_detail,
        "rows": [dict(asdict(r), mbps=r.mbps) for r in rows],
    }


# --------------------------------------------------------------------------------------------
# HDF5 diff: capsa diff against h5diff


def h5_variants(src: Path, out: Path) -> dict[str, Path]:
    """Three HDF5 files with ``src``'s content, written by h5py dataset by dataset.

    ``a``: contiguous, like ``src``; ``same``: every dataset chunked and gzip'd (same content,
    other bytes); ``changed``: like ``a`` with one float32 amplitude changed by +1. All are
    written with ``libver=("earliest", "v110")``: the corpus files use the format bounds of the
    HDF5 2.0 that wrote them, whose compound datatypes Debian's h5diff (HDF5 1.10) cannot read.
    Memory is bounded by the copy block (1 Mi elements).
    """
    import h5py

    block = 1 << 20
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{k}.h5" for k in ("a", "same", "changed")}

    def copy(dst: Path, *, gzip: bool, change: bool) -> None:
        with (
            h5py.File(src, "r") as fi,
            h5py.File(dst, "w", libver=("earliest", "v110")) as fo,
        ):
            fo.attrs.update(fi.attrs)

            def visit(name: str, obj) -> None:
                if isinstance(obj, h5py.Group):
                    fo.require_group(name).attrs.update(obj.attrs)
                    return
                kw: dict = {}
                if gzip and obj.shape and obj.size > 0:
                    chunk = (min(obj.shape[0], 1 << 16), *obj.shape[1:])
                    kw = {"chunks": chunk, "compression": "gzip", "compression_opts": 4}
                d = fo.create_dataset(name, shape=obj.shape, dtype=obj.dtype, **kw)
                if not obj.shape:
                    d[()] = obj[()]
                else:
                    for i in range(0, obj.shape[0], block):
                        d[i : i + block] = obj[i : i + block]
                d.attrs.update(obj.attrs)

            fi.visititems(visit)
            if change:
                d = fo["hit_columns/amplitude"]
                i = d.shape[0] * 2 // 3
                d[i] = d[i] + 1.0

    copy(paths["a"], gzip=False, change=False)
    copy(paths["same"], gzip=True, change=False)
    copy(paths["changed"], gzip=False, change=True)
    return paths


def bench_diff(args: argparse.Namespace, ctx: dict, rows: list[Row]) -> dict:
    """capsa diff vs h5diff on a ~200 MB HDF5 file and two variants of it."""
    capsa, work, src = ctx["capsa"], ctx["work"], ctx["largest_h5"]
    log(f"HDF5 diff: variants of {src.name}")
    t0 = time.perf_counter()
    paths = h5_variants(src, work / "h5diff")
    log(f"  wrote {', '.join(p.name for p in paths.values())} in {time.perf_counter() - t0:.1f} s")
    a = paths["a"]
    detail: dict = {
        "source": str(src.relative_to(ctx["corpus"].parent)),
        "sizes": {k: p.stat().st_size for k, p in paths.items()},
    }
    h5diff = shutil.which("h5diff")
    if h5diff is None:
        detail["skipped"] = "h5diff not installed (Debian: apt-get install hdf5-tools)"
        log("  " + detail["skipped"])
    else:
        detail["h5diff_version"] = version_of([h5diff, "--version"])
    for key, label, want_rc in (
        ("same", "re-chunked gzip copy", 0),
        ("changed", "1 value changed", 1),
    ):
        b = paths[key]
        nbytes = a.stat().st_size + b.stat().st_size
        cap = [*capsa, "diff", str(a), str(b)]
        # correctness first (untimed): both tools must find what was made
        got = subprocess.run([*cap, "--json"], capture_output=True, text=True)
        doc = json.loads(got.stdout)
        n_diff = sum(d["detail"].get("count", 1) for d in doc["differences"])
        if got.returncode != want_rc or n_diff != want_rc:
            raise SystemExit(f"capsa diff {key}: rc {got.returncode}, {n_diff} differences")
        detail[key] = {"capsa_verdict": doc["verdict"], "capsa_differences": n_diff}
        r_h = None
        if h5diff is not None:
            out = subprocess.run([h5diff, str(a), str(b)], capture_output=True, text=True)
            found = sum(
                int(line.split()[0])
                for line in out.stdout.splitlines()
                if line.endswith("differences found")
            )
            if out.returncode != want_rc or found != want_rc:
                raise SystemExit(f"h5diff {key}: rc {out.returncode}, {found} differences")
            detail[key]["h5diff_differences"] = found
            r_h = measure(
                "hdf5 diff",
                f"h5diff ({label})",
                [h5diff, str(a), str(b)],
                repeat=args.repeat,
                nbytes=nbytes,
                check=False,
                note=f"default mode (counts differences per object); {nbytes / MB:.0f} MB of "
                "input files",
            )
            rows.append(r_h)
            if key == "changed":
                rows.append(
                    measure(
                        "hdf5 diff",
                        f"h5diff -r ({label})",
                        [h5diff, "-r", str(a), str(b)],
                        repeat=args.repeat,
                        nbytes=nbytes,
                        check=False,
                        note="report mode: also prints every differing element",
                    )
                )
        r_c = measure(
            "hdf5 diff",
            f"capsa diff ({label})",
            cap,
            repeat=args.repeat,
            nbytes=nbytes,
            check=False,
            note=f"verdict {doc['verdict']}"
            + (f", {n_diff} differing element" if n_diff else "")
            + "; streamed block by block",
        )
        if r_h is not None:
            compare(r_c, r_h)
            r_c.extra["time_vs_h5diff"] = r_c.wall / r_h.wall
        rows.append(r_c)
    return detail


# --------------------------------------------------------------------------------------------
# replay overhead: capsa replay against the bare step

DERIVE_PY = """\
# Select triggered hits with a long time over threshold; count hits per DOM.
import sys

import h5py
import numpy as np

BLOCK = 1 << 20
src, dst = sys.argv[1], sys.argv[2]
with h5py.File(src, "r") as f:
    hits, amp = f["hits"], f["hit_columns/amplitude"]
    doms = f["detector/dom_ids"][()]
    n = hits.shape[0]
    counts = np.zeros(len(doms), dtype=np.int64)
    amp_sum = np.zeros(len(doms), dtype=np.float64)
    tot_hist = np.zeros(256, dtype=np.int64)
    selected = []
    for i in range(0, n, BLOCK):
        h, a = hits[i : i + BLOCK], amp[i : i + BLOCK]
        idx = np.searchsorted(doms, h["dom_id"])
        np.add.at(counts, idx, 1)
        np.add.at(amp_sum, idx, a.astype(np.float64))
        tot_hist += np.bincount(np.clip(h["tot"], 0, 255).astype(np.int64), minlength=256)
        selected.append(h[(h["triggered"] == 1) & (h["tot"] > 20)])
sel = np.concatenate(selected)
with h5py.File(dst, "w", libver=("earliest", "v110")) as g:
    g.create_dataset("selected_hits", data=sel, chunks=True, compression="gzip", shuffle=True)
    g.create_dataset("dom_ids", data=doms)
    g.create_dataset("hits_per_dom", data=counts)
    g.create_dataset("mean_amplitude", data=amp_sum / np.maximum(counts, 1))
    g.create_dataset("tot_histogram", data=tot_hist)
    g.attrs["n_hits"] = n
    g.attrs["n_selected"] = len(sel)
print(f"{n} hits, {len(sel)} selected")
"""

# What a replay's time is spent on, derived from the public commands' own timings (no code of
# capsa's is patched or imported): (phase, how it is derived, what it covers)
PHASES = (
    ("verify", "`capsa verify --key`", "structure, stored-bytes SHA-256 of every blob, signature"),
    ("image", "cold replay - warm replay", "unsquashfs of the image from inside the bundle"),
    ("unsquashfs", "unsquashfs by hand", "the same unpacking, outside capsa (for comparison)"),
    ("step", "the bare step", "the step in bwrap, on the already unpacked image"),
    (
        "rest",
        "warm replay - verify - bare step",
        "start-up, materialise the inputs, hash and compare the outputs, bookkeeping",
    ),
)


def squashfs_offset(capsa: list[str], sif: Path) -> int:
    """Where the SIF's squashfs partition starts, from `capsa sif inspect --json`."""
    doc = json.loads(
        subprocess.run(
            [*capsa, "sif", "inspect", "--json", str(sif)], check=True, capture_output=True
        ).stdout
    )
    return int(
        next(
            o["offset"]
            for o in doc["objects"]
            if o.get("type") == "Partition" and o.get("fs_type") == "Squashfs"
        )
    )


def bare_command(rootfs: Path, work: Path, step: object) -> list[str]:
    """The baseline: the step's argv and environment in bwrap on the unpacked image, written by
    hand with the sandbox options capsa documents (no network, fresh /tmp and /home, the work
    directory bound read-write at the step's workdir, a clean environment)."""
    workdir: str = getattr(step, "workdir", "/work")
    (rootfs / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)  # mount point, read-only /
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    cmd += ["--ro-bind", str(rootfs), "/", "--dev", "/dev", "--proc", "/proc"]
    cmd += ["--tmpfs", "/tmp", "--tmpfs", "/home", "--bind", str(work), workdir]
    cmd += ["--chdir", workdir, "--clearenv"]
    for k, v in sorted(dict(getattr(step, "env", {})).items()):
        cmd += ["--setenv", k, v]
    return [*cmd, "--", *getattr(step, "argv", [])]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def analysis_image() -> tuple[Path | None, str]:
    """The project's test image with python3 + h5py + numpy (built once, ~1 min, then cached)."""
    build = Path(__file__).resolve().parent.parent / "fixtures" / "images" / "build.py"
    p = subprocess.run(
        [sys.executable, str(build), "analysis"], capture_output=True, text=True, check=False
    )
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        return None, (p.stderr.strip().splitlines() or ["?"])[-1]
    return Path(lines[-1]), ""


def bench_replay(args: argparse.Namespace, ctx: dict, rows: list[Row]) -> dict:
    """Record a real step with `capsa run --runtime bwrap`, pack and sign it, replay it."""
    capsa, work = ctx["capsa"], ctx["work"]
    log("replay: build/find the analysis image")
    if shutil.which("bwrap") is None:
        return {"skipped": "bubblewrap not installed (Debian: apt-get install bubblewrap)"}
    sif, why = analysis_image()
    if sif is None:
        return {"skipped": f"cannot build the analysis image: {why}"}
    base = work / "replay"
    cache = base / "cache"  # CAPSA_CACHE: unpacked images live here, not in ~/.cache
    env = {**os.environ, "CAPSA_CACHE": str(cache)}
    inp = ctx["step_input"]
    argv = ["python3", "derive.py", "input.h5", "derived.h5"]

    def workspace(name: str) -> Path:
        d = base / name
        d.mkdir(parents=True)
        shutil.copyfile(inp, d / "input.h5")
        (d / "derive.py").write_text(DERIVE_PY)
        return d

    ana, rec, bare = workspace("ana"), workspace("rec"), workspace("bare")
    record = [
        *capsa,
        "run",
        "-q",
        "--image",
        str(sif),
        "--runtime",
        "bwrap",
        "--name",
        "derive",
        "--input",
        "input.h5",
        "--input",
        "derive.py",
        "--output",
        "derived.h5",
        "--compare",
        "hdf5",
        "--",
        *argv,
    ]
    t0 = time.perf_counter()
    subprocess.run(record, cwd=ana, env=env, check=True, stdout=subprocess.DEVNULL)
    log(f"  recorded the step (cold image cache) in {time.perf_counter() - t0:.2f} s")
    key = base / "analyst"
    subprocess.run([*capsa, "keygen", "-q", "-o", str(key)], check=True)
    bundle = base / "ana.capsa"
    subprocess.run(
        [*capsa, "pack", "-q", "-o", str(bundle), "--from-journal", "--sign", f"{key}.key"],
        cwd=ana,
        env=env,
        check=True,
    )
    detail: dict = {
        "image": str(sif),
        "image_bytes": sif.stat().st_size,
        "input_bytes": inp.stat().st_size,
        "bundle_bytes": bundle.stat().st_size,
        "output_bytes": (ana / "derived.h5").stat().st_size,
    }
    replay_args = [
        "replay",
        str(bundle),
        "--key",
        f"{key}.pub",
        "--runtime",
        "bwrap",
        "--workdir",
        str(base / "tmp"),
    ]
    replay = [*capsa, *replay_args]
    rep = subprocess.run([*replay, "--json"], env=env, capture_output=True, text=True)
    doc = json.loads(rep.stdout)
    if rep.returncode != 0 or not doc["ok"]:
        raise SystemExit(f"replay failed: {rep.stdout[-2000:]} {rep.stderr[-2000:]}")
    detail["verdicts"] = doc["counts"]
    detail["bwrap"] = doc["runtime_version"]

    # the bare step: the step's own argv and environment, in bwrap on the unpacked image
    import capsa as capsa_api

    with capsa_api.open(bundle) as b:
        step = b.manifest.steps[0]
    out_digest = next(o.digest for o in step.outputs if o.path == "derived.h5")
    rootfs = base / "rootfs"
    offset = detail["squashfs_offset"] = squashfs_offset(capsa, sif)
    log("replay overhead")
    r_unsq = measure(
        "replay",
        "unsquashfs the image (by hand)",
        ["unsquashfs", "-q", "-n", "-o", str(offset), "-d", str(rootfs), str(sif)],
        repeat=args.repeat,
        before=lambda: shutil.rmtree(rootfs, ignore_errors=True),
        note="the SIF's squashfs partition, at the offset `capsa sif inspect --json` gives",
    )
    rows.append(r_unsq)
    bwrap_cmd = bare_command(rootfs, bare, step)
    detail["bwrap_command"] = shlex.join(bwrap_cmd)
    sandbox = bwrap_cmd[: bwrap_cmd.index("--")]
    drop_out = lambda: (bare / "derived.h5").unlink(missing_ok=True)  # noqa: E731

    r_bare = measure(
        "replay",
        "bwrap, the step alone",
        bwrap_cmd,
        repeat=args.repeat,
        before=drop_out,
        machine_cpu=True,
        note="the step's argv and env in bwrap on the image unpacked with unsquashfs",
    )
    r_bare.rss_mib = None  # GNU time sees bwrap, not the step inside its PID namespace
    if "sha256:" + sha256_of(bare / "derived.h5") != out_digest:  # digests are sha256:<hex>
        r_bare.note += "; output bytes differ from the recorded ones!"
    rows.append(r_bare)
    r_true = measure(
        "replay",
        "bwrap -- true (sandbox only)",
        [*sandbox, "--", "true"],
        repeat=args.repeat,
        machine_cpu=True,
        note="bwrap's own cost: namespaces and mounts, no command",
    )
    r_true.rss_mib = None
    rows.append(r_true)
    versions = "import h5py, numpy; print(h5py.__version__, numpy.__version__)"
    inside = subprocess.run(
        [*sandbox, "--", "python3", "-c", versions], capture_output=True, text=True
    )
    detail["image_h5py_numpy"] = inside.stdout.split()
    native = subprocess.run(
        [sys.executable, "-c", versions],
        capture_output=True,
        text=True,
    )
    if native.returncode == 0:
        r_nat = measure(
            "replay",
            "host python3, the step alone",
            [sys.executable, "derive.py", "input.h5", "derived.h5"],
            repeat=args.repeat,
            before=drop_out,
            cwd=bare,
            note="outside any container: host h5py / numpy "
            + " / ".join(native.stdout.split())
            + " (in the image: "
            + " / ".join(detail["image_h5py_numpy"])
            + ")",
        )
        rows.append(r_nat)
    else:
        detail["native_skipped"] = "h5py not importable by the host python"

    def fresh_rec() -> None:
        shutil.rmtree(rec / ".capsa", ignore_errors=True)
        (rec / "derived.h5").unlink(missing_ok=True)

    r_run = measure(
        "replay",
        "capsa run (record, warm cache)",
        record,
        repeat=args.repeat,
        before=fresh_rec,
        env=env,
        cwd=rec,
        machine_cpu=True,
        note="hashes the image, inputs and outputs, snapshots the work directory",
    )
    compare(r_run, r_bare)
    rows.append(r_run)

    r_verify = measure(
        "replay",
        "capsa verify --key (replay's first phase)",
        [*capsa, "verify", "-q", "--key", f"{key}.pub", str(bundle)],
        repeat=args.repeat,
        env=env,
        note="what replay checks before it runs anything",
    )
    rows.append(r_verify)

    def cold() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        sync()

    r_cold = measure(
        "replay",
        "capsa replay, cold cache",
        [*replay, "-q"],
        repeat=args.repeat,
        before=cold,
        env=env,
        machine_cpu=True,
        note="empty CAPSA_CACHE: includes unsquashfs of the image from inside the bundle",
    )
    compare(r_cold, r_bare)
    rows.append(r_cold)
    r_warm = measure(
        "replay",
        "capsa replay, warm cache",
        [*replay, "-q"],
        repeat=args.repeat,
        env=env,
        machine_cpu=True,
        note="image already unpacked in CAPSA_CACHE",
    )
    compare(r_warm, r_bare)
    rows.append(r_warm)

    # where the time goes, derived from the rows above (medians; differences of medians, so a
    # phase can come out slightly negative on a noisy machine)
    detail["split"] = {
        "verify": r_verify.wall,
        "image": r_cold.wall - r_warm.wall,
        "unsquashfs": r_unsq.wall,
        "step": r_bare.wall,
        "rest": r_warm.wall - r_verify.wall - r_bare.wall,
        "total_cold": r_cold.wall,
        "total_warm": r_warm.wall,
    }
    for r in (r_cold, r_warm, r_run):
        r.extra["overhead_s"] = r.wall - r_bare.wall
        r.note += f"; +{r.wall - r_bare.wall:.2f} s over the bare step"
    for r in (r_cold, r_warm, r_run):
        # /usr/bin/time's peak RSS: capsa's process and its children outside the sandbox
        # (unsquashfs when the cache is cold); what runs inside bwrap's PID namespace is not
        # counted (the bare step's row shows bwrap's own few MiB)
        r.note += "; peak RSS: capsa and unsquashfs, not the step inside bwrap"
    # capsa's memory target is for capsa's own process: when a cold replay's peak is above the
    # warm one's and no more than unsquashfs's own, it is unsquashfs's (capsa's: the warm one's)
    warm_rss, cold_rss, unsq_rss = (
        r_warm.rss_mib or 0.0,
        r_cold.rss_mib or 0.0,
        r_unsq.rss_mib or 0.0,
    )
    if warm_rss + 1 < cold_rss <= unsq_rss * 1.1:
        r_cold.extra["rss_capsa_mib"] = warm_rss
        r_cold.extra["rss_child_mib"] = cold_rss
        r_cold.note += f" (the peak is unsquashfs's; capsa's own ~{warm_rss:.0f} MiB)"
    detail["bare_s"] = r_bare.wall
    detail["sandbox_s"] = r_true.wall
    shutil.rmtree(rootfs, ignore_errors=True)
    return detail


def micro(corpus: Path, info: dict) -> dict[str, float]:
    """Single-core MB/s of the primitives capsa is built from, on this machine and corpus data.

    They give the CPU budget: e.g. pack must at least zstd-compress the compressible members,
    SHA-256 the content and the stored bytes and CRC-32 what it writes; verify must SHA-256 the
    stored bytes; verify --deep must also decompress and SHA-256 the content.
    """
    import threading
    import zlib

    import zstandard

    plain = max(
        (f for f in info["files"] if f["path"].endswith(".h5") and not f["gzip"]),
        key=lambda f: f["size"],
    )
    with (corpus / plain["path"]).open("rb") as fh:
        data = fh.read(128 * MIB)
    frames_in = [data[i : i + MIB] for i in range(0, len(data), MIB)]
    out: dict[str, float] = {}

    def rate(fn, nbytes: int, reps: int = 3) -> float:
        best = min(_clock(fn) for _ in range(reps))
        return nbytes / MB / best

    cctx = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=True)
    frames = [cctx.compress(b) for b in frames_in]
    out["zstd -3 compress, 1 MiB frames (plain HDF5), MB/s"] = rate(
        lambda: [cctx.compress(b) for b in frames_in], len(data)
    )
    out["zstd -3 compression ratio (plain HDF5)"] = sum(map(len, frames)) / len(data)
    # capsa's fast setting (spec/format.md §6.2): zstd's fast strategy, 13-bit hash table,
    # 5-byte minimum matches; built here from zstandard itself, as the library's speed is measured
    fctx = zstandard.ZstdCompressor(
        compression_params=zstandard.ZstdCompressionParameters(
            window_log=20,
            hash_log=13,
            chain_log=16,
            search_log=1,
            min_match=5,
            target_length=0,
            strategy=zstandard.STRATEGY_FAST,
            write_checksum=True,
            write_content_size=True,
            threads=0,
        )
    )
    fast_frames = [fctx.compress(b) for b in frames_in]
    out["zstd fast setting (capsa's), 1 MiB frames (plain HDF5), MB/s"] = rate(
        lambda: [fctx.compress(b) for b in frames_in], len(data)
    )
    out["zstd fast setting compression ratio (plain HDF5)"] = sum(map(len, fast_frames)) / len(data)
    dctx = zstandard.ZstdDecompressor()
    out["zstd decompress, 1 MiB frames (plain HDF5), MB/s"] = rate(
        lambda: [dctx.decompress(f) for f in frames], len(data)
    )
    out["zstd decompress, fast-setting frames (plain HDF5), MB/s"] = rate(
        lambda: [dctx.decompress(f) for f in fast_frames], len(data)
    )
    out["hashlib.sha256, MB/s"] = rate(lambda: hashlib.sha256(data).digest(), len(data))
    out["zlib.crc32, MB/s"] = rate(lambda: zlib.crc32(data), len(data))
    try:  # capsa's CRC-32 is zlib-ng's when zlib-ng is installed, else zlib's
        from zlib_ng import zlib_ng
    except ImportError:
        pass
    else:
        out["zlib_ng.crc32, MB/s"] = rate(lambda: zlib_ng.crc32(data), len(data))

    def two_threads() -> None:
        ts = [threading.Thread(target=hashlib.sha256, args=(data,)) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    out["sha256 speed-up from a 2nd thread (2 = perfect)"] = (
        2
        * min(_clock(lambda: hashlib.sha256(data).digest()) for _ in range(3))
        / min(_clock(two_threads) for _ in range(3))
    )
    return {k: round(v, 3) for k, v in out.items()}


def _clock(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _count(enc: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in enc.values():
        out[v] = out.get(v, 0) + 1
    return out


def _members(capsa: list[str], bundle: Path) -> list[dict]:
    """Path, encoding, size and stored size of every member (`capsa ls --json`)."""
    out = subprocess.run([*capsa, "ls", "--json", str(bundle)], check=True, capture_output=True)
    keys = ("path", "encoding", "size", "stored_size")
    return [{k: m[k] for k in keys} for m in json.loads(out.stdout)["members"]]


def _h5py_versions() -> str:
    import h5py

    return f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version})"


def _git_head() -> str:
    """The commit of the capsa checkout being measured, "+dirty" if src/ has local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _import_check() -> dict:
    """Does `capsa --help` import h5py? And which imports dominate its start-up?"""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "capsa", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )

    def parse(text: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("import time:") and "cumulative" not in line:
                parts = line.split("|")
                out[parts[2].strip()] = int(parts[1])
        return out

    cum = parse(p.stderr)
    bare = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        check=True,
    )
    for m in parse(bare.stderr):  # what the interpreter imports anyway (site, .pth files)
        cum.pop(m, None)
    h5, np_, nmods = "h5py" in cum, "numpy" in cum, len(cum)
    total_us = cum.get("capsa.cli", 0)
    # heaviest third-party / stdlib packages pulled in, top-level package names only
    top = sorted(
        ((m, us) for m, us in cum.items() if "." not in m and m != "capsa"), key=lambda t: -t[1]
    )
    return {
        "h5py_imported": h5,
        "numpy_imported": np_,
        "modules": nmods,
        "import_capsa_cli_ms": round(total_us / 1000, 1),
        "top": top[:10],
    }


# --------------------------------------------------------------------------------------------
# reporting


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(result: dict) -> list[list[str]]:
    head = [
        "operation",
        "tool",
        "wall s (median)",
        "best s",
        "MB/s",
        "peak RSS MiB",
        "CPU s",
        "other load",
        "vs baseline",
        "target",
        "met",
    ]
    out = [head]
    for r in result["rows"]:
        if r["group"] == "io":
            continue
        ratio = f"{r['ratio']:.2f}x {r['baseline']}" if r["ratio"] else ""
        if r["ratio"] and r.get("best_ratio"):
            ratio += f" (best/best {r['best_ratio']:.2f}x)"
        met = {True: "yes", False: "**NO**", None: ""}[r["ok"]]
        rss = _fmt(r["rss_mib"], ".0f")
        if r["name"].startswith("capsa") and "rss_ok" in r.get("extra", {}):
            rss += "" if r["extra"]["rss_ok"] else " (**>200**)"
        out.append(
            [
                r["group"],
                r["name"],
                _fmt(r["wall"], ".3f"),
                _fmt(min(r["walls"]), ".3f"),
                _fmt(r["mbps"], ".0f"),
                rss,
                _fmt(r["cpu"], ".2f"),
                _fmt(r.get("other_load"), ".2f"),
                ratio,
                r["target"] or "",
                met,
            ]
        )
    return out


def _row(result: dict, name: str) -> dict | None:
    return next((r for r in result["rows"] if r["name"] == name), None)


def _md_table(head: list[str], body: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("--:" if i in right else "---" for i in range(len(head))) + "|",
        *("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body),
    ]


def cpu_budget(result: dict) -> list[tuple[str, float | None, str]]:
    """Single-core CPU seconds of the work each command must do, from the primitives.

    (work, seconds, which commands need it); the members' sizes come from `capsa ls --json`.
    """
    prim, members = result.get("primitives") or {}, result.get("members") or []
    if not prim or not members:
        return []
    zst = [m for m in members if m["encoding"] == "zstd-seekable"]
    content = sum(m["size"] for m in members)
    z_in, z_out = sum(m["size"] for m in zst), sum(m["stored_size"] for m in zst)
    stored = sum(m["stored_size"] for m in members)

    def secs(nbytes: int, key: str) -> float | None:
        rate = prim.get(key)
        return nbytes / MB / rate if rate else None

    crc = "zlib_ng.crc32, MB/s" if "zlib_ng.crc32, MB/s" in prim else "zlib.crc32, MB/s"
    return [
        (
            f"zstd -3 compression of the {len(zst)} zstd-seekable members ({z_in / MB:.0f} MB)",
            secs(z_in, "zstd -3 compress, 1 MiB frames (plain HDF5), MB/s"),
            "tar | zstd (and pack at level 3)",
        ),
        (
            f"the same with capsa's fast setting ({z_in / MB:.0f} MB → {z_out / MB:.0f} MB)",
            secs(z_in, "zstd fast setting (capsa's), 1 MiB frames (plain HDF5), MB/s"),
            "pack",
        ),
        (
            "zstd decompression of those frames",
            secs(z_in, "zstd decompress, 1 MiB frames (plain HDF5), MB/s"),
            "verify --deep, extract",
        ),
        (
            f"SHA-256 of all content ({content / MB:.0f} MB)",
            secs(content, "hashlib.sha256, MB/s"),
            "pack, verify --deep, extract, bagit",
        ),
        (
            f"SHA-256 of the compressed frames ({z_out / MB:.0f} MB; stored_digest)",
            secs(z_out, "hashlib.sha256, MB/s"),
            "pack",
        ),
        (
            f"SHA-256 of all stored bytes ({stored / MB:.0f} MB)",
            secs(stored, "hashlib.sha256, MB/s"),
            "verify",
        ),
        (
            f"CRC-32 of all stored bytes, {crc.split('.')[0]} ({stored / MB:.0f} MB)",
            secs(stored, crc),
            "pack",
        ),
    ]


def targets(result: dict) -> list[list[str]]:
    out = []
    for r in result["rows"]:
        if not r["target"]:
            continue
        if r["ratio"] and "x" in r["target"]:
            got = f"{r['ratio']:.2f}x (best/best {r['best_ratio']:.2f}x)"
            if "size_ratio" in r["extra"]:
                got += f", size {r['extra']['size_ratio']:.3f}x"
            if "ratio_vs_fsync_baseline" in r["extra"]:
                got += f"; {r['extra']['ratio_vs_fsync_baseline']:.2f}x tar | zstd + fsync"
        else:
            got = f"{r['wall']:.3f} s"
        met = {True: "yes", False: "**no**", None: "?"}[r["ok"]]
        out.append([f"`{r['name']}`: {r['target']}", got, met])
    capsa_rows = [r for r in result["rows"] if "rss_ok" in r.get("extra", {})]
    if capsa_rows:
        worst = max(capsa_rows, key=lambda r: r["extra"].get("rss_capsa_mib", r["rss_mib"]))
        rss = worst["extra"].get("rss_capsa_mib", worst["rss_mib"])
        ok = all(r["extra"]["rss_ok"] for r in capsa_rows)
        out.append(
            [
                "peak RSS of every capsa command < 200 MiB",
                f"at most {rss:.0f} MiB (`{worst['name']}`)",
                "yes" if ok else "**no**",
            ]
        )
    return out


def markdown(result: dict, command: str | None = None) -> str:
    env, c = result["environment"], result["corpus"]
    rows = table(result)
    lines = []
    if command:
        lines += [f"Made on {env['date']} by `{command}`.", ""]
    lines += [
        f"Machine: {env['cpus']} CPUs ({env['cpu_model']}), {env['mem_gib']} GiB RAM, "
        f"Linux {env['kernel']}, Python {env['python']}; {env['capsa']}; {env['zstd']}; "
        f"{env['tar']}; {env['bagit']}; {env.get('h5py', '?')}; "
        f"{env.get('h5diff') or 'no h5diff'}; {env.get('bwrap') or 'no bwrap'}; "
        f"capsa commit {env['capsa_commit']}. Load average (1 min) "
        f"{env.get('loadavg_start', 0):.2f} at the start, {env.get('loadavg_end', 0):.2f} at "
        "the end (the benchmark's own commands included).",
        "",
        f"Corpus: {c['files']} files, {c['bytes'] / MB:.1f} MB ({c['hdf5_files']} HDF5 files, "
        f"{c['hdf5_gzip']} of them gzip-filtered, plus a random blob and the corpus stamp file); "
        "capsa stored them as "
        + ", ".join(f"{n} {k}" for k, n in sorted(c["encodings"].items()))
        + ". Page cache warm. "
        "MB/s = input bytes / median wall time (1 MB = 10^6 B). CPU s = user + sys of the "
        "median run. other load = cores kept busy meanwhile by anything else on the machine "
        "(other processes, kernel writeback), from /proc/stat. vs baseline = baseline time / "
        "this time (> 1: faster than the baseline). Replay rows: CPU s is the whole machine's "
        "busy CPU during the run (the step runs in bwrap's PID namespace, where /usr/bin/time "
        "does not see it), so other load is not known (-).",
        "",
    ]
    lines += _md_table(rows[0], rows[1:], right=set(range(2, 8)))
    sizes = {
        r["name"]: r["extra"].get("output_bytes") for r in result["rows"] if r["group"] == "pack"
    }
    io = next((r for r in result["rows"] if r["group"] == "io"), None)
    lines += [""]
    sizes = {k: v for k, v in sizes.items() if v}
    if sizes:
        lines.append(
            "Output sizes: "
            + "; ".join(
                f"{k}: {v / MB:.1f} MB ({100 * v / c['bytes']:.1f} % of input)"
                for k, v in sizes.items()
            )
            + "."
        )
    if io:
        lines.append(f"Reading the corpus from the page cache alone: {io['mbps']:.0f} MB/s.")
    if result.get("primitives"):
        lines += [
            "",
            "Single-core primitives on this machine (Python bindings, as capsa uses them):",
            "",
        ]
        lines += [f"- {k}: {v:.2f}" for k, v in result["primitives"].items()]
    budget = cpu_budget(result)
    if budget:
        lines += [
            "",
            "#### CPU budget",
            "",
            "Single-core CPU seconds of the work each command must do on this corpus, from the "
            "primitives above, beside what the commands used:",
            "",
        ]
        lines += _md_table(
            ["work", "CPU s", "needed by"],
            [[w, _fmt(t, ".2f"), who] for w, t, who in budget],
            right={1},
        )
        measured = [
            f"{n} {r['cpu']:.2f} s"
            for n in (
                "tar | zstd -3 -T2",
                "capsa pack",
                "bagit.py --validate (2 procs)",
                "capsa verify (--jobs 2)",
                "capsa verify --deep (--jobs 2)",
            )
            if (r := _row(result, n))
        ]
        lines += ["", "Measured CPU s (user + sys): " + "; ".join(measured) + "."]
    tg = targets(result)
    if tg:
        lines += ["", "#### Targets", ""]
        lines += _md_table(["target", "result", "met"], tg)
    lines += _diff_md(result.get("hdf5_diff") or {})
    lines += _replay_md(result.get("replay") or {})
    lines += ["", "#### Notes", ""]
    for r in result["rows"]:
        if r["note"]:
            lines.append(f"- *{r['name']}*: {r['note']}")
    return "\n".join(lines) + "\n"


def _diff_md(d: dict) -> list[str]:
    if not d:
        return []
    sz = d["sizes"]
    out = [
        "",
        "#### HDF5 diff",
        "",
        f"Inputs made from `{d['source']}` by h5py, dataset by dataset (HDF5 1.10 format bounds, "
        "so that Debian's h5diff can read them): A contiguous "
        f"({sz['a'] / MB:.1f} MB); a copy with every dataset chunked and gzip'd, same content "
        f"({sz['same'] / MB:.1f} MB); a copy of A with one float32 amplitude changed by +1 "
        f"({sz['changed'] / MB:.1f} MB). MB/s counts both input files as they are on disk.",
    ]
    for k in ("same", "changed"):
        if k in d:
            e = d[k]
            out.append(
                f"`{k}`: capsa diff says {e['capsa_verdict']} "
                f"({e['capsa_differences']} differing element(s))"
                + (
                    f", h5diff finds {e['h5diff_differences']} difference(s)."
                    if "h5diff_differences" in e
                    else "."
                )
            )
    if "skipped" in d:
        out.append(f"h5diff rows skipped: {d['skipped']}.")
    return out


def _replay_md(d: dict) -> list[str]:
    if not d:
        return []
    out = ["", "#### Replay overhead", ""]
    if "skipped" in d:
        return [*out, f"Skipped: {d['skipped']}."]
    out += [
        "One real step recorded with `capsa run --runtime bwrap` in the project's analysis image "
        f"(`fixtures/images/build.py analysis`, {d['image_bytes'] / MB:.1f} MB SIF, h5py / numpy "
        f"{' / '.join(d.get('image_h5py_numpy') or ['?'])}): `python3 derive.py input.h5 "
        f"derived.h5` reads a {d['input_bytes'] / MB:.1f} MB HDF5 file (hits table + columns), "
        f"selects and histograms hits and writes a {d['output_bytes'] / MB:.1f} MB HDF5 file. "
        "Packed with `capsa pack --from-journal --sign` "
        f"({d['bundle_bytes'] / MB:.1f} MB bundle), replayed with "
        "`capsa replay B --key PUB --runtime bwrap` and `CAPSA_CACHE` in the bench work "
        "directory; verdict: "
        + ", ".join(f"{n} {k}" for k, n in sorted((d.get("verdicts") or {}).items()))
        + ". The bare step is the step's argv and environment in bwrap, written by hand on the "
        "image unpacked with `unsquashfs -o OFFSET` (the offset from `capsa sif inspect --json`) "
        f"({d['bare_s']:.3f} s; bwrap alone with `true`: {d['sandbox_s']:.3f} s).",
        "",
        "Where a replay's time goes, derived from the rows above (medians, wall s; nothing in "
        "capsa is timed from inside):",
        "",
    ]
    sp = d["split"]
    body = [[f"{k}: {what}", how, f"{sp[k]:.3f}"] for k, how, what in PHASES]
    body.append(["total: warm replay", "", f"{sp['total_warm']:.3f}"])
    body.append(["total: cold replay", "", f"{sp['total_cold']:.3f}"])
    out += _md_table(["phase", "derived as", "wall s"], body, right={2})
    out += [
        "",
        "Peak RSS of the replay rows (/usr/bin/time) is that of capsa's process and of unsquashfs "
        "when the cache is cold; the step inside bwrap's PID namespace is not counted.",
    ]
    return out


def update_readme(readme: Path, text: str) -> None:
    """Replace what lies between the results markers of ``readme`` with ``text``."""
    doc = readme.read_text()
    begin, end = "<!-- results:begin", "<!-- results:end -->"
    i, j = doc.find(begin), doc.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"{readme}: no {begin} ... {end} markers")
    i = doc.index("\n", i) + 1
    readme.write_text(doc[:i] + "\n" + text + "\n" + doc[j:])


def text_table(result: dict) -> str:
    rows = table(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="capsa benchmarks (see benchmarks/README.md)")
    ap.add_argument(
        "--corpus",
        type=Path,
        default=CORPUS,
        help="corpus directory, generated if missing (default /tmp/capsa-bench/corpus)",
    )
    ap.add_argument(
        "--size-gb", type=float, default=2.0, help="HDF5 part of the corpus, GB (default 2)"
    )
    ap.add_argument("--blob-gib", type=float, default=1.0, help="random blob, GiB (default 1)")
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--workdir", help="where outputs go (default: a new directory under /tmp)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each command (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs before them (default 1)")
    ap.add_argument("--cat-repeat", type=int, default=5, help="runs of cat / --help (median)")
    ap.add_argument("--json", type=Path, help="write the results as JSON here")
    ap.add_argument("--markdown", type=Path, help="write the table as Markdown here")
    ap.add_argument("--keep", action="store_true", help="keep the bundle, tar.zst and work files")
    ap.add_argument(
        "--only",
        choices=["pack"],
        help="measure only this operation (pack: capsa pack against tar | zstd, sizes too)",
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny corpus (20 MB of HDF5, 10 MiB random) and single runs (pack: 3): checks "
        "that the script runs to the end, measures nothing worth quoting",
    )
    ap.add_argument(
        "--update-readme",
        action="store_true",
        help="rewrite the generated part of benchmarks/README.md's Results section",
    )
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    if args.smoke:
        if args.update_readme:
            ap.error("--smoke measures nothing worth quoting: not with --update-readme")
        if args.corpus == CORPUS:
            args.corpus = Path("/tmp/capsa-bench-smoke/corpus")
        args.size_gb, args.blob_gib = 0.02, 10 / 1024
        args.repeat, args.warmup, args.cat_repeat = 1, 0, 1
    command = shlex.join(["python", "benchmarks/bench.py", *argv])
    global WARMUP
    WARMUP = args.warmup
    needed = ("tar", "zstd", TIME) if args.only == "pack" else ("sha256sum", "xargs", "bagit.py")
    for tool in ("tar", "zstd", TIME, *needed):
        if not shutil.which(tool):
            ap.error(
                f"{tool} not found "
                "(bagit.py: pip install bagit; /usr/bin/time: apt-get install time)"
            )
    readme = Path(__file__).resolve().parent / "README.md"
    if args.update_readme and "<!-- results:begin" not in readme.read_text():
        ap.error(f"{readme} has no <!-- results:begin --> marker")
    result = bench(args)
    print(text_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(result, command))
    if args.update_readme:
        update_readme(readme, markdown(result, command))
        log("updated benchmarks/README.md")
    missed = [r for r in result["rows"] if r["ok"] is False]
    missed += [r for r in result["rows"] if r.get("extra", {}).get("rss_ok") is False]
    if missed:
        print("targets missed: " + ", ".join(r["name"] for r in missed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
