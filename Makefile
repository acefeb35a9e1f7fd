# Thin targets; CI runs `make test` too (through .ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install tools run test lint pytest pytest-later bench captures screenshots clean fuzz protos

$(STAMP): pyproject.toml setup.py server/pprof/_wire.c server/store/_treeindex.c server/store/_keyindex.c server/store/_planes.c server/store/_words.h server/pprof/_mix.h server/query/_sandwich.c server/query/_filters.c server/query/_calltree.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# System tools the real-part tests need (Go from Debian's golang-go); installs only what is missing.
tools:
	scripts/install-tools.sh

run: install
	scripts/run.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# One worker a core (at most four), in both passes: each runs its tests in a process of its own, with its
# own PostgreSQL servers and Go builds, so the live multi-process tests wait side by side.
WORKERS := -n auto --maxprocesses 4

pytest: install
	$(BIN)/pytest $(WORKERS)

# The tests that ingest, query or age data, again with the clock 400 days ahead: no test may depend on
# today's date. On SQLite only: no SQL reads the database's clock, so PostgreSQL adds time, not coverage.
pytest-later: install
	scripts/pytest-later.sh $(WORKERS)

test: install tools lint pytest pytest-later

bench: install
	$(BIN)/python bench/ingest.py

# The long fuzzing run: hypothesis with many examples, then atheris per target (FUZZ_SECONDS each).
fuzz: install
	$(BIN)/pip install --quiet -e ".[fuzz]" || echo "atheris did not install: hypothesis only"
	scripts/fuzz.sh

# The generated protobuf modules, from the .proto files (server/pprof, server/pyroscope/proto).
protos: install
	scripts/protos.sh

captures:
	scripts/capture_profiles.sh

# Dashboard screenshots from a real session (Go demo, live server, headless chromium) into docs/img/.
screenshots: install
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
