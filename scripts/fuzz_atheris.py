"""Coverage-guided fuzzing of one target of tests/support/fuzzing.py with atheris (libFuzzer), for a fixed time.

    .venv/bin/python scripts/fuzz_atheris.py pprof --seconds 300
    .venv/bin/python scripts/fuzz_atheris.py config --seconds 60 --findings /tmp/findings

The Python code of ``server`` and ``collector`` is instrumented, so libFuzzer
steers towards new branches of the decoder, validation, parsers and loader.
The C decoder (server/pprof/_wire.c) is not instrumented (it is built with the
ordinary compiler, not clang's -fsanitize=fuzzer) but runs on every input, so a
crash there still kills the process and leaves the input behind.

The corpus starts from the target's real seeds (tests/data captures, the
example config, kept findings). A failing input is written to
``--findings`` as ``<target>-crash-<sha1>``: copy it into
``tests/data/fuzz/<target>/`` with a readable name once it is fixed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["server", "collector"]):
    from tests import fuzzing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=sorted(fuzzing.TARGETS))
    parser.add_argument("--seconds", type=int, default=300, help="how long to fuzz (libFuzzer -max_total_time)")
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"), help="where failing inputs go")
    parser.add_argument("--max-len", type=int, default=0, help="largest input libFuzzer builds (0: from the corpus)")
    args, extra = parser.parse_known_args()

    args.findings.mkdir(parents=True, exist_ok=True)
    corpus = Path(tempfile.mkdtemp(prefix=f"stackyard-corpus-{args.target}-"))
    for seed in fuzzing.seeds(args.target):
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)

    def one_input(data: bytes) -> None:
        try:
            fuzzing.run(args.target, data)
        except BaseException:
            # Kept by us as well: libFuzzer's own artifact is not written when the process dies oddly.
            (args.findings / f"{args.target}-crash-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    libfuzzer_args = [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-artifact_prefix={args.findings}/{args.target}-",
        "-timeout=20",
        "-rss_limit_mb=3072",
        "-print_final_stats=1",
        *([f"-max_len={args.max_len}"] if args.max_len else []),
        *extra,
        str(corpus),
    ]
    atheris.Setup(libfuzzer_args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
