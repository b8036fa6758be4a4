"""``python -m capsa.schema [OUT]``: write (or print) spec/manifest.schema.json from the models."""

from __future__ import annotations

from .format.schema import main

if __name__ == "__main__":
    raise SystemExit(main())
