"""The image comparator on real PNG and JPEG files written with Pillow."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import capsa
from capsa.compare import compare, detect
from capsa.format.policy import compare_policy

Image = pytest.importorskip("PIL.Image", reason="the image extra (Pillow) is not installed")
PngImagePlugin = pytest.importorskip("PIL.PngImagePlugin")


def pixels(h: int = 120, w: int = 160) -> Any:
    return (np.random.default_rng(1).random((h, w, 3)) * 255).astype(np.uint8)


def png(path: Path, x: Any, when: str = "2024-01-01", **kw: Any) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("Creation Time", when)
    Image.fromarray(x).save(path, pnginfo=info, **kw)
    return path


def test_same_pixels_other_encoding_and_metadata_is_equivalent(tmp_path: Path) -> None:
    x = pixels()
    a = png(tmp_path / "a.png", x, "2025-02-02", compress_level=9)
    b = png(tmp_path / "b.png", x)
    assert a.read_bytes() != b.read_bytes() and detect(a, b) == "image"
    r = compare(a, b, compare_policy("image"))
    assert r.verdict == "equivalent"
    [m] = r.diff.ignored
    assert m.kind == "metadata" and m.detail["keys"] == ["Creation Time"]
    # A palette image with the same colours is the same picture.
    p = tmp_path / "p.png"
    small = np.zeros((8, 8, 3), np.uint8)
    small[2:4] = (255, 0, 0)
    Image.fromarray(small).convert("P").save(p)
    png(tmp_path / "rgb.png", small)
    assert compare(p, tmp_path / "rgb.png", compare_policy("image")).verdict == "different"
    Image.fromarray(small).convert("P").convert("RGBA").save(tmp_path / "rgba.png")
    assert compare(p, tmp_path / "rgba.png", compare_policy("image")).verdict == "equivalent"


def test_differing_pixels_counted_located_and_drawn(tmp_path: Path) -> None:
    x = pixels()
    y = x.copy()
    y[10:12, 20:25] = 0
    y[50, 50, 1] ^= 1
    a, b = png(tmp_path / "a.png", y), png(tmp_path / "b.png", x)
    r = compare(a, b, compare_policy("image"))
    [d] = r.diff.differences
    assert (d.kind, d.detail["count"], d.detail["pixels"], d.detail["first"]) == (
        "pixels",
        11,
        160 * 120,
        [20, 10],
    )
    assert d.summary.startswith("pixels: 11 of 19200 pixels differ (0.0573 %)")
    picture = Image.open(io.BytesIO(r.diff.attachments["diff.png"]))
    red = np.all(np.asarray(picture) == (255, 0, 0), axis=-1)
    assert red.sum() == 11 and red[10, 20] and red[50, 50]
    # A channel tolerance of 1 leaves the 10 black pixels; a share of 1 % allows them.
    r = compare(a, b, compare_policy("image", pixel_tolerance=1))
    assert r.diff.differences[0].detail["count"] == 10
    r = compare(a, b, compare_policy("image", pixel_tolerance=1, max_differing="0.01"))
    assert r.verdict == "equivalent" and r.diff.ignored[0].detail["within_tolerance"]


def test_size_mode_and_jpeg(tmp_path: Path) -> None:
    x = pixels()
    b = png(tmp_path / "b.png", x)
    r = compare(png(tmp_path / "small.png", x[:100]), b, compare_policy("image"))
    assert r.diff.differences[0].summary == "size: 160x100 vs 160x120 pixels"
    Image.fromarray(x).convert("L").save(tmp_path / "grey.png")
    r = compare(tmp_path / "grey.png", b, compare_policy("image"))
    assert r.diff.differences[0].summary == "mode: mode L vs RGB"
    Image.fromarray(x).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(x).save(tmp_path / "b.jpg", quality=95)
    assert detect(tmp_path / "a.jpg", tmp_path / "b.jpg") == "image"
    r = compare(tmp_path / "a.jpg", tmp_path / "b.jpg", compare_policy("image"))
    assert r.verdict == "different" and r.diff.differences[0].detail["max_channel_diff"] > 0
    loose = compare_policy("image", pixel_tolerance=255)
    assert compare(tmp_path / "a.jpg", tmp_path / "b.jpg", loose).verdict == "equivalent"


def test_truncated_or_corrupt_image_is_one_error(tmp_path: Path) -> None:
    b = png(tmp_path / "b.png", pixels())
    data = b.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[:2000])
    with pytest.raises(capsa.FormatError, match="not a readable image") as e:
        compare(cut, b, compare_policy("image"))
    assert e.value.where == str(cut)
    bad = tmp_path / "bad.png"
    bad.write_bytes(data[:16] + b"\0" * 20 + data[36:])
    with pytest.raises(capsa.FormatError):
        compare(bad, b, compare_policy("image"))
    r = compare(cut, b)  # the bytes policy still gives its verdict, and why it is terse
    assert r.verdict == "different" and "not compared as image" in r.note
