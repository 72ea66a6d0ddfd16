# Two entry points do all the set-up themselves: `make demo` and `make test`.
# Both create or refresh the virtual environment .venv at the repository root.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The OpenVINO 2022.3 LTS path (the only toolkit with the MYRIAD plugin) needs Python 3.10.
PY310 ?= $(shell p=$$(pyenv root 2>/dev/null)/versions/$$(pyenv versions --bare 2>/dev/null | grep '^3\.10\.' | tail -1)/bin/python3.10; \
                 if [ -x "$$p" ]; then echo $$p; else command -v python3.10; fi)
VENV2022 := .venv-ov2022
STAMP2022 := $(VENV2022)/.installed

.PHONY: demo test test-main test-ov2022 bench venv model clean

# torch==2.13.0 (in the search extra) is a CPU build on local disk on the project machines;
# unpinned, pip pulls a multi-gigabyte CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[search,test,calibrate,coastline]"
	touch $(STAMP)

# OpenVINO 2022.3.2 wheels exist for CPython <= 3.10 and need numpy < 1.25. The project is installed
# without its own requirement (openvino >= 2024) so that this older runtime is the one imported.
$(STAMP2022): pyproject.toml
	test -x $(VENV2022)/bin/python || $(PY310) -m venv $(VENV2022)
	$(VENV2022)/bin/python -m pip install --quiet --upgrade pip
	$(VENV2022)/bin/python -m pip install --quiet "openvino==2022.3.2" "numpy<1.25" pyzmq rasterio shapely \
	    matplotlib tqdm tomli pytest pytest-timeout cryptography
	$(VENV2022)/bin/python -m pip install --quiet --no-deps -e .
	touch $(STAMP2022)

venv: $(STAMP)

## The main job: a hil run of the default flight model on the held-out synthetic scene (seed 7).
demo: $(STAMP)
	$(PY) -m hil run --scene synthetic --seed 7 --model models/default --device CPU --report out/demo

## The tests (CI runs exactly this through .ci/run): the suite, then the OpenVINO 2022.3 path.
test: test-main test-ov2022

test-main: $(STAMP)
	$(PY) -m pytest -q

# Without a Python 3.10 this step says so and is skipped, unless REQUIRE_OV2022=1 (CI sets it).
test-ov2022:
	@if [ -z "$(PY310)" ]; then \
	    echo "no Python 3.10: the OpenVINO 2022.3 tests are NOT run"; [ "$(REQUIRE_OV2022)" != 1 ]; \
	else $(MAKE) --no-print-directory $(STAMP2022) && \
	    $(VENV2022)/bin/python -m pytest -q -p no:cacheprovider tests/ov2022 \
	        tests/runtime/test_profiles.py tests/runtime/test_emulate.py; fi

## Throughput of the runtime against OpenVINO's benchmark_app on the same IR and device.
bench: $(STAMP)
	$(PY) -m pytest benchmarks -q -s --benchmark-only --timeout=0

## Retrain the default flight model (minutes on 2 cores).
model: $(STAMP)
	$(PY) -m search train-baseline --out models/default

clean:
	rm -rf $(VENV) $(VENV2022) out .pytest_cache .benchmarks
