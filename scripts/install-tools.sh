#!/usr/bin/env bash
# Install the system tools Stackyard's tests use for real: Go (Debian's golang-go) for the demo
# service and `go tool pprof`, the correctness oracle; Chromium (Debian's chromium) for the dashboard
# tests, which drive it through Playwright (never a browser Playwright downloads itself); faketime (Debian's
# faketime) for the run of the data tests with the clock 400 days ahead (scripts/pytest-later.sh).
# PostgreSQL server binaries are expected to be present (they are on this project's machines); the
# test suite starts its own server from them.
# Installs nothing that is already there; needs root (or sudo) only when something is missing.
set -euo pipefail

need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v faketime >/dev/null 2>&1 || need+=(faketime)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "install-tools: missing ${need[*]}; install with: sudo apt-get install -y ${need[*]}" >&2
  echo "install-tools: tests that need them will be skipped (or fail under STACKYARD_STRICT=1)" >&2
  exit 0
fi

echo "install-tools: installing ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
