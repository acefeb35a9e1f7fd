"""The committed protobuf modules match their .proto files: regenerate them and compare.

``scripts/protos.sh`` (``make protos``) writes them; here it writes into a
temporary folder and every generated file must equal the committed one. The
protoc version stamped in the header (and its runtime check) is left out of
the comparison, so a newer grpcio-tools does not fail the suite for nothing:
the descriptor and the stubs are what must not drift.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import ROOT

GENERATED = sorted(
    [
        *ROOT.glob("server/pprof/*_pb2.py"),
        *ROOT.glob("server/pprof/*_pb2.pyi"),
        *ROOT.glob("server/pyroscope/proto/*/v1/*_pb2.py"),
        *ROOT.glob("server/pyroscope/proto/*/v1/*_pb2.pyi"),
    ]
)
PROTOS = sorted([*ROOT.glob("server/pprof/*.proto"), *ROOT.glob("server/pyroscope/proto/*/v1/*.proto")])
_VERSION = re.compile(r"# Protobuf Python Version: .*\n|_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)\n")


def _comparable(text: str) -> str:
    return _VERSION.sub("", text)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("protos")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    subprocess.run([str(ROOT / "scripts" / "protos.sh")], check=True, env=env, cwd=ROOT, timeout=120)
    return out


def test_every_proto_has_its_committed_module_and_stub() -> None:
    for proto in PROTOS:
        for suffix in ("_pb2.py", "_pb2.pyi"):
            assert proto.with_name(proto.stem + suffix) in GENERATED, f"{proto} has no committed {suffix}"


@pytest.mark.parametrize("committed", GENERATED, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_module_equals_a_fresh_one(committed: Path, regenerated: Path) -> None:
    fresh = regenerated / committed.relative_to(ROOT)
    assert fresh.exists(), f"{committed} is generated from no .proto any more"
    assert _comparable(committed.read_text()) == _comparable(fresh.read_text()), (
        f"{committed.relative_to(ROOT)} is stale: run `make protos` and commit the result"
    )


def test_the_comparison_sees_a_changed_field(regenerated: Path) -> None:
    """A renumbered field shows up in the descriptor, so a stale module cannot pass unnoticed."""
    path = "server/pyroscope/proto/types/v1/types_pb2.py"
    fresh = (regenerated / path).read_text()
    assert "sample_unit\\x18\\x05" in fresh
    assert _comparable(fresh) != _comparable(fresh.replace("sample_unit\\x18\\x05", "sample_unit\\x18\\x06"))
