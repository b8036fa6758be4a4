"""The ``bytes`` method: identical SHA-256 or different. Its diff names the first differing
byte, which is all bytes can say (content comparators say more)."""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Diff, Difference, Source
from .registry import first_difference

__all__ = ["BytesComparator"]


class BytesComparator:
    method: ClassVar[str] = "bytes"
    label: ClassVar[str] = "bytes"

    def diff(
        self,
        a: Source,
        b: Source,
        policy: Any,
        *,
        max_items: int = 10,
        names: tuple[str, str] | None = None,
    ) -> Diff:
        la, lb = names or (str(a), str(b))
        offset, size_a, size_b = first_difference(a, b)
        if offset is None:
            return Diff(la, lb)
        detail: dict[str, Any] = {"offset": offset, "size_a": size_a, "size_b": size_b}
        detail["text"] = f"first differing byte at offset {offset} (sizes {size_a} and {size_b})"
        return Diff(la, lb, [Difference("", "bytes", detail)])
