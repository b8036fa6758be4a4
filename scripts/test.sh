#!/bin/sh
# Install everything the test suite needs, then run it: lint, format and type checks first (any
# finding fails), then pytest.  Usage: sh scripts/test.sh [pytest args]
. "$(dirname "$0")/_install.sh"
cd "$repo"
ruff check src tests
ruff format --check src tests
mypy --strict src
python -m pytest -q "$@"
