"""Real CPU captures of ``examples/bigservice`` in its steady and churn modes, cached for ``bench/churn.py``.

    .venv/bin/python bench/churn_captures.py                      # 36 captures per mode (reused when cached)
    .venv/bin/python bench/churn_captures.py --count 36 --mode churn
    .venv/bin/python bench/churn_captures.py --fresh              # drop the cached captures, capture again

What it does, per mode, one mode at a time:

1. generates the Go service (``examples/bigservice/generate.py``, default
   seed and sizes) into the cache and builds it with the installed Go
   (standard library only, ``GOPROXY=off``: nothing is downloaded);
2. runs it on 127.0.0.1 with two busy workers (``-mode steady`` or
   ``-mode churn``) and, after a short warm-up, takes N consecutive CPU
   profiles from ``/debug/pprof/profile?seconds=S``, back to back;
3. keeps them, with what each one was (seconds, samples, bytes, the load
   average while it was taken), under ``bench/.captures/`` (git-ignored).

Every file is a real capture, as Go wrote it. S is 10 s on an idle 2-core
machine, where two workers give about 2,000 samples in 10 s. On a busy
machine the service gets less CPU, so S is stretched (up to ``--max-seconds``)
until a capture holds about ``--samples`` samples, what a 10 s profile of a
service keeping two cores busy holds; each capture's real duration is kept
in the profile and in ``captures.json``.

The cache is keyed by the generated Go code and the service's flags:
change either and the next run captures afresh. Asking
for more captures than are cached adds the missing ones (a new run of the
service; ``captures.json`` says which run each came from).
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "examples" / "bigservice" / "generate.py"
CACHE = ROOT / "bench" / ".captures"
MODES = ("steady", "churn")
WORKERS = 2
ROUTES = 16  # steady mode: routes per endpoint (the service's default)
WARMUP_S = 2.0


@dataclass(frozen=True)
class Capture:
    """One real capture on disk and what it was."""

    file: str
    run: int
    seconds: int
    samples: int
    bytes: int
    load: float
    taken_at: str

    def path(self, directory: Path) -> Path:
        return directory / self.file


def go_binary() -> str:
    found = shutil.which("go") or next((p for p in ("/usr/lib/go/bin/go", "/usr/bin/go") if Path(p).exists()), None)
    if found is None:
        raise SystemExit("go is not installed (apt-get install golang-go): the captures need Go to build the service")
    return found


def generate() -> Path:
    """Generate the service's source (deterministic) and build it, once per distinct source; its build folder.

    The folder is named by a digest of the generated files, so editing the
    generator's comments keeps the cache and changing the Go code does not.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="gen-", dir=CACHE))  # one per process: runs may overlap
    subprocess.run([sys.executable, str(GENERATOR), "--quiet", "--out", str(staging)], check=True)
    digest = hashlib.sha256()
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(staging)).encode() + b"\0" + path.read_bytes())
    directory = CACHE / f"build-{digest.hexdigest()[:12]}"
    binary = directory / "bigservice"
    if binary.exists():
        shutil.rmtree(staging)
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(exist_ok=True)
    staging.rename(directory / "gen")
    env = {**os.environ, "GOPROXY": "off", "CGO_ENABLED": "0"}
    command = [go_binary(), "build", "-trimpath", "-o", str(binary), "."]
    subprocess.run(command, cwd=directory / "gen", env=env, check=True)
    return directory


def gzip_tool() -> Path:
    """``bench/gogzip`` built with the installed Go: compresses derived profiles as runtime/pprof does."""
    source = ROOT / "bench" / "gogzip" / "main.go"
    binary = CACHE / f"gogzip-{hashlib.sha256(source.read_bytes()).hexdigest()[:12]}"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOPROXY": "off", "CGO_ENABLED": "0"}
        subprocess.run([go_binary(), "build", "-o", str(binary), str(source)], env=env, check=True)
    return binary


def captures_dir(build_dir: Path, mode: str) -> Path:
    """Where the captures of ``mode`` by the service built in ``build_dir`` (with this script's flags) are kept."""
    flags = f"workers{WORKERS}" + (f"-routes{ROUTES}" if mode == "steady" else "")
    return CACHE / f"{mode}-{flags}-{build_dir.name.removeprefix('build-')}"


def samples_in(payload: bytes) -> int:
    """Samples in a CPU profile: the count of field 2 records, read without a protobuf library."""
    data = gzip.decompress(payload)
    count, i, n = 0, 0, len(data)
    while i < n:
        key, i = _varint(data, i)
        wire = key & 7
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            count += key >> 3 == 2
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unexpected wire type {wire} in a profile")
    return count


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


