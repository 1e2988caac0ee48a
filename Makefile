# contamscan: common tasks. `make demo` and `make test` work on a fresh clone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-test install-bench demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# the runtime only: what `contamscan` needs to index, scan and report
# then the compiled kernels, once per machine and source version (contamscan.native), and the
# modules' bytecode, as a non-editable install writes it (where PYTHONDONTWRITEBYTECODE is set, each
# run would otherwise compile every module from source: 0.4 s of a short scan)
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/python -m compileall -q contamscan
	$(BIN)/python -c "import contamscan.native as n; n.build_all()"
	@touch $@

# what the tests need besides: pytest, hypothesis, moto (a local S3), fsspec, import-linter, ruff, datasets,
# datatrove (the integrations' tests), wordfreq (the style fallback), Ray
$(VENV)/.test: pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install -q -e '.[test,ray]'
	@touch $@

$(VENV)/.bench: pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install -q -e '.[bench,ray,hf,datatrove]'
	@touch $@

install: $(VENV)/.runtime
install-test: $(VENV)/.test
install-bench: $(VENV)/.bench

demo: install
	$(BIN)/contamscan demo demo-out

lint: install-test
	$(BIN)/ruff check contamscan
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

bench: install-bench
	$(BIN)/python benchmarks/bench_process.py
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/bench_index.py --quick
	$(BIN)/python benchmarks/bench_accuracy.py
	$(BIN)/python benchmarks/bench_ray.py
	$(BIN)/python benchmarks/bench_style.py
	$(BIN)/python benchmarks/bench_resemblance.py
	$(BIN)/python benchmarks/bench_integrations.py

clean:
	rm -rf demo-out bench-out .pytest_cache .hypothesis
