#!/usr/bin/env bash
# Capture real pprof profiles from the example Go services into tests/data/.
#
#   scripts/capture_profiles.sh            # writes tests/data/*.pb.gz etc.
#   OUT=/tmp/caps scripts/capture_profiles.sh
#
# Needs: go (1.19+, standard library only), curl, python3 (to generate the
# bigservice sources). Everything runs on 127.0.0.1 with kernel-assigned
# ports; every process started here is stopped on exit (trap).
#
# Environment knobs:
#   OUT          destination directory          (default: tests/data)
#   WARMUP       seconds before the first capture (default: 4)
#   CPU_SECONDS  duration of the demo CPU profiles  (default: 3)
#   BIG_SECONDS  duration of the bigservice profile (default: 10)
#   LEAK_RATE    leaked goroutines per second      (default: 25)
#   THREADS      extra locked OS threads           (default: 4)
#   SKIP_BIG=1   skip bigservice (big_cpu.pb.gz is then left untouched)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/tests/data}
WARMUP=${WARMUP:-4}
CPU_SECONDS=${CPU_SECONDS:-3}
BIG_SECONDS=${BIG_SECONDS:-10}
LEAK_RATE=${LEAK_RATE:-25}
THREADS=${THREADS:-4}
SKIP_BIG=${SKIP_BIG:-0}

# Never reach for the network: stdlib-only modules.
export GOPROXY=off

WORK=$(mktemp -d "${TMPDIR:-/tmp}/stackyard-capture.XXXXXX")
STAGE=$WORK/data
mkdir -p "$STAGE"
PIDS=()

log() { printf '[capture] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# stop_proc PID: SIGTERM, wait up to 5 s, then SIGKILL. Only ever called
# with PIDs of children this script started.
stop_proc() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not exit on SIGTERM; killing"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do
        stop_proc "$pid"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: start CMD in the background with its stdout/stderr in
# $WORK/NAME.log, wait for "listening on ADDR" and set STARTED_PID and
# STARTED_ADDR.
start() {
    local name=$1 logf=$WORK/$1.log i addr
    shift
    "$@" >"$logf" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    for i in $(seq 100); do
        addr=$(sed -n 's/^listening on //p' "$logf" | head -n 1)
        if [ -n "$addr" ]; then
            STARTED_ADDR=$addr
            log "$name: pid $STARTED_PID listening on $addr"
            return 0
        fi
        kill -0 "$STARTED_PID" 2>/dev/null || { cat "$logf" >&2; die "$name exited early"; }
        sleep 0.1
    done
    cat "$logf" >&2
    die "$name did not report its address within 10 s"
}

# fetch ADDR PATH DEST [SECONDS]: GET http://ADDR/debug/pprof/PATH into
# $STAGE/DEST.
fetch() {
    local addr=$1 path=$2 dest=$3 secs=${4:-0}
    curl -sSf --max-time $((secs + 30)) -o "$STAGE/$dest" "http://$addr/debug/pprof/$path" ||
        die "GET $path from $addr failed"
    log "saved $dest ($(wc -c <"$STAGE/$dest") bytes)"
}

# expect FILE FUNC...: every FUNC must appear in `go tool pprof -top FILE`.
expect() {
    local file=$1 top f
    shift
    top=$(go tool pprof -top -nodecount=100000 "$STAGE/$file" 2>/dev/null) ||
        die "go tool pprof cannot read $file"
    for f in "$@"; do
        grep -qF " $f" <<<"$top" || die "$file: expected function $f not found"
    done
}

# ------------------------------------------------------------------ build
log "building into $WORK"
(cd "$ROOT/examples/demo" && go build -trimpath -o "$WORK/demo" .)
if [ "$SKIP_BIG" != 1 ]; then
    python3 "$ROOT/examples/bigservice/generate.py" --quiet
    (cd "$ROOT/examples/bigservice/gen" && go build -trimpath -o "$WORK/bigservice" .)
fi

# ------------------------------------------------------------------- demo
# Two identical instances except for -slow-factor (cpuHogB does 4x the work
# in the slow one).
DEMO_FLAGS=(-leak-rate "$LEAK_RATE" -threads "$THREADS")
start demo "$WORK/demo" -addr 127.0.0.1:0 "${DEMO_FLAGS[@]}"
DEMO_PID=$STARTED_PID DEMO=$STARTED_ADDR
start demo-slow "$WORK/demo" -addr 127.0.0.1:0 "${DEMO_FLAGS[@]}" -slow-factor 4
SLOW_PID=$STARTED_PID SLOW=$STARTED_ADDR

log "warming up for ${WARMUP}s"
sleep "$WARMUP"

# Capture the normal and the slow CPU profile over the same wall-clock window.
fetch "$SLOW" "profile?seconds=$CPU_SECONDS" cpu_slow.pb.gz "$CPU_SECONDS" &
slow_fetch=$!
fetch "$DEMO" "profile?seconds=$CPU_SECONDS" cpu.pb.gz "$CPU_SECONDS"
wait "$slow_fetch" || die "slow CPU capture failed"
stop_proc "$SLOW_PID"

fetch "$DEMO" "profile?seconds=$CPU_SECONDS" cpu2.pb.gz "$CPU_SECONDS"
fetch "$DEMO" heap heap.pb.gz
fetch "$DEMO" allocs allocs.pb.gz
fetch "$DEMO" goroutine goroutine.pb.gz
fetch "$DEMO" "goroutine?debug=2" goroutine_debug2.txt
fetch "$DEMO" mutex mutex.pb.gz
fetch "$DEMO" block block.pb.gz
fetch "$DEMO" threadcreate threadcreate.pb.gz
stop_proc "$DEMO_PID"

# ------------------------------------------------------------- bigservice
if [ "$SKIP_BIG" != 1 ]; then
    start bigservice "$WORK/bigservice" -addr 127.0.0.1:0 -workers 2
    BIG_PID=$STARTED_PID BIG=$STARTED_ADDR
    sleep 2
    fetch "$BIG" "profile?seconds=$BIG_SECONDS" big_cpu.pb.gz "$BIG_SECONDS"
    stop_proc "$BIG_PID"
fi

# ------------------------------------------------------------------ check
log "checking captures"
expect cpu.pb.gz main.cpuHogA main.cpuHogB main.hashLoop main.fib
expect cpu2.pb.gz main.cpuHogA main.cpuHogB main.fib
expect cpu_slow.pb.gz main.cpuHogA main.cpuHogB main.hashLoop main.fib
expect heap.pb.gz main.allocBurst
expect allocs.pb.gz main.allocBurst
expect goroutine.pb.gz main.leakyWorker main.startWorkers
expect mutex.pb.gz main.contendMutex
expect block.pb.gz main.blockOnChan
expect threadcreate.pb.gz
grep -q 'main.leakyWorker' "$STAGE/goroutine_debug2.txt" || die "goroutine_debug2.txt lacks main.leakyWorker"
go tool pprof -tags "$STAGE/cpu.pb.gz" 2>/dev/null | grep -q '/checkout' || die "cpu.pb.gz has no handler labels"
if [ "$SKIP_BIG" != 1 ]; then
    expect big_cpu.pb.gz
    python3 "$ROOT/examples/bigservice/profstats.py" "$STAGE/big_cpu.pb.gz" >&2
fi

mkdir -p "$OUT"
cp "$STAGE"/* "$OUT"/
log "wrote to $OUT:"
(cd "$OUT" && ls -l -- *.pb.gz *.txt >&2 && du -cb -- * | tail -n 1 >&2)
