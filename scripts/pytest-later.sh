#!/usr/bin/env bash
# Run the tests marked `dates` (they ingest, query or age data) with the clock 400 days ahead, under
# Debian's faketime. A test that passes only on the day it was written fails here.
# Without faketime the run is skipped with a message, except under STACKYARD_STRICT=1 (CI), where it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v faketime >/dev/null 2>&1; then
  if [ "${STACKYARD_STRICT:-}" != "" ] && [ "${STACKYARD_STRICT}" != "0" ]; then
    echo "pytest-later: STACKYARD_STRICT=1 but faketime is not installed (apt-get install faketime)" >&2
    exit 1
  fi
  echo "pytest-later: faketime is not installed (apt-get install faketime): skipping the run 400 days ahead" >&2
  exit 0
fi
# tests/conftest.py checks at the start that the clock really moved, against the real time passed here.
export STACKYARD_CLOCK_AHEAD_DAYS=400
export STACKYARD_REAL_TIME="$(date +%s)"
# Arguments go to pytest (`make test` passes its pytest-xdist workers, which inherit faketime's environment,
# so their clock is moved too).
exec faketime '+400 days' .venv/bin/pytest -p no:cacheprovider -m dates -k "not postgresql" -q "$@"
