"""Bundles for the report tests and benchmarks/bench_report.py, made with capsa.pack and Step
objects (no container runs): a SIF image with labels and an SBOM, a production of
``rule[wildcards]`` steps like a Snakemake workflow's of any size, a replay that found real HDF5
differences, and a bundle (and replay report) with markup in every string."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import capsa
from capsa.containers.sif import SifObject, write_sif
from capsa.format.digest import sha256_file
from capsa.format.manifest import HostInfo, RuntimeInfo, Step, StepFile
from capsa.format.policy import Hdf5Policy

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "sif"
SBOM = {
    "bomFormat": "CycloneDX",
    "components": [
        {"type": "operating-system", "name": "debian", "version": "12"},
        {"type": "library", "name": "python3-numpy", "version": "1:1.24.2-1"},
        {"type": "library", "name": "python3-h5py", "version": "3.7.0-8"},
        {"type": "library", "name": "libzstd1", "version": "1.5.4+dfsg2-5"},
    ],
}


def sif_image(path: Path, *, labels: dict[str, str] | None = None, sbom: object = SBOM) -> Path:
    """A small runnable-looking SIF: deffile, labels JSON, a CycloneDX SBOM, a squashfs."""
    squash = (FIXTURES / "one-group.sif").read_bytes()[36864:40960]
    objects = [SifObject("Deffile", b"Bootstrap: docker\nFrom: debian:bookworm\n")]
    if labels is not None:
        objects.append(SifObject("Labels", json.dumps(labels).encode()))
    if sbom is not None:
        raw = sbom if isinstance(sbom, bytes) else json.dumps(sbom).encode()
        objects.append(SifObject("SBOM", raw, extra=struct.pack("<i", 1)))
    objects.append(SifObject.partition(squash, arch="amd64"))
    with path.open("wb") as f:
        write_sif(f, objects)
    return path


def production(out: Path, samples: int, *, title: str = "synthetic production") -> Path:
    """``3 * samples + 1`` steps: ``align[sample=N]`` → ``call[sample=N]`` → ``stats[sample=N]``
    for each sample, then one ``merge`` of every ``stats`` output. Returns the bundle."""
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    img = sif_image(
        work / "pipeline.sif", labels={"org.opencontainers.image.ref.name": "reg.example/pipe:1.0"}
    )
    files: dict[str, Path] = {"images/pipeline.sif": img}
    digests: dict[str, str] = {}

    def make(path: str, content: bytes) -> StepFile:
        p = work / path.replace("/", "__")
        p.write_bytes(content)
        files[path] = p
        digests[path] = sha256_file(p)
        return StepFile(path=path, digest=digests[path])

    rt = RuntimeInfo(name="bwrap", version="0.8.0")
    image = sha256_file(img)
    steps: list[Step] = []
    stats = []
    for n in range(samples):
        s = f"S{n:04d}"
        raw = make(f"raw/{s}.dat", f"raw {s}\n".encode())
        aln = make(f"aln/{s}.bam", f"aligned {s}\n".encode())
        calls = make(f"calls/{s}.vcf", f"calls {s}\n".encode())
        st = make(f"stats/{s}.h5", f"stats {s}\n".encode())
        host = HostInfo(hostname="node01", started="2026-11-25T09:00:00Z", duration_ms=1500)
        for rule, src, dst, argv in (
            ("align", raw, aln, ["aligner", "--threads", "1", raw.path, "-o", aln.path]),
            ("call", aln, calls, ["caller", aln.path, calls.path]),
            ("stats", calls, st, ["python3", "stats.py", calls.path, st.path]),
        ):
            steps.append(
                Step(
                    name=f"{rule}[sample={s}]",
                    image=image,
                    argv=tuple(argv),
                    env={"PATH": "/usr/bin:/bin", "TZ": "UTC"},
                    inputs=(src,),
                    outputs=(
                        StepFile(
                            path=dst.path,
                            digest=dst.digest,
                            compare=Hdf5Policy(ignore_attrs=("*@kid",)),
                        )
                        if rule == "stats"
                        else dst,
                    ),
                    runtime=rt,
                    host=host,
                )
            )
        stats.append(st)
    merged = make("summary.h5", b"merged\n")
    steps.append(
        Step(
            name="merge",
            image=image,
            argv=("python3", "merge.py", *(s.path for s in stats[:3]), "…"),
            inputs=tuple(stats),
            outputs=(merged,),
            runtime=rt,
        )
    )
    bundle = out / "production.capsa"
    capsa.pack(
        bundle,
        files={k: str(v) for k, v in files.items()},
        steps=steps,
        title=title,
        authors=["A. Physicist", "B. Reviewer"],
        license="CC-BY-4.0",
        roles=[
            ("images/*", "image"),
            ("raw/*", "input"),
            ("summary.h5", "output"),
            ("*", "intermediate"),
        ],
        force=True,
    )
    return bundle


def differing(out: Path, *, title: str = "energy spectrum") -> tuple[Path, dict[str, object]]:
    """A one-step bundle whose output ``spectrum.h5`` the "replay" re-made with some values
    changed, compared by capsa's real HDF5 comparator, and the replayed file left where
    ``capsa replay --keep`` leaves it. Returns the bundle and the replay report (as the JSON of
    ``capsa replay --json``)."""
    import dataclasses

    import h5py
    import numpy as np

    from capsa.compare import compare
    from capsa.replay.report import OutputReport, ReplayReport, StepReport

    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    energy = rng.normal(100.0, 5.0, 2000)
    table = np.zeros(500, dtype=[("dom", "i4"), ("t", "f8")])
    table["dom"], table["t"] = np.arange(500), np.linspace(0, 1, 500)
    recorded, replayed = work / "spectrum.h5", out / "replayed.h5"
    for path, shift in ((recorded, 0.0), (replayed, 0.5)):
        e = energy.copy()
        e[[10, 700, 701, 1500]] += shift
        t = table.copy()
        t["t"][[3, 4]] += shift
        with h5py.File(path, "w") as f:
            f.attrs["kid"] = "recorded" if shift == 0 else "replayed"
            f.create_dataset("energy", data=e)
            f.create_dataset("hits", data=t)
            f.create_dataset("same", data=np.arange(10))
    img = sif_image(work / "ana.sif", labels={"org.opencontainers.image.ref.name": "ana:1"})
    inp = work / "events.h5"
    inp.write_bytes(b"the recorded input events")
    policy = Hdf5Policy(ignore_attrs=("/@kid",))
    step = Step(
        name="spectrum",
        image=sha256_file(img),
        argv=("python3", "spectrum.py", "events.h5", "spectrum.h5"),
        inputs=(StepFile(path="events.h5", digest=sha256_file(inp)),),
        outputs=(StepFile(path="spectrum.h5", digest=sha256_file(recorded), compare=policy),),
        runtime=RuntimeInfo(name="bwrap", version="0.8.0"),
    )
    bundle = out / "spectrum.capsa"
    result = capsa.pack(
        bundle,
        files={"ana.sif": str(img), "events.h5": str(inp), "spectrum.h5": str(recorded)},
        steps=[step],
        title=title,
        roles=[("ana.sif", "image"), ("events.h5", "input"), ("*", "output")],
        force=True,
    )
    cmp = compare(replayed, recorded, policy, names=("spectrum.h5", step.outputs[0].digest))
    kept = out / "replay-root"
    (kept / "001-spectrum" / "work").mkdir(parents=True, exist_ok=True)
    (kept / "001-spectrum" / "work" / "spectrum.h5").write_bytes(replayed.read_bytes())
    report = ReplayReport(
        str(bundle), result.bundle_id, "bwrap", "0.8.0", "chain", workdir=str(kept)
    )
    report.steps = [
        StepReport(
            "spectrum",
            "ok",
            exit_code=0,
            outputs=[
                OutputReport(
                    "spectrum.h5",
                    cmp.verdict,
                    step.outputs[0].digest,
                    sha256_file(replayed),
                    "hdf5",
                    [d.as_dict() for d in cmp.diff.differences],
                    [d.as_dict() for d in cmp.diff.ignored],
                )
            ],
        )
    ]
    return bundle, dataclasses.asdict(report) | {"ok": report.ok, "counts": report.counts()}


HOSTILE = '<script>document.title="pwned"</script>"><img src=x onerror="document.title=1">'
HOSTILE_PATH = HOSTILE.replace("/", "_")  # a path segment


def hostile_bundle(tmp_path: Path, key: Any = None) -> Path:
    """Markup in the title, authors, identifiers, a step name, argv, env and file paths."""
    img = sif_image(tmp_path / "img.sif", labels={"org.opencontainers.image.ref.name": HOSTILE})
    files = {"img.sif": img}
    for name in ("raw.h5", f"out{HOSTILE_PATH}.h5"):
        (tmp_path / name.replace("/", "_")).write_bytes(name.encode())
        files[name] = tmp_path / name.replace("/", "_")
    d = {k: sha256_file(v) for k, v in files.items()}
    step = Step(
        name=f"step{HOSTILE_PATH}",
        image=d["img.sif"],
        argv=("sh", "-c", HOSTILE),
        env={"X": HOSTILE},
        inputs=(StepFile(path="raw.h5", digest=d["raw.h5"]),),
        outputs=(StepFile(path=f"out{HOSTILE_PATH}.h5", digest=d[f"out{HOSTILE_PATH}.h5"]),),
        runtime=RuntimeInfo(name=HOSTILE, version=HOSTILE),
    )
    return capsa.pack(
        tmp_path / "hostile.capsa",
        files={k: str(v) for k, v in files.items()},
        steps=[step],
        title=HOSTILE,
        description=HOSTILE,
        authors=[HOSTILE],
        license=HOSTILE,
        identifiers=[("doi", HOSTILE)],
        roles=[("img.sif", "image"), ("raw.h5", "input"), ("*", "output")],
        sign=[capsa.load_private_key(key)] if key else [],
    ).path


def hostile_replay(bundle: Path) -> dict[str, Any]:
    """A replay report of ``hostile_bundle`` with markup in every string, and a step that is
    not in the bundle."""
    with capsa.open(bundle) as b:
        s = b.manifest.steps[0]
        bid = b.id
    out = s.outputs[0]
    diff = {"path": HOSTILE, "kind": "data", "summary": HOSTILE}
    diff["detail"] = {"count": 1, "elements": 2, "first": [[0]], "max_abs": HOSTILE}
    return {
        "bundle": HOSTILE,
        "bundle_id": bid,
        "runtime": HOSTILE,
        "runtime_version": HOSTILE,
        "mode": HOSTILE,
        "steps": [
            {
                "name": s.name,
                "status": HOSTILE,
                "reason": HOSTILE,
                "stderr_tail": HOSTILE,
                "outputs": [
                    {
                        "path": out.path,
                        "verdict": HOSTILE,
                        "expected": out.digest,
                        "policy": HOSTILE,
                        "note": HOSTILE,
                        "differences": [diff],
                        "ignored": [{"summary": HOSTILE}],
                    }
                ],
            },
            {"name": HOSTILE, "status": "ok"},
        ],
    }
