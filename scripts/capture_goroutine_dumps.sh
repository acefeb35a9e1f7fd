#!/usr/bin/env bash
# Capture real `goroutine?debug=2` dumps from the demo into tests/data/, with
# waits long enough that Go prints them in minutes.
#
#   scripts/capture_goroutine_dumps.sh
#   OUT=/tmp/caps WAIT=75 scripts/capture_goroutine_dumps.sh
#
# Writes goroutine_dump_early.txt (a few seconds after start: no minutes yet)
# and goroutine_dump_long.txt (after WAIT seconds: the leaked workers and the
# locked threads say ", 1 minutes" and "locked to thread"). Every process it
# starts is stopped on exit (trap).
#
# Environment knobs:
#   OUT        destination directory               (default: tests/data)
#   WAIT       seconds before the long capture      (default: 75, must be > 60)
#   LEAK_RATE  leaked goroutines per second         (default: 5)
#   LEAK_MAX   stop leaking after this many         (default: 200)
#   THREADS    OS threads pinned with LockOSThread  (default: 2)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/tests/data}
WAIT=${WAIT:-75}
LEAK_RATE=${LEAK_RATE:-5}
LEAK_MAX=${LEAK_MAX:-200}
THREADS=${THREADS:-2}
export GOPROXY=off

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stackyard-dumps.XXXXXX")
PID=""
log() { printf '[dumps] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$WAIT" -gt 60 ] || die "WAIT must exceed 60 s so waits show in minutes"
(cd "$ROOT/examples/demo" && go build -trimpath -o "$WORK/demo" .)
"$WORK/demo" -addr 127.0.0.1:0 -leak-rate "$LEAK_RATE" -leak-max "$LEAK_MAX" -threads "$THREADS" >"$WORK/demo.log" 2>&1 &
PID=$!
ADDR=""
for _ in $(seq 100); do
    ADDR=$(sed -n 's/^listening on //p' "$WORK/demo.log" | head -n 1)
    [ -n "$ADDR" ] && break
    kill -0 "$PID" 2>/dev/null || die "demo exited early"
    sleep 0.1
done
[ -n "$ADDR" ] || die "demo did not report its address"
log "demo pid $PID on $ADDR"

fetch() {
    curl -sSf --max-time 30 -o "$WORK/$1" "http://$ADDR/debug/pprof/goroutine?debug=2" || die "fetch $1 failed"
    log "saved $1 ($(wc -c <"$WORK/$1") bytes)"
}
sleep 3
fetch goroutine_dump_early.txt
log "waiting ${WAIT}s so the oldest waits pass one minute"
sleep "$((WAIT - 3))"
fetch goroutine_dump_long.txt

grep -q 'main.leakyWorker' "$WORK/goroutine_dump_long.txt" || die "no main.leakyWorker"
grep -q 'minutes\]' "$WORK/goroutine_dump_long.txt" || die "no wait in minutes"
grep -q 'locked to thread\]' "$WORK/goroutine_dump_long.txt" || die "no locked thread"
grep -q '^created by main.startWorkers' "$WORK/goroutine_dump_long.txt" || die "no created by main.startWorkers"
mkdir -p "$OUT"
cp "$WORK"/goroutine_dump_*.txt "$OUT"/
log "wrote $OUT/goroutine_dump_early.txt and goroutine_dump_long.txt"
