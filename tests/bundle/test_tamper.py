"""Tamper suite: every single-byte flip, truncation or entry shuffle of a signed bundle fails
`capsa verify --key` with a non-zero exit and one-line reasons — never a traceback, never a hang.

Mutations are seeded and spread over every region of the file. Where each one was caught
(open, structure, fixity, signature) is tallied and printed (``pytest -s``) for the issue note.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import capsa
from capsa.cli.main import main
from capsa.format import zstdseek
from capsa.format.zip64 import CENTRAL, LOCAL
from capsa.signing.keys import keygen, load_private_key, load_public_key

SEED = 20261125
FLIPS_PER_REGION = 24


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    d = tmp_path_factory.mktemp("tamper")
    rng = np.random.default_rng(SEED)
    src = d / "src"
    src.mkdir()
    # Compressible: 2 seekable frames; incompressible: identity; a tiny text file.
    (src / "table.txt").write_bytes(
        "\n".join(f"{i} {x:.3f}" for i, x in enumerate(rng.normal(size=140_000))).encode()
    )
    (src / "noise.bin").write_bytes(rng.bytes(40_000))
    (src / "README").write_text("tamper test\n")
    a_priv, a_pub, _ = keygen(d / "alice")
    b_priv, _, _ = keygen(d / "bob")
    out = d / "signed.capsa"
    capsa.pack(
        out, [src], title="tamper", sign=[load_private_key(a_priv), load_private_key(b_priv)]
    )
    with capsa.open(out) as b:
        zst = [e for e in b.entries if e.name.endswith(".zst")]
        assert zst and any(
            b.seek_index(b.manifest.blobs["sha256:" + e.name[13:77]], e, "t").frames >= 2
            for e in zst
        )
    return out, a_pub, out.read_bytes()


def _regions(path: Path) -> dict[str, tuple[int, int]]:
    """Byte ranges of every structural region of the bundle, by name."""
    regions: dict[str, tuple[int, int]] = {}
    with capsa.open(path) as b:
        for e in b.entries:
            kind = (
                "mimetype"
                if e.name == "mimetype"
                else "manifest"
                if e.name == "manifest.json"
                else "signature"
                if e.name.startswith("signatures/")
                else "blob"
            )
            regions.setdefault(f"{kind} local header", (e.header_offset, e.data_offset))
            if e.name.endswith(".zst"):
                blob = b.manifest.blobs["sha256:" + e.name[13:77]]
                idx = b.seek_index(blob, e, "t")
                table = idx.comp[-1]
                regions.setdefault("zstd frames", (e.data_offset, e.data_offset + table))
                regions.setdefault("seek table", (e.data_offset + table, e.data_offset + e.size))
            elif e.size:
                regions.setdefault(f"{kind} data", (e.data_offset, e.data_offset + e.size))
        cd_start = b.entries[-1].data_offset + b.entries[-1].size
    size = path.stat().st_size
    regions["central directory"] = (cd_start, size - 98)
    regions["zip64 end record"] = (size - 98, size - 42)
    regions["zip64 locator"] = (size - 42, size - 22)
    regions["end record"] = (size - 22, size)
    return regions


def _level(path: Path, pub: Path) -> str:
    """Where the damage is first caught: open, structure, fixity or signature ('' = not caught)."""
    try:
        b = capsa.open(path)
    except capsa.Error:
        return "open"
    with b:
        key = [load_public_key(pub)]
        for level in ("structure", "fixity"):
            if not b.verify(level=level).ok:  # type: ignore[arg-type]
                return level
        return "" if b.verify(keys=key).ok else "signature"


def _assert_refused(path: Path, pub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rc = main(["verify", "-q", str(path), "--key", str(pub)])
    out, err = capsys.readouterr()
    assert rc in (3, 4, 5), (rc, err)
    lines = err.splitlines()
    assert lines and all(line.startswith("capsa: ") for line in lines), err
    assert "Traceback" not in err + out


def test_every_region_is_covered(signed: tuple[Path, Path, bytes]) -> None:
    path, _, data = signed
    regions = _regions(path)
    covered = sorted((a, b) for a, b in regions.values())
    # The regions tile the file exactly except for small entries' data we did not name.
    assert covered[0][0] == 0 and covered[-1][1] == len(data)
    for name in (
        "zstd frames",
        "seek table",
        "manifest data",
        "signature data",
        "central directory",
    ):
        assert name in regions


def test_random_single_byte_flips_are_all_detected(
    signed: tuple[Path, Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, pub, data = signed
    rng = random.Random(SEED)
    tally: Counter[tuple[str, str]] = Counter()
    target = tmp_path / "m.capsa"
    for region, (start, end) in sorted(_regions(path).items()):
        for _ in range(FLIPS_PER_REGION):
            offset = rng.randrange(start, end)
            mutated = bytearray(data)
            mutated[offset] ^= 1 << rng.randrange(8)
            target.write_bytes(bytes(mutated))
            level = _level(target, pub)
            assert level, f"flip at {offset} ({region}) was not detected"
            _assert_refused(target, pub, capsys)
            tally[(region, level)] += 1
    with capsys.disabled():
        print(f"\n{sum(tally.values())} single-byte flips; detected at:")
        for (region, level), n in sorted(tally.items()):
            print(f"  {region:24} {level:10} {n}")
    assert sum(tally.values()) >= 300


def test_truncations_are_detected(
    signed: tuple[Path, Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, pub, data = signed
    rng = random.Random(SEED + 1)
    cuts = {0, 1, 4, 30, len(data) - 1, len(data) - 22, len(data) - 23, len(data) - 98}
    cuts |= {a for a, _ in _regions(path).values()}
    cuts |= {rng.randrange(len(data)) for _ in range(40)}
    target = tmp_path / "t.capsa"
    levels = Counter()
    for n in sorted(cuts):
        target.write_bytes(data[:n])
        levels[_level(target, pub)] += 1
        _assert_refused(target, pub, capsys)
    assert "" not in levels
    with capsys.disabled():
        print(f"\n{sum(levels.values())} truncations; detected at: {dict(levels)}")


def _central_records(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    size = len(data)
    n, _, cd_off = struct.unpack_from("<QQQ", data, size - 98 + 24)
    records, pos = [], cd_off
    for _ in range(n):
        nlen, elen, clen = struct.unpack_from("<HHH", data, pos + 28)
        end = pos + CENTRAL.size + nlen + elen + clen
        records.append((pos, end))
        pos = end
    return cd_off, records


def test_swapped_and_duplicated_entries_are_detected(
    signed: tuple[Path, Path, bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, pub, data = signed
    cd_off, records = _central_records(data)
    target = tmp_path / "s.capsa"
    variants: dict[str, bytes] = {}
    # Two central directory records swapped (data untouched).
    recs = [data[a:b] for a, b in records]
    for i, j in [(0, 1), (1, 2), (len(recs) - 2, len(recs) - 1)]:
        swapped = list(recs)
        swapped[i], swapped[j] = swapped[j], swapped[i]
        variants[f"central records {i}<->{j} swapped"] = (
            data[:cd_off] + b"".join(swapped) + data[records[-1][1] :]
        )
    # A central record duplicated in place of another (same entry listed twice).
    dup = list(recs)
    dup[2] = recs[1]
    variants["central record duplicated"] = (
        data[:cd_off] + b"".join(dup) + data[records[-1][1] :]
        if len(recs[1]) == len(recs[2])
        else data[:cd_off] + recs[1] + data[cd_off:]
    )
    # Two equally long stretches of blob data exchanged (contents swapped, headers kept).
    with capsa.open(path) as b:
        blobs = [e for e in b.entries if e.name.startswith("blobs/") and e.size >= 64]
        manifest = next(e for e in b.entries if e.name == "manifest.json")
        sigs = [e for e in b.entries if e.name.startswith("signatures/")]
    a, c = blobs[0], blobs[1]
    swapped_data = bytearray(data)
    swapped_data[a.data_offset : a.data_offset + 64] = data[c.data_offset : c.data_offset + 64]
    swapped_data[c.data_offset : c.data_offset + 64] = data[a.data_offset : a.data_offset + 64]
    variants["blob contents swapped"] = bytes(swapped_data)
    # The two signature envelopes exchanged byte for byte (each now sits under the other's name).
    s1, s2 = sigs
    assert s1.size == s2.size
    sw = bytearray(data)
    sw[s1.data_offset : s1.data_offset + s1.size] = data[s2.data_offset : s2.data_offset + s2.size]
    sw[s2.data_offset : s2.data_offset + s2.size] = data[s1.data_offset : s1.data_offset + s1.size]
    variants["signature envelopes swapped"] = bytes(sw)
    # The manifest entry placed after a signature entry (whole entries reordered in the file).
    m_start, m_end = manifest.header_offset, manifest.data_offset + manifest.size
    s_end = s1.data_offset + s1.size
    variants["manifest moved after a signature"] = (
        data[:m_start] + data[m_end:s_end] + data[m_start:m_end] + data[s_end:]
    )
    for name, blob in variants.items():
        target.write_bytes(blob)
        assert _level(target, pub), f"{name} was not detected"
        _assert_refused(target, pub, capsys)


def test_mutations_never_crash_or_hang_a_real_process(
    signed: tuple[Path, Path, bytes], tmp_path: Path
) -> None:
    """A sample through `python -m capsa` itself: exit code, one-line reasons, no traceback."""
    path, pub, data = signed
    rng = random.Random(SEED + 2)
    regions = list(_regions(path).values())
    for i in range(12):
        start, end = regions[i % len(regions)]
        mutated = bytearray(data)
        mutated[rng.randrange(start, end)] ^= 0xFF
        target = tmp_path / f"p{i}.capsa"
        target.write_bytes(bytes(mutated))
        r = subprocess.run(
            [
                sys.executable,
                "-W",
                "error",
                "-m",
                "capsa",
                "verify",
                "-q",
                str(target),
                "--key",
                str(pub),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode in (3, 4, 5), r.stderr
        assert r.stderr and all(line.startswith("capsa: ") for line in r.stderr.splitlines())


def test_unmutated_bundle_verifies(
    signed: tuple[Path, Path, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    path, pub, _ = signed
    assert main(["verify", "-q", str(path), "--key", str(pub)]) == 0
    assert LOCAL.size == 30 and zstdseek.FRAME_SIZE == 1 << 20  # the layout the regions assume
