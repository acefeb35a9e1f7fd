#!/bin/sh
# The long fuzzing run (`make fuzz`): hypothesis with many examples, then atheris per target.
#   FUZZ_EXAMPLES=20000 FUZZ_SECONDS=300 scripts/fuzz.sh          # defaults
#   FUZZ_TARGETS="pprof config" FUZZ_SECONDS=60 scripts/fuzz.sh   # some targets only
# Failing inputs from atheris land in fuzz-findings/; hypothesis prints the falsifying example.
set -eu
cd "$(dirname "$0")/.."
PY=.venv/bin/python
EXAMPLES=${FUZZ_EXAMPLES:-20000}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-300}
TARGETS=${FUZZ_TARGETS:-$($PY -c 'from tests.support.fuzzing import TARGETS; print(" ".join(TARGETS))')}

echo "== hypothesis: $EXAMPLES examples per target"
filter=$(echo "$TARGETS" | sed 's/ / or /g')
STACKYARD_FUZZ_PROFILE=long STACKYARD_FUZZ_EXAMPLES=$EXAMPLES \
  .venv/bin/pytest tests/server/pprof/test_fuzz.py -q -p no:cacheprovider --timeout=0 -k "kept or ($filter)"

if ! $PY -c 'import atheris' 2>/dev/null; then
  echo "== atheris is not installed (pip install -e '.[fuzz]'); hypothesis only"
  exit 0
fi
status=0
for target in $TARGETS; do
  echo "== atheris: $target for ${SECONDS_PER_TARGET}s"
  $PY scripts/fuzz_atheris.py "$target" --seconds "$SECONDS_PER_TARGET" --findings fuzz-findings || status=1
done
exit $status
