# contamscan: common tasks. `make demo` and `make test` work on a fresh clone.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

$(BIN)/contamscan: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench,ray]'
	@touch $@

install: $(BIN)/contamscan

demo: install
	$(BIN)/contamscan demo demo-out

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_scale.py
	$(BIN)/python benchmarks/bench_accuracy.py
	$(BIN)/python benchmarks/bench_ray.py
	$(BIN)/python benchmarks/bench_style.py

clean:
	rm -rf demo-out bench-out .pytest_cache .hypothesis
