"""A fan-out/merge production of short busybox steps, packed with its steps directly (no
recording): ``seed`` → ``work[i]`` (i < n) → ``merge``, plus optional steps that fail at replay
(and one that reads the failing step's output, so it must be skipped) or sleep."""

from __future__ import annotations

import hashlib
from pathlib import Path

import capsa


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _step(name: str, image: str, script: str, *args: str, **files: object) -> capsa.Step:
    return capsa.Step.model_validate(
        {
            "name": name,
            "image": image,
            "argv": ("sh", "-c", script, "sh", *args),
            "env": {"PATH": "/bin"},
            "runtime": {"name": "bwrap"},
            **files,
        }
    )


def fan_out_bundle(
    out: Path,
    busybox: Path,
    n: int,
    *,
    fail: bool = False,
    sleep: float = 0,
    burn: int = 0,
) -> Path:
    """``n`` parallel steps between a seed and a merge. ``sleep`` makes each ``work`` step sleep
    that long first; ``burn`` makes it count to that number in the shell (CPU-bound)."""
    tmp = out.parent / f"{out.stem}-files"
    tmp.mkdir()
    image = _digest(busybox.read_bytes())
    files: dict[str, Path] = {"images/busybox.sif": busybox}

    def file(path: str, data: bytes) -> dict[str, str]:
        p = tmp / path
        p.write_bytes(data)
        files[path] = p
        return {"path": path, "digest": _digest(data)}

    seed = file("seed.txt", b"seed\n")
    steps = [_step("seed", image, "echo seed > seed.txt", outputs=(seed,))]
    parts = []
    pre = (f"sleep {sleep}; " if sleep else "") + (
        f"i=0; while [ $i -lt {burn} ]; do i=$((i+1)); done; " if burn else ""
    )
    for i in range(n):
        part = file(f"part-{i}.txt", f"seed-{i}\n".encode())
        parts.append(part)
        steps.append(
            _step(
                f"work[i={i}]",
                image,
                pre + 'read x < seed.txt; echo "$x-$1" > "part-$1.txt"',
                str(i),
                inputs=(seed,),
                outputs=(part,),
            )
        )
    total = file("total.txt", b"".join(f"seed-{i}\n".encode() for i in range(n)))
    steps.append(
        _step(
            "merge",
            image,
            'cat "$@" > total.txt',
            *[p["path"] for p in parts],
            inputs=tuple(parts),
            outputs=(total,),
        )
    )
    if fail:
        lost = file("lost.txt", b"lost\n")
        steps.append(_step("fail", image, "exit 3", inputs=(seed,), outputs=(lost,)))
        after = file("after.txt", b"lost\n")
        steps.append(
            _step("after-fail", image, "cat lost.txt > after.txt", inputs=(lost,), outputs=(after,))
        )
    return capsa.pack(
        out, files=files, roles=[("images/*", "image")], steps=steps, progress=False
    ).path
