#!/usr/bin/env python3
"""capsa benchmarks: pack, verify, random access, extract and startup against standard tools.

    python benchmarks/bench.py [--corpus DIR] [--size-gb 2] [--workdir DIR]
                               [--json OUT.json] [--markdown OUT.md] [--repeat N] [--keep]

Every command runs as its own process under ``/usr/bin/time`` (wall clock from the parent,
peak RSS and CPU from ``time``), after the corpus was read once so that it sits in the page
cache. Big outputs (bundle, tar.zst, bag, extracted trees) live in a work directory that is
removed at the end unless ``--keep``; the corpus is kept and reused (see make_corpus.py).
"""

from __future__ import annotations

import argparse
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
    rss_mib: float  # max over runs
    cpu: float  # user + sys of the median run, seconds
    bytes: int | None = None  # bytes processed, for throughput
    baseline: str | None = None  # name of the row this one is compared with
    ratio: float | None = None  # speed(this) / speed(baseline)
    target: str | None = None
    ok: bool | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)
    other_load: float = 0.0  # mean cores busy with other processes during the median run
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
) -> Run:
    """Run ``cmd`` (argv list, or a bash pipeline string) under /usr/bin/time."""
    fd, tfile = tempfile.mkstemp(prefix="capsa-bench-time-")
    os.close(fd)
    try:
        argv = cmd if isinstance(cmd, list) else ["bash", "-c", cmd]
        full = [TIME, "-f", "%e %M %U %S", "-o", tfile, *argv]
        busy0 = _busy_cpu()
        t0 = time.perf_counter()
        p = subprocess.run(full, stdout=stdout, stderr=subprocess.PIPE, env=env)
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
) -> Row:
    runs = []
    for i in range(WARMUP + repeat):
        if before is not None:
            before()
        run = timed(cmd, check=check)
        if i >= WARMUP:  # the first run after big deletions/writes is often much slower
            runs.append(run)
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
    log(
        f"  {name:<34} {row.wall:8.3f} s  "
        + (f"{row.mbps:8.1f} MB/s  " if row.mbps else " " * 16)
        + f"RSS {row.rss_mib:7.1f} MiB  CPU {row.cpu:7.2f} s  other load {row.other_load:4.2f}"
    )
    return row


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
        "kernel": platform.release(),
        "capsa_commit": _git_head(),
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
        r_tar = measure(
            "pack",
            "tar | zstd -3 -T2",
            "set -o pipefail; " + tar_pack,
            repeat=args.repeat,
            nbytes=total,
            before=lambda: (tarzst.unlink(missing_ok=True), sync()),
        )
        r_tar.extra["output_bytes"] = tarzst.stat().st_size
        rows.append(r_tar)
        r_tar_sync = measure(
            "pack",
            "tar | zstd -3 -T2, then fsync",
            f"set -o pipefail; {tar_pack} && sync {shlex.quote(str(tarzst))}",
            repeat=args.repeat,
            nbytes=total,
            before=lambda: (tarzst.unlink(missing_ok=True), sync()),
            note="capsa pack fsyncs its output before renaming it into place",
        )
        rows.append(r_tar_sync)
        r_pack = measure(
            "pack",
            "capsa pack",
            [*capsa, "pack", "-q", "--force", "-o", str(bundle), str(corpus)],
            repeat=args.repeat,
            nbytes=total,
            before=lambda: (bundle.unlink(missing_ok=True), sync()),
        )
        r_pack.extra["output_bytes"] = bundle.stat().st_size
        compare(r_pack, r_tar, "≥ 2.0x tar|zstd", None)
        r_pack.ok = r_pack.ratio is not None and r_pack.ratio >= 2.0
        r_pack.extra["ratio_vs_fsync_baseline"] = r_tar_sync.wall / r_pack.wall
        r_pack.note = (
            f"{r_tar_sync.wall / r_pack.wall:.2f}x the fsync'ing baseline; "
            "includes capsa's own fsync"
        )
        rows.append(r_pack)
        log(
            f"  sizes: tar.zst {tarzst.stat().st_size / MB:.1f} MB, "
            f"capsa {bundle.stat().st_size / MB:.1f} MB "
            f"(corpus {total / MB:.1f} MB)"
        )
        encodings = _encodings(capsa, bundle)
        sync()

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
            note="decompresses every zstd frame, then SHA-256 of the content",
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
        r_ver1.ratio, r_ver1.baseline = r_bag.wall / r_ver1.wall, r_bag.name
        rows.append(r_ver1)
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
            + f"; {startup['modules']} modules; import capsa.cli "
            f"{startup['import_capsa_cli_ms']:.0f} ms, heaviest packages: "
            + ", ".join(f"{m} {us / 1000:.0f} ms" for m, us in startup["top"][:4])
        )
        r_help.extra = startup
    finally:
        if not args.keep:
            for p in (bundle, tarzst, work / "files.list"):
                p.unlink(missing_ok=True)
            for d in ("bag", "ex_tar", "ex_capsa"):
                shutil.rmtree(work / d, ignore_errors=True)
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)

    if _git_head() != env_info["capsa_commit"]:
        env_info["capsa_commit_end"] = _git_head()
        log(
            f"warning: capsa changed during the run ({env_info['capsa_commit']} -> "
            f"{env_info['capsa_commit_end']})"
        )
    # capsa's memory target applies to every capsa command
    for r in rows:
        if r.name.startswith("capsa") and r.group != "startup":
            r.extra["rss_ok"] = r.rss_mib < 200
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
        "rows": [dict(asdict(r), mbps=r.mbps) for r in rows],
    }


