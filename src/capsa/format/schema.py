"""``python -m capsa.schema [OUT]``: write (or print) spec/manifest.schema.json from the models."""

from __future__ import annotations

import sys
from pathlib import Path

from .manifest import schema_text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = schema_text()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
