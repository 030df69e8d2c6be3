# One command per job; each sets up what it needs on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv test demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,data]'
	touch $(STAMP)

venv: $(STAMP)

## test: create .venv, install nncore[test,data], run the whole test suite
test: $(STAMP)
	$(PY) -m pytest -q tests

## demo: create .venv, install nncore, train the default MLP on digits (`nncore train`), write the loss plot
demo: $(STAMP)
	$(VENV)/bin/nncore train --plot demo-loss.png

## bench: run the benchmark suites (install torch==2.13.0 into .venv first for the PyTorch columns)
bench: $(STAMP)
	$(PY) -m pytest bench --benchmark-only --benchmark-columns=median,iqr,rounds --benchmark-group-by=group

## clean: remove the environment, build outputs and Numba's on-disk kernel cache
clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks demo-loss.png
	find kernels nncore -name __pycache__ -type d -prune -exec rm -rf {} +
