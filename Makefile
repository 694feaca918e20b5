# zjit developer tasks. `make install` then `make demo` / `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DEMO_OUT ?= $(or $(TMPDIR),/tmp)/zjit-demo

.PHONY: install demo test test-fast lint bench fuzz clean

install:
	$(PIP) install --quiet --disable-pip-version-check -e '.[dev]'

# Assemble the shipped example, verify it, show its code and run it on both engines.
demo: install
	mkdir -p $(DEMO_OUT)
	$(PYTHON) -m zjit asm examples/hello.s -o $(DEMO_OUT)/hello.zasm.bin
	$(PYTHON) -m zjit verify $(DEMO_OUT)/hello.zasm.bin
	$(PYTHON) -m zjit run $(DEMO_OUT)/hello.zasm.bin --engine interp
	$(PYTHON) -m zjit run $(DEMO_OUT)/hello.zasm.bin --engine jit

test:
	$(PYTHON) -m pytest

test-fast:
	$(PYTHON) -m pytest -x -m "not slow"

lint:
	$(PYTHON) -m ruff check zjit verifier backends fuzz tests bench
	$(PYTHON) -m mypy

bench:
	$(PYTHON) bench/run.py

fuzz:
	$(PYTHON) -m zjit fuzz --seconds 60

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis fuzz-failures
