"""Replay with real containers: KM3NeT-style non-determinism (random `kid`, object times) is
`equivalent` under its policy and `different` under the strict default; a changed physics value
is `different` naming dataset and index; failures, timeouts, signatures and attestations."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import capsa
from capsa.containers.sif import SifObject, open_sif, write_sif
from capsa.format.manifest import RuntimeInfo, Step, StepFile
from capsa.signing import dsse
from capsa.signing.keys import keygen, load_public_key
from conftest import CliResult
from images import image

pytestmark = pytest.mark.container  # real containers (bwrap) and built test images

SELECT = """
import h5py, numpy as np
rng = np.random.default_rng(42)
with h5py.File("events.h5", "w") as f:
    f.create_dataset("energy", data=rng.exponential(10.0, 5000))
    f.create_dataset("zenith", data=rng.uniform(0, 3.14, 5000))
"""

# Writes like km3pipe does: a random uuid4 `kid` root attribute and object modification times.
KM3 = """
import os, sys, time, uuid, h5py, numpy as np
out = sys.argv[1]
with h5py.File("events.h5", "r") as f:
    e = f["energy"][:]
hist, edges = np.histogram(e, bins=20)
time.sleep(1.1)  # object modification times have one-second resolution
with h5py.File(out, "w", track_order=True) as f:
    f.attrs["kid"] = str(uuid.uuid4())
    f.attrs["format_version"] = 2
    f.create_dataset("hist", data=hist, track_times=True)
    f.create_dataset("edges", data=edges, track_times=True)
"""

# Changes one physics value when the (undeclared) marker file exists, as it does only while
# recording; and sleeps / fails / forgets its output on demand at replay.
PHYSICS = """
import os, sys, time, h5py, numpy as np
recording = os.path.exists(".recording")
mode = sys.argv[1]
if not recording and mode == "sleep":
    time.sleep(60)
if not recording and mode == "fail":
    print("cannot find calibration", file=sys.stderr); sys.exit(3)
if not recording and mode == "forget":
    sys.exit(0)
with h5py.File("events.h5", "r") as f:
    e = f["energy"][:]
if recording:
    e[17] += 0.5
with h5py.File(f"physics-{mode}.h5", "w") as f:
    f.create_dataset("energy", data=e)
"""


def _run(cli: Callable[..., CliResult], img: Path, *args: str) -> None:
    r = cli("run", "-q", "--runtime", "bwrap", "--image", str(img), *args)
    assert r.rc == 0, r.err


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A signed bundle of five recorded steps (recorded once for the whole module)."""
    from capsa.cli.main import main

    analysis = image("analysis")
    d = tmp_path_factory.mktemp("replay")
    proj = d / "ana"
    proj.mkdir()
    for name, text in (("select.py", SELECT), ("km3.py", KM3), ("physics.py", PHYSICS)):
        (proj / name).write_text(text)
    (proj / ".recording").write_text("only while recording\n")
    priv, pub, _ = keygen(d / "alice")
    cwd = Path.cwd()
    mp = pytest.MonkeyPatch()
    mp.chdir(proj)
    mp.setenv("CAPSA_CACHE", str(d / "cache"))

    def cli(*args: str) -> CliResult:
        return CliResult(main([str(a) for a in args]), b"", "")

    try:
        _run(
            cli,
            analysis,
            "--name",
            "select",
            "--input",
            "select.py",
            "--output",
            "events.h5",
            "--",
            "python3",
            "select.py",
        )
        _run(
            cli,
            analysis,
            "--name",
            "km3",
            "--input",
            "km3.py",
            "--input",
            "events.h5",
            "--output",
            "summary.h5",
            "--compare",
            "hdf5",
            "--ignore-attr",
            "/@kid",
            "--",
            "python3",
            "km3.py",
            "summary.h5",
        )
        _run(
            cli,
            analysis,
            "--name",
            "km3-strict",
            "--input",
            "km3.py",
            "--input",
            "events.h5",
            "--output",
            "strict.h5",
            "--",
            "python3",
            "km3.py",
            "strict.h5",
        )
        _run(
            cli,
            analysis,
            "--name",
            "physics",
            "--input",
            "physics.py",
            "--input",
            "events.h5",
            "--output",
            "physics-value.h5",
            "--",
            "python3",
            "physics.py",
            "value",
        )
        for mode in ("fail", "forget", "sleep"):
            _run(
                cli,
                analysis,
                "--name",
                mode,
                "--input",
                "physics.py",
                "--input",
                "events.h5",
                "--output",
                f"physics-{mode}.h5",
                "--",
                "python3",
                "physics.py",
                mode,
            )
        assert (
            main(["pack", "-q", "-o", str(d / "ana.capsa"), "--from-journal", "--sign", str(priv)])
            == 0
        )
    finally:
        mp.undo()
        assert Path.cwd() == cwd
    return {"bundle": d / "ana.capsa", "pub": pub, "priv": priv, "cache": d / "cache", "dir": d}