def micro(corpus: Path, info: dict) -> dict[str, float]:
    """Single-core MB/s of the primitives capsa is built from, on this machine and corpus data.

    They give the CPU budget: e.g. pack must at least zstd-compress the compressible members and
    SHA-256 + CRC-32 everything; verify must decompress and SHA-256 everything.
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
    dctx = zstandard.ZstdDecompressor()
    out["zstd decompress, 1 MiB frames (plain HDF5), MB/s"] = rate(
        lambda: [dctx.decompress(f) for f in frames], len(data)
    )
    out["hashlib.sha256, MB/s"] = rate(lambda: hashlib.sha256(data).digest(), len(data))
    out["zlib.crc32, MB/s"] = rate(lambda: zlib.crc32(data), len(data))

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


def _encodings(capsa: list[str], bundle: Path) -> dict[str, str]:
    out = subprocess.run([*capsa, "ls", "--json", str(bundle)], check=True, capture_output=True)
    return {m["path"]: m["encoding"] for m in json.loads(out.stdout)["members"]}


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
    code = (
        "import sys\nimport capsa.cli\ntry:\n    capsa.cli.main(['--help'])\n"
        "except SystemExit:\n    pass\nimport json\n"
        "sys.stderr.write('\\nRESULT ' + json.dumps(['h5py' in sys.modules, 'numpy' in sys.modules,"
        " len(sys.modules)]) + '\\n')\n"
    )
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    h5, np_, nmods = json.loads(p.stderr.rsplit("RESULT ", 1)[1])

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


def markdown(result: dict) -> str:
    env, c = result["environment"], result["corpus"]
    rows = table(result)
    lines = [
        f"Run {env['date']} on {env['cpus']} CPUs ({env['cpu_model']}), {env['mem_gib']} GiB RAM, "
        f"Linux {env['kernel']}, Python {env['python']}; {env['capsa']}; {env['zstd']}; "
        f"{env['tar']}; {env['bagit']}; capsa commit {env['capsa_commit']}.",
        "",
        f"Corpus: {c['files']} files, {c['bytes'] / MB:.1f} MB ({c['hdf5_files']} HDF5 files, "
        f"{c['hdf5_gzip']} of them gzip-filtered, plus a random blob and the corpus stamp file); "
        "capsa stored them as "
        + ", ".join(f"{n} {k}" for k, n in sorted(c["encodings"].items()))
        + ". Page cache warm. "
        "MB/s = corpus bytes / median wall time (1 MB = 10^6 B). CPU s = user + sys of the "
        "median run. other load = cores kept busy meanwhile by anything else on the machine "
        "(other processes, kernel writeback), from /proc/stat.",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|"
        + "|".join("---" if i < 2 else "--:" if i < 8 else "---" for i in range(len(rows[0])))
        + "|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    sizes = {
        r["name"]: r["extra"].get("output_bytes") for r in result["rows"] if r["group"] == "pack"
    }
    io = next((r for r in result["rows"] if r["group"] == "io"), None)
    lines += [""]
    if all(sizes.values()):
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
    lines.append("")
    for r in result["rows"]:
        if r["note"]:
            lines.append(f"- *{r['name']}*: {r['note']}")
    return "\n".join(lines) + "\n"


def text_table(result: dict) -> str:
    rows = table(result)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="capsa benchmarks (see benchmarks/README.md)")
    ap.add_argument(
        "--corpus",
        type=Path,
        default=Path("/tmp/capsa-bench/corpus"),
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
    args = ap.parse_args(argv)
    global WARMUP
    WARMUP = args.warmup
    for tool in ("tar", "zstd", "sha256sum", "xargs", "bagit.py", TIME):
        if not shutil.which(tool):
            ap.error(
                f"{tool} not found "
                "(bagit.py: pip install bagit; /usr/bin/time: apt-get install time)"
            )
    result = bench(args)
    print(text_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(result))
    missed = [r for r in result["rows"] if r["ok"] is False]
    missed += [r for r in result["rows"] if r.get("extra", {}).get("rss_ok") is False]
    if missed:
        print("targets missed: " + ", ".join(r["name"] for r in missed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
