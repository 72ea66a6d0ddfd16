# Two entry points do all the set-up themselves: `make demo` and `make test`.
# Both create or refresh the virtual environment .venv at the repository root.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch==2.13.0 is a CPU build on local disk on the project machines; unpinned, pip pulls a CUDA build.
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv model clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[search,test]"
	touch $(STAMP)

venv: $(STAMP)

## The main job: a hil run of the default flight model on the held-out synthetic scene (seed 7).
demo: $(STAMP)
	$(PY) -m hil run --scene synthetic --seed 7 --model models/default --device CPU --report out/demo

## The tests (CI runs exactly this through .ci/run).
test: $(STAMP)
	$(PY) -m pytest -q

## Throughput of the runtime against OpenVINO's benchmark_app on the same IR and device.
bench: $(STAMP)
	$(PY) -m pytest benchmarks -q -s --benchmark-only

## Retrain the default flight model (minutes on 2 cores).
model: $(STAMP)
	$(PY) -m search train-baseline --out models/default

clean:
	rm -rf $(VENV) out .pytest_cache .benchmarks
