#!/bin/sh
# Install everything the test suite needs, then run it.  Usage: sh scripts/test.sh [pytest args]
. "$(dirname "$0")/_install.sh"
cd "$repo"
python -m pytest -q "$@"