@pytest.fixture
def replay_cli(
    cli: Callable[..., CliResult], recorded: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, dict, str]]:  # type: ignore[type-arg]
    monkeypatch.setenv("CAPSA_CACHE", str(recorded["cache"]))

    def run(*args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
        r = cli(
            "replay",
            str(recorded["bundle"]),
            "--runtime",
            "bwrap",
            "--key",
            str(recorded["pub"]),
            "--json",
            *args,
        )
        doc = json.loads(r.out) if r.out.strip().startswith(b"{") else {}
        return r.rc, doc, r.err

    return run


def _outputs(doc: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {o["path"]: o for s in doc["steps"] for o in s["outputs"]}


def _steps(doc: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {s["name"]: s for s in doc["steps"]}


def test_km3net_style_output_is_equivalent_naming_exactly_what_was_ignored(replay_cli) -> None:  # type: ignore[no-untyped-def]
    rc, doc, err = replay_cli("--step", "select", "--step", "km3")
    assert rc == 0, err
    outs = _outputs(doc)
    assert outs["events.h5"]["verdict"] == "identical"
    km3 = outs["summary.h5"]
    assert km3["verdict"] == "equivalent" and km3["found"] != km3["expected"]
    assert km3["differences"] == []
    ignored = json.dumps(km3["ignored"])
    assert "kid" in ignored
    assert doc["mode"] == "chain" and doc["ok"] is True


def test_the_same_output_under_the_strict_default_is_different(replay_cli) -> None:  # type: ignore[no-untyped-def]
    rc, doc, _ = replay_cli("--step", "select", "--step", "km3-strict")
    assert rc == 1
    strict = _outputs(doc)["strict.h5"]
    assert strict["verdict"] == "different"
    assert "kid" in json.dumps(strict["differences"]) or "policy is bytes" in strict["note"]


def test_a_difference_of_volatile_values_only_says_which_flags_accept_it(replay_cli) -> None:  # type: ignore[no-untyped-def]
    rc, doc, _ = replay_cli("--step", "select", "--step", "km3-strict", "--step", "physics")
    assert rc == 1
    outs = _outputs(doc)
    assert outs["strict.h5"]["accept_with"] == [
        "--compare strict.h5=hdf5",
        "--ignore-attr strict.h5=/@kid",
    ]
    # a changed physics value is never proposed away
    assert all(o["accept_with"] == [] for p, o in outs.items() if p.startswith("physics"))


def test_twice_tells_what_differs_between_two_runs(replay_cli) -> None:  # type: ignore[no-untyped-def]
    rc, doc, _ = replay_cli("--twice", "--step", "select", "--step", "km3-strict")
    assert rc == 1  # strict.h5 is different from the recording (its policy is bytes)
    steps = _steps(doc)
    assert steps["select"]["reproducible"] is True and steps["select"]["twice"] == []
    strict = steps["km3-strict"]
    assert strict["reproducible"] is True
    (note,) = strict["twice"]
    assert "strict.h5" in note and "/@kid" in note


def test_one_changed_physics_value_names_dataset_and_index(replay_cli) -> None:  # type: ignore[no-untyped-def]
    rc, doc, _ = replay_cli("--step", "select", "--step", "physics")
    assert rc == 1
    out = _outputs(doc)["physics-value.h5"]
    assert out["verdict"] == "different"
    (diff,) = [d for d in out["differences"] if d.get("kind") == "data"]
    assert diff["path"].endswith("energy")
    text = json.dumps(diff)
    assert "17" in text and ("0.5" in text or "5e-01" in text)


def test_failed_missing_and_timeout_steps(replay_cli) -> None:  # type: ignore[no-untyped-def]
    rc, doc, _ = replay_cli(
        "--step", "fail", "--step", "forget", "--step", "sleep", "--isolated", "--timeout", "5"
    )
    assert rc == 1
    steps = _steps(doc)
    assert steps["fail"]["status"] == "failed" and steps["fail"]["exit_code"] == 3
    assert "cannot find calibration" in steps["fail"]["stderr_tail"]
    assert _outputs(doc)["physics-forget.h5"]["verdict"] == "missing"
    assert steps["sleep"]["status"] == "timeout"


def test_chain_replay_of_everything_and_parallel_jobs(replay_cli, recorded) -> None:  # type: ignore[no-untyped-def]
    before = recorded["bundle"].read_bytes()
    rc, doc, _ = replay_cli("--jobs", "2", "--timeout", "20")
    assert rc == 1
    verdicts = {p: o["verdict"] for p, o in _outputs(doc).items()}
    assert verdicts["events.h5"] == "identical" and verdicts["summary.h5"] == "equivalent"
    assert verdicts["strict.h5"] == "different" and verdicts["physics-value.h5"] == "different"
    assert recorded["bundle"].read_bytes() == before  # replay never modifies the bundle


def test_work_directories_are_removed_unless_kept(replay_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rc, doc, _ = replay_cli("--step", "select", "--workdir", str(tmp_path / "w"))
    assert rc == 0 and doc["workdir"] is None
    assert list((tmp_path / "w").iterdir()) == []
    rc, doc, _ = replay_cli("--step", "select", "--workdir", str(tmp_path / "k"), "--keep")
    kept = Path(doc["workdir"])
    assert (kept / "001-select" / "work" / "events.h5").is_file()


def test_signature_policy(cli, recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    b = str(recorded["bundle"])
    r = cli("replay", b, "--runtime", "bwrap")
    assert r.rc == 2 and "--allow-unsigned" in r.err and len(r.err_lines) == 1
    keygen(tmp_path / "mallory")
    r = cli("replay", b, "--runtime", "bwrap", "--key", str(tmp_path / "mallory.pub"))
    assert r.rc == 5 and "refusing to replay" in r.err


def test_signed_attestation(replay_cli, recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "att.json"
    rc, doc, _ = replay_cli(
        "--step", "select", "--attest", str(recorded["priv"]), "--attest-output", str(out)
    )
    assert rc == 0
    env = dsse.parse_envelope(out.read_bytes(), where="att")
    assert env.payload_type == "application/vnd.in-toto+json"
    assert env.verify(load_public_key(recorded["pub"])) == [True]
    statement = json.loads(env.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    # Subjects a generic in-toto verifier can check by hashing: the bundle file itself, and the
    # replayed outputs; the bundle id (the manifest's digest) is in the predicate.
    bundle, *outputs = statement["subject"]
    assert bundle["name"] == Path(recorded["bundle"]).name
    assert bundle["digest"]["sha256"] == hashlib.sha256(recorded["bundle"].read_bytes()).hexdigest()
    assert bundle["digest"]["sha256"] != doc["bundle_id"][7:]
    (select,) = [s for s in doc["steps"] if s["name"] == "select"]
    assert [(o["name"], "sha256:" + o["digest"]["sha256"]) for o in outputs] == [
        (o["path"], o["found"]) for o in select["outputs"]
    ]
    assert statement["predicate"]["bundle_id"] == doc["bundle_id"]
    assert statement["predicate"]["ok"] is True
    assert base64  # envelope payload is base64 in the file
    rc, _, err = replay_cli(
        "--step", "select", "--attest", str(recorded["priv"]), "--attest-output", str(out)
    )
    assert rc == 8 and "exists" in err


def _bundle_with_step(tmp_path: Path, sif: Path, argv: tuple[str, ...] = ("true",)) -> Path:
    from capsa.format.digest import sha256_file

    step = Step(
        name="s",
        image=sha256_file(sif),
        argv=argv,
        env={"PATH": "/bin"},
        runtime=RuntimeInfo(name="bwrap"),
    )
    return capsa.pack(tmp_path / "s.capsa", files={"images/x.sif": sif}, steps=[step]).path


def test_bundle_without_steps_and_unknown_step(cli, recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "f.txt").write_text("x")
    b = capsa.pack(tmp_path / "n.capsa", [tmp_path / "f.txt"]).path
    r = cli("replay", str(b), "--allow-unsigned")
    assert r.rc == 7 and "no recorded steps" in r.err
    r = cli("replay", str(recorded["bundle"]), "--allow-unsigned", "--step", "nope")
    assert r.rc == 2 and "no step named" in r.err


def test_runtime_that_cannot_run_the_image(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    busybox = image("busybox")
    img, close = open_sif(busybox)
    try:
        squash = img.read_object(img.primary_partition(), limit=1 << 30)
    finally:
        close()
    foreign = tmp_path / "s390x.sif"
    with foreign.open("wb") as f:
        write_sif(f, [SifObject.partition(squash, arch="s390x")])
    b = _bundle_with_step(tmp_path, foreign)
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    r = cli("replay", str(b), "--allow-unsigned", "--runtime", "bwrap")
    assert r.rc == 6 and "built for s390x" in r.err and len(r.err_lines) == 1


def test_output_path_escaping_the_work_directory_is_missing_not_followed(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    busybox = image("busybox")
    from capsa.format.digest import sha256_file

    (tmp_path / "secret").write_text("outside")
    digest = sha256_file(tmp_path / "secret")
    step = Step(
        name="esc",
        image=sha256_file(busybox),
        argv=("sh", "-c", f"ln -s {tmp_path}/secret link"),
        env={"PATH": "/bin"},
        outputs=(StepFile(path="link", digest=digest),),
        runtime=RuntimeInfo(name="bwrap"),
    )
    b = capsa.pack(
        tmp_path / "e.capsa",
        files={"images/b.sif": busybox, "secret": tmp_path / "secret"},
        steps=[step],
    ).path
    monkeypatch.setenv("CAPSA_CACHE", str(tmp_path / "cache"))
    r = cli("replay", str(b), "--allow-unsigned", "--runtime", "bwrap", "--json")
    doc = json.loads(r.out)
    out = _outputs(doc)["link"]
    assert out["verdict"] == "missing" and "escapes" in out["note"]
