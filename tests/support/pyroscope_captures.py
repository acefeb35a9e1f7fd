"""The pyroscope-go SDK's real uploads in tests/data/pyroscope, and SDK-shaped uploads made from them.

Each capture is ``reqNN.json`` (method, path with query string, headers) and
``reqNN.body`` (the multipart body), byte for byte as the SDK sent them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.support.tools import DATA

CAPTURES = DATA / "pyroscope"
SERVICE = "pushsvc"
#: What each capture holds: the Stackyard kinds it becomes, and the sample types each kind keeps.
KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "heap": {"heap": ("inuse_objects", "inuse_space"), "allocs": ("alloc_objects", "alloc_space")},
    "goroutines": {"goroutine": ("goroutine",)},
    "block": {"block": ("contentions", "delay")},
    "mutex": {"mutex": ("contentions", "delay")},
    "cpu": {"cpu": ("samples", "cpu")},
}
#: The captures in order: two rounds 10 s apart, each heap, goroutines, block, mutex (and one CPU).
ORDER = ["heap", "goroutines", "block", "mutex", "cpu", "heap", "goroutines", "block", "mutex"]


@dataclass(frozen=True)
class Capture:
    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def what(self) -> str:
        return ORDER[self.index]

    @property
    def query(self) -> dict[str, str]:
        return {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}

    def parts(self) -> dict[str, bytes]:
        return split_form(self.body, self.headers["Content-Type"])

    def profile_file(self, directory: Path) -> Path:
        """The ``profile`` part on disk, for ``go tool pprof``."""
        path = directory / f"req{self.index:02d}.pb.gz"
        path.write_bytes(self.parts()["profile"])
        return path


def load(index: int) -> Capture:
    meta = json.loads((CAPTURES / f"req{index:02d}.json").read_text())
    return Capture(
        index, meta["method"], meta["path"], meta["headers"], (CAPTURES / f"req{index:02d}.body").read_bytes()
    )


def all_captures() -> list[Capture]:
    return [load(index) for index in range(len(ORDER))]


def split_form(body: bytes, content_type: str) -> dict[str, bytes]:
    """The named parts of a multipart body (test-side, independent of the server's parser)."""
    boundary = content_type.split("boundary=", 1)[1].strip().encode()
    parts: dict[str, bytes] = {}
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        parts[name] = data.removesuffix(b"\r\n")
    return parts


def form(parts: dict[str, bytes], boundary: str | None = None) -> tuple[str, bytes]:
    """A multipart body as the SDK writes one: each part a file (``<name>.pprof`` or ``.json``)."""
    boundary = boundary or secrets.token_hex(30)
    chunks = []
    for name, data in parts.items():
        filename = "sample_type_config.json" if name == "sample_type_config" else "profile.pprof"
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks) + f"--{boundary}--\r\n".encode()
