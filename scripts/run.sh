#!/usr/bin/env bash
# `make run`: serve Stackyard on SQLite at ./data/stackyard.db (127.0.0.1:4180 unless STACKYARD_HOST/PORT
# say otherwise). When Go is installed, the demo service from examples/demo is built and started on
# 127.0.0.1:6060 beside it and scraped every 15 s (examples/stackyard.yaml) until you press Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

export STACKYARD_DATABASE_URL="${STACKYARD_DATABASE_URL:-sqlite:///./data/stackyard.db}"
host="${STACKYARD_HOST:-127.0.0.1}"
port="${STACKYARD_PORT:-4180}"
mkdir -p data
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if command -v go >/dev/null 2>&1; then
  (cd examples/demo && GOPROXY=off go build -trimpath -o ../../data/demo .)
  ./data/demo -addr 127.0.0.1:6060 -leak-rate 2 >/dev/null 2>&1 &
  pids+=($!)
  echo "demo Go service on http://127.0.0.1:6060/debug/pprof/"
  config=(--config examples/stackyard.yaml)
else
  echo "Go not found: starting without the demo service (apt-get install golang-go to add it)"
  config=()
fi

echo "Stackyard on http://$host:$port/"
.venv/bin/stackyard serve --host "$host" --port "$port" "${config[@]}"
