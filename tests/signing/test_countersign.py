"""Countersigning under races (spec/signing.md §4; issue 10 item 3): concurrent signers of one
bundle take turns and no signature is lost; the rewritten bundle keeps its permission bits."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import capsa
from capsa.bundle import countersign
from capsa.signing.keys import PrivateKey, keygen, load_private_key, load_public_key


def _keys(tmp_path: Path, n: int) -> list[tuple[Path, Path]]:
    (tmp_path / "keys").mkdir()
    return [keygen(tmp_path / "keys" / f"k{i}")[:2] for i in range(n)]


def _signers(bundle: Path) -> set[str]:
    with capsa.open(bundle) as b:
        return set(b.signature_entries)


def test_a_signer_that_reads_while_another_writes_loses_nothing(
    bundle_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signer A has read the bundle and is writing its copy when signer B starts. Without a
    lock B finishes first and A's rename drops B's signature; with it B waits for A and copies
    A's signature into its own rewrite."""
    (a_priv, a_pub), (b_priv, b_pub) = _keys(tmp_path, 2)
    a, b = load_private_key(a_priv), load_private_key(b_priv)
    b_done = threading.Event()
    real_copy = countersign._copy

    def slow_copy(src, dst, n):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "signer-a":
            b_done.wait(timeout=2)  # B cannot finish while A holds the lock: this times out
        real_copy(src, dst, n)

    monkeypatch.setattr(countersign, "_copy", slow_copy)
    errors: list[BaseException] = []

    def sign(key: PrivateKey, done: threading.Event | None) -> None:
        try:
            capsa.sign_bundle(bundle_copy, [key])
        except BaseException as e:
            errors.append(e)
        if done is not None:
            done.set()

    ta = threading.Thread(target=sign, args=(a, None), name="signer-a")
    ta.start()
    # Let A take the lock first (in the other order B signs first, and A still copies B's).
    threading.Event().wait(0.3)
    tb = threading.Thread(target=sign, args=(b, b_done), name="signer-b")
    tb.start()
    ta.join(30)
    tb.join(30)
    assert errors == []
    with capsa.open(bundle_copy) as bundle:
        report = bundle.verify(keys=[load_public_key(a_pub), load_public_key(b_pub)])
    assert report.ok, report.problems
    assert sorted(c.status for c in report.signatures) == ["valid", "valid"]


def test_concurrent_capsa_sign_processes_keep_every_signature(
    bundle_copy: Path, tmp_path: Path
) -> None:
    keys = _keys(tmp_path, 4)
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-m", "capsa", "sign", str(bundle_copy), "--key", priv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for priv, _ in keys
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert len(_signers(bundle_copy)) == 4
    r = subprocess.run(
        [sys.executable, "-m", "capsa", "verify", str(bundle_copy)]
        + [x for _, pub in keys for x in ("--key", str(pub))],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": valid, trusted") == 4


def test_the_same_key_signing_twice_at_once_fails_clearly_for_one(
    bundle_copy: Path, tmp_path: Path
) -> None:
    ((priv, _),) = _keys(tmp_path, 1)
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-m", "capsa", "sign", str(bundle_copy), "--key", priv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = sorted((p.wait(timeout=120), p.communicate()[1].decode()) for p in procs)
    assert [rc for rc, _ in results] == [0, 8]
    assert results[1][1].count("\n") == 1 and "already signed by SHA256:" in results[1][1]
    assert len(_signers(bundle_copy)) == 1


@pytest.mark.parametrize("mode", [0o640, 0o444, 0o600])
def test_sign_keeps_the_bundles_permission_bits(
    bundle_path: Path, tmp_path: Path, mode: int
) -> None:
    ((priv, _),) = _keys(tmp_path, 1)
    b = tmp_path / "b.capsa"
    shutil.copyfile(bundle_path, b)
    b.chmod(mode)
    capsa.sign_bundle(b, [load_private_key(priv)])
    assert b.stat().st_mode & 0o7777 == mode
    assert len(_signers(b)) == 1