class Service:
    """The built service running in one mode; stopped (only this process) on exit."""

    def __init__(self, binary: Path, mode: str, log: Path) -> None:
        self._log = log.open("w")
        command = [str(binary), "-addr", "127.0.0.1:0", "-workers", str(WORKERS), "-mode", mode]
        if mode == "steady":
            command += ["-routes", str(ROUTES)]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        self.address = ""
        while not self.address:
            text = log.read_text()
            if text.startswith("listening on "):
                self.address = text.split()[2]
            elif self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"bigservice did not start: {text[-2000:]}")
            else:
                time.sleep(0.05)

    def profile(self, seconds: int) -> bytes:
        url = f"http://{self.address}/debug/pprof/profile?seconds={seconds}"
        with urllib.request.urlopen(url, timeout=seconds + 30) as answer:
            data: bytes = answer.read()
        return data

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _read_index(directory: Path) -> list[Capture]:
    index = directory / "captures.json"
    if not index.exists():
        return []
    return [Capture(**row) for row in json.loads(index.read_text())]


def _write_index(directory: Path, captures: list[Capture]) -> None:
    (directory / "captures.json").write_text(json.dumps([asdict(c) for c in captures], indent=1) + "\n")


def say(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def ensure(mode: str, count: int, target_samples: int = 2000, max_seconds: int = 60) -> tuple[Path, list[Capture]]:
    """At least ``count`` real captures of ``mode``, capturing what the cache lacks; (directory, the first count)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {MODES}")
    build_dir = generate()
    directory = captures_dir(build_dir, mode)
    directory.mkdir(parents=True, exist_ok=True)
    captures = _read_index(directory)
    if len(captures) >= count:
        return directory, captures[:count]
    with (directory / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another process is capturing into {directory}; wait for it") from None
        captures = _read_index(directory)  # what the other process left, if one just finished
        _capture(build_dir / "bigservice", mode, directory, captures, count, target_samples, max_seconds)
    return directory, captures[:count]


def _capture(
    binary: Path,
    mode: str,
    directory: Path,
    captures: list[Capture],
    count: int,
    target_samples: int,
    max_seconds: int,
) -> None:
    """Run the service and append consecutive captures to ``captures`` (and the index) until there are ``count``."""
    if len(captures) >= count:
        return
    run = max((c.run for c in captures), default=-1) + 1
    say(f"{mode}: capturing {count - len(captures)} CPU profiles (run {run}), {WORKERS} workers; {load_text()}")
    service = Service(binary, mode, directory / f"service-run{run}.log")
    try:
        time.sleep(WARMUP_S)
        # A short probe measures how much CPU the service gets on this machine now.
        probe = samples_in(service.profile(3))
        rate = max(probe / 3, 1.0)
        while len(captures) < count:
            seconds = min(max_seconds, max(10, math.ceil(target_samples / rate)))
            load = os.getloadavg()[0]
            taken_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            payload = service.profile(seconds)
            samples = samples_in(payload)
            rate = max(samples / seconds, 1.0)
            name = f"{len(captures):03d}.pb.gz"
            (directory / name).write_bytes(payload)
            captures.append(Capture(name, run, seconds, samples, len(payload), round(load, 2), taken_at))
            _write_index(directory, captures)
            say(f"{mode} {name}: {seconds} s, {samples} samples, {len(payload) / 1024:.0f} KB, load {load:.1f}")
    finally:
        service.stop()


def manifest() -> Path:
    """The generator's ``functions.json``: what the captures' function names mean (layer, closure, file)."""
    return generate() / "gen" / "functions.json"


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=36, help="captures per mode (default 36)")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--samples", type=int, default=2000, help="samples a capture aims at (default 2000)")
    parser.add_argument("--max-seconds", type=int, default=60, help="longest capture on a busy machine (default 60)")
    parser.add_argument("--fresh", action="store_true", help="drop the cached captures of these modes first")
    args = parser.parse_args()
    # A plain `kill` must still stop the service this script started (the `finally` in ensure()).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    modes = MODES if args.mode == "both" else (args.mode,)
    for mode in modes:
        directory = captures_dir(generate(), mode)
        if args.fresh and directory.exists():
            for old in [*directory.glob("*.pb.gz"), directory / "captures.json"]:
                old.unlink(missing_ok=True)
        directory, captures = ensure(mode, args.count, args.samples, args.max_seconds)
        seconds = [c.seconds for c in captures]
        samples = [c.samples for c in captures]
        print(
            f"{mode}: {len(captures)} real captures in {directory}: {min(seconds)}-{max(seconds)} s, "
            f"{min(samples)}-{max(samples)} samples, "
            f"{sum(c.bytes for c in captures) / len(captures) / 1024:.0f} KB each on average"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
