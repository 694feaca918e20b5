# zjit developer tasks. `make install` then `make demo` / `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DEMO_OUT ?= $(or $(TMPDIR),/tmp)/zjit-demo

STAMP := .zjit-installed

.PHONY: install demo test test-fast lint bench fuzz fuzz-containers clean

# Editable install with the dev extras; the other targets install once on demand.
install:
	$(PIP) install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[dev]'
	touch $(STAMP)

$(STAMP): pyproject.toml
	$(MAKE) install

# Assemble the shipped example, verify it, show its code and run it on both engines.
demo: $(STAMP)
	mkdir -p $(DEMO_OUT)
	$(PYTHON) -m zjit asm examples/hello.s -o $(DEMO_OUT)/hello.zasm.bin
	$(PYTHON) -m zjit verify $(DEMO_OUT)/hello.zasm.bin
	$(PYTHON) -m zjit run $(DEMO_OUT)/hello.zasm.bin --engine interp
	$(PYTHON) -m zjit run $(DEMO_OUT)/hello.zasm.bin --engine jit

test: $(STAMP)
	$(PYTHON) -m pytest

test-fast: $(STAMP)
	$(PYTHON) -m pytest -x -m "not slow"

lint: $(STAMP)
	$(PYTHON) -m ruff check zjit verifier backends fuzz tests bench
	$(PYTHON) -m mypy

# Benchmarks (docs/benchmarks.md): writes bench/results.json, leaves tracked files alone;
# `make bench BENCH_ARGS=--update-docs` also rewrites the results in docs/benchmarks.md.
# The optional wasmtime dependency (the `bench` extra) is installed on demand; without
# it the bench still runs and leaves out the Wasmtime columns.
BENCH_ARGS ?=
bench: $(STAMP)
	@$(PYTHON) -c "import wasmtime" 2>/dev/null || \
		$(PIP) install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[bench]' || \
		echo "note: wasmtime could not be installed; the bench runs without Wasmtime columns"
	$(PYTHON) bench/run.py $(BENCH_ARGS)

fuzz: $(STAMP)
	$(PYTHON) -m zjit fuzz --seconds 60

# Mutation fuzzing of the container readers (docs/fuzzing.md): FUZZ_INPUTS per format.
FUZZ_INPUTS ?= 1000000
fuzz-containers: $(STAMP)
	$(PYTHON) -m zjit.fuzz.containers --inputs $(FUZZ_INPUTS)

clean:
	rm -rf $(STAMP) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis fuzz-failures
