"""Fuzzing `verify --key` (issue 10, "Done when"): 1,200 seeded mutations of a signed bundle —
bit flips, random bytes, overwritten, inserted, deleted, duplicated and zeroed runs, truncations,
spliced-in pieces of other entries, and manifests edited with their CRC mended — are each opened
and verified with the signers' keys. None may be accepted, none may raise anything but a capsa
error (a traceback), none may hang (a per-mutation alarm). A sample runs as real processes.

Both signers' keys are given, so every signature is checked: a damaged signature by a key the
verifier does not hold is not checkable by design (spec/signing.md §5).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import capsa
from capsa.signing.keys import PublicKey, keygen, load_private_key, load_public_key

SEED = 20261201
MUTATIONS = 1200
SUBPROCESS_SAMPLE = 24
PER_MUTATION_S = 20  # a hang guard, not a timing assertion


class Hang(Exception):
    pass


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[Path], Path]:
    d = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(SEED)
    src = d / "src"
    (src / "sub").mkdir(parents=True)
    (src / "table.txt").write_bytes(b"".join(b"%d %d\n" % (i, i * i % 977) for i in range(90_000)))
    (src / "noise.bin").write_bytes(rng.bytes(3000))
    (src / "sub" / "note.txt").write_text("fuzz me\n")
    (src / "empty").write_bytes(b"")
    privs, pubs = [], []
    for name in ("alice", "bob"):
        priv, pub, _ = keygen(d / name)
        privs.append(load_private_key(priv))
        pubs.append(pub)
    out = d / "signed.capsa"
    capsa.pack(out, [src], title="fuzz", sign=privs)
    with capsa.open(out) as b:
        assert any(e.name.endswith(".zst") for e in b.entries)
        assert b.verify(keys=[load_public_key(p) for p in pubs]).ok
    return out.read_bytes(), pubs, d


def _manifest_span(data: bytes) -> tuple[int, int, int]:
    """(local header offset, data offset, size) of manifest.json."""
    at = data.index(b"manifest.json", 30)
    while data[at - 30 : at - 26] != b"PK\x03\x04":
        at = data.index(b"manifest.json", at + 1)
    header = at - 30
    size = int.from_bytes(data[header + 18 : header + 22], "little")
    return header, at + len(b"manifest.json"), size


def _edit_manifest(data: bytearray, rng: random.Random) -> bytearray:
    """Change one byte of the manifest to another printable one and mend both CRC copies, so
    only the signatures (and the models) can tell."""
    header, start, size = _manifest_span(bytes(data))
    i = start + rng.randrange(size)
    old = data[i]
    data[i] = rng.choice([c for c in b"0123456789abcdefx_-." if c != old])
    crc = zlib.crc32(bytes(data[start : start + size])).to_bytes(4, "little")
    old_crc = bytes(data[header + 14 : header + 18])
    data[header + 14 : header + 18] = crc
    central = bytes(data).rfind(old_crc)  # the central header's copy
    if central > start + size:
        data[central : central + 4] = crc
    return data


def _mutate(original: bytes, rng: random.Random) -> tuple[str, bytes]:
    data = bytearray(original)
    n = len(data)
    op = rng.choice(
        [
            "flip",
            "byte",
            "overwrite",
            "insert",
            "delete",
            "truncate",
            "duplicate",
            "zero",
            "splice",
            "manifest",
            "tail",
        ]
    )
    at = rng.randrange(n)
    run = rng.randint(1, 64)
    if op == "flip":
        data[at] ^= 1 << rng.randrange(8)
    elif op == "byte":
        data[at] = rng.randrange(256)
    elif op == "overwrite":
        data[at : at + run] = rng.randbytes(len(data[at : at + run]))
    elif op == "insert":
        data[at:at] = rng.randbytes(run)
    elif op == "delete":
        del data[at : at + run]
    elif op == "truncate":
        del data[at:]
    elif op == "duplicate":
        data[at:at] = data[rng.randrange(n) :][:run]
    elif op == "zero":
        data[at : at + run] = bytes(len(data[at : at + run]))
    elif op == "splice":  # a piece of the file copied over another place of the same length
        src = rng.randrange(n)
        piece = data[src : src + run]
        data[at : at + len(piece)] = piece
    elif op == "manifest":
        data = _edit_manifest(data, rng)
    else:  # "tail": the end records, where ZIP readers look first
        at = n - rng.randrange(1, 120)
        data[at] ^= 1 << rng.randrange(8)
    return op, bytes(data)


def _verify(path: Path, keys: list[PublicKey]) -> str:
    """'accepted', 'refused at open' or 'refused by verify'; anything else propagates."""
    try:
        b = capsa.open(path)
    except capsa.Error:
        return "refused at open"
    with b:
        report = b.verify(keys=keys, progress=False)
    return "accepted" if report.ok else "refused by verify"


def _with_alarm(fn: Callable[[], str], seconds: int) -> str:
    def ring(signum: int, frame: object) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_thousand_mutations_are_all_refused_without_traceback_or_hang(
    signed: tuple[bytes, list[Path], Path], tmp_path: Path
) -> None:
    original, pubs, _ = signed
    keys = [load_public_key(p) for p in pubs]
    rng = random.Random(SEED)
    target = tmp_path / "m.capsa"
    outcomes: Counter[tuple[str, str]] = Counter()
    accepted, crashed, hung = [], [], []
    done = 0
    while done < MUTATIONS:
        op, mutated = _mutate(original, rng)
        if mutated == original:
            continue  # e.g. a splice of identical bytes: not a mutation
        done += 1
        target.write_bytes(mutated)
        try:
            result = _with_alarm(lambda: _verify(target, keys), PER_MUTATION_S)
        except Hang:
            hung.append(op)
            continue
        except Exception as e:  # not a capsa.Error: what the CLI would print as a traceback
            crashed.append((op, repr(e)))
            continue
        outcomes[(op, result)] += 1
        if result == "accepted":
            accepted.append((op, (tmp_path / f"accepted-{done}.capsa")))
            accepted[-1][1].write_bytes(mutated)
    print(f"\n{done} mutations; outcomes by operator:")
    for (op, result), count in sorted(outcomes.items()):
        print(f"  {op:10} {result:18} {count}")
    assert (accepted, crashed, hung) == ([], [], [])


def test_a_sample_of_mutations_through_real_processes(
    signed: tuple[bytes, list[Path], Path], tmp_path: Path
) -> None:
    original, pubs, _ = signed
    rng = random.Random(SEED + 1)
    keys = [x for p in pubs for x in ("--key", str(p))]
    for i in range(SUBPROCESS_SAMPLE):
        op, mutated = _mutate(original, rng)
        if mutated == original:
            continue
        target = tmp_path / f"p{i}.capsa"
        target.write_bytes(mutated)
        r = subprocess.run(
            [sys.executable, "-W", "error", "-m", "capsa", "verify", "-q", str(target), *keys],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode in (3, 4, 5), (op, r.returncode, r.stderr)
        lines = r.stderr.splitlines()
        assert lines and all(line.startswith("capsa: ") for line in lines), (op, r.stderr)
        assert "Traceback" not in r.stderr
