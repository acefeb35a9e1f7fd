#!/bin/sh
# Regenerate the committed protobuf modules (*_pb2.py and their .pyi stubs) from the .proto files,
# with grpcio-tools (a dev dependency): `make protos`. OUT=DIR writes them under DIR instead of in
# place, which is how tests/server/pyroscope/test_protos.py checks that the committed ones are not stale.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-.}
mkdir -p "$OUT/server/pprof"
# pprof: compiled from its own folder, so its descriptor is named profile.proto.
"$PYTHON" -m grpc_tools.protoc -I server/pprof --python_out="$OUT/server/pprof" --pyi_out="$OUT/server/pprof" \
    server/pprof/profile.proto
# Pyroscope's packages: compiled from the repository root, so the generated imports read
# server.pyroscope.proto.<package>... (a top-level "types" or "google" would shadow real modules).
"$PYTHON" -m grpc_tools.protoc -I . --python_out="$OUT" --pyi_out="$OUT" server/pyroscope/proto/*/v1/*.proto
