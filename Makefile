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

## test: create .venv, install nncore[test,data], run the whole test suite, then every benchmark body once
## (untimed, each result checked; the GPU providers' bodies on the CUDA simulator with the tiny shapes)
test: $(STAMP)
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q bench --benchmark-disable
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest -q bench --benchmark-disable --bench-preset=tiny --bench-providers=gpu

## demo: create .venv, install nncore, train the default MLP on digits (`nncore train`), write the loss plot
demo: $(STAMP)
	$(VENV)/bin/nncore train --plot demo-loss.png

## bench: `nncore bench`, the quick preset: tables, bench.json and charts in ./nncore-bench
## (install torch==2.13.0 and jax into .venv first for the PyTorch and JAX columns)
bench: $(STAMP)
	$(VENV)/bin/nncore bench

## clean: remove the environment, build outputs and Numba's on-disk kernel cache
clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks demo-loss.png nncore-bench
	find kernels nncore -name __pycache__ -type d -prune -exec rm -rf {} +
