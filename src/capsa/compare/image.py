"""The ``image`` method: PNG, JPEG (and whatever else Pillow reads) by their pixels, with
Pillow (the ``image`` extra; spec/format.md §7.5 "Image content").

Content: frame count, dimensions, mode and every pixel (palette images by their colours).
Never content: metadata (text chunks, EXIF, ICC profiles, resolution) and the encoding
(compression, interlacing, palette order). Pixels are compared in bands of rows; an image is
decoded whole by Pillow, so images beyond Pillow's ``MAX_IMAGE_PIXELS`` are refused — the bound
on memory. When pixels differ, ``Diff.attachments["diff.png"]`` shows them: differing pixels in
red over a faded copy of the reference.
"""

from __future__ import annotations

import contextlib
import io
import warnings
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar

from ..errors import FormatError
from ..format.policy import ImagePolicy
from .base import Diff, Difference, Source, differ
from .registry import require
from .rules import open_binary, own_policy

__all__ = ["BAND_PIXELS", "ImageComparator"]

BAND_PIXELS = 1 << 20
"""Pixels compared at a time (a band of whole rows)."""


def _pil() -> Any:
    return require("PIL.Image", "image", "images")


@contextlib.contextmanager
def _opened(source: Source, label: str) -> Iterator[Any]:
    image = _pil()
    with open_binary(source, label) as f:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", image.DecompressionBombWarning)
                im = image.open(f)
                im.load()
        except (image.DecompressionBombError, image.DecompressionBombWarning):
            raise FormatError(
                f"too large to compare by pixels (more than {image.MAX_IMAGE_PIXELS} pixels)",
                where=label,
                hint="compare it with --compare bytes",
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as e:
            raise FormatError(f"not a readable image: {e}", where=label) from None
        with im:
            yield im


def _frames(im: Any) -> int:
    return int(getattr(im, "n_frames", 1))


def _comparable(im: Any) -> Any:
    """Palette images by their colours; other modes as they are."""
    if im.mode in ("P", "PA"):
        return im.convert("RGBA")
    if im.mode == "1":
        return im.convert("L")
    return im


def _metadata(im: Any) -> dict[str, str]:
    return {str(k): str(v)[:200] for k, v in im.info.items() if not isinstance(v, bytes)}


class ImageComparator:
    method: ClassVar[str] = "image"
    label: ClassVar[str] = "image content"

    def diff(
        self,
        a: Source,
        b: Source,
        policy: Any,
        *,
        max_items: int = 10,
        names: tuple[str, str] | None = None,
    ) -> Diff:
        policy = own_policy(policy, ImagePolicy)
        la, lb = names or (str(a), str(b))
        out = Diff(la, lb)
        with _opened(a, la) as ia, _opened(b, lb) as ib:
            na, nb = _frames(ia), _frames(ib)
            if na != nb:
                out.differences.append(
                    Difference("", "frames", {"a": na, "b": nb, "text": f"{na} frames vs {nb}"})
                )
            for frame in range(min(na, nb)):
                if frame:
                    ia.seek(frame)
                    ib.seek(frame)
                _frame(ia, ib, policy, out, f"frame {frame}" if max(na, nb) > 1 else "")
            ma, mb = _metadata(ia), _metadata(ib)
            changed = sorted(k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k))
            if changed or ia.format != ib.format:
                what = ", ".join(changed) or "none"
                text = f"metadata differs ({what}); format {ia.format} vs {ib.format}"
                if ia.format == ib.format:
                    text = f"metadata differs: {what}"
                out.ignored.append(Difference("", "metadata", {"keys": changed, "text": text}))
        return out


def _frame(ia: Any, ib: Any, policy: ImagePolicy, out: Diff, where: str) -> None:
    import numpy as np

    if ia.size != ib.size:
        text = f"{ia.size[0]}x{ia.size[1]} vs {ib.size[0]}x{ib.size[1]} pixels"
        out.differences.append(
            Difference(where, "size", {"a": ia.size, "b": ib.size, "text": text})
        )
        return
    ca, cb = _comparable(ia), _comparable(ib)
    if ca.mode != cb.mode:
        text = f"mode {ia.mode} vs {ib.mode}"
        out.differences.append(
            Difference(where, "mode", {"a": ia.mode, "b": ib.mode, "text": text})
        )
        return
    w, h = cb.size
    rows = max(1, BAND_PIXELS // max(1, w))
    tol = policy.pixel_tolerance
    count = beyond = 0
    max_diff = 0.0
    first: tuple[int, int] | None = None
    mask = np.zeros((h, w), bool)
    for y in range(0, h, rows):
        box = (0, y, w, min(h, y + rows))
        xa, xb = _band(ca, box), _band(cb, box)
        d = np.abs(xa - xb)
        if d.dtype.kind == "f":
            d[np.isnan(xa) & np.isnan(xb)] = 0  # NaN equals NaN (float images)
            d[np.isnan(d)] = np.inf
        if d.ndim == 3:
            d = d.max(axis=2)
        bad = d > tol
        if d.size:
            max_diff = max(max_diff, float(d.max()))
        count += int(np.count_nonzero(d))
        n = int(np.count_nonzero(bad))
        if n and first is None:
            yy, xx = np.argwhere(bad)[0]
            first = (int(xx), y + int(yy))
        beyond += n
        mask[box[1] : box[3]] = bad
    if not count:
        return
    total = w * h
    detail: dict[str, Any] = {
        "pixels": total,
        "count": beyond,
        "share": beyond / total,
        "max_channel_diff": max_diff,
        "pixel_tolerance": tol,
    }
    if first is not None:
        detail["first"] = list(first)
    text = f"{differ(beyond, 'pixel', total)} ({100 * beyond / total:.3g} %)"
    text += f"; max channel difference {max_diff:g}"
    if first is not None:
        text += f"; first at x={first[0]}, y={first[1]}"
    detail["text"] = text
    allowed = float(policy.max_differing) if policy.max_differing is not None else 0.0
    d = Difference(where, "pixels", detail)
    if beyond == 0 or beyond / total <= allowed:
        detail["within_tolerance"] = True
        if beyond == 0:
            detail["text"] = f"{count} pixels differ by at most {max_diff:g} (tolerance {tol})"
        else:
            detail["text"] += f" (up to {policy.max_differing} of the pixels may differ)"
        out.ignored.append(d)
        return
    out.differences.append(d)
    out.attachments[f"{where.replace(' ', '')}.diff.png" if where else "diff.png"] = _picture(
        cb, mask
    )


def _band(im: Any, box: tuple[int, int, int, int]) -> Any:
    import numpy as np

    x = np.asarray(im.crop(box))
    return x.astype(np.int32) if x.dtype.kind in "uib" else x.astype(np.float64)


def _picture(reference: Any, mask: Any) -> bytes:
    """Differing pixels in red over a faded grey copy of the reference."""
    import numpy as np

    image = _pil()
    grey = np.asarray(reference.convert("L"), dtype=np.uint8) // 3 + 170
    rgb = np.stack([grey, grey, grey], axis=-1)
    rgb[mask] = (255, 0, 0)
    buf = io.BytesIO()
    image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()
