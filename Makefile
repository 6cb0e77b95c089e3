# symbench: `make bench MODEL=cascaded` runs the quick suite; `make test` runs the tests.
# Both create .venv and install the pinned stack on first use.
PY      := .venv/bin/python
MODEL   ?= cascaded
SUITE   ?= quick
# Data: $SYMBENCH_DATA if set, else ../shared/data if present (else torchvision's download).
DATA_DIR ?= $(or $(SYMBENCH_DATA),$(wildcard ../shared/data))
# Rows and the per-example store go to $SYMBENCH_HOME (else the user data dir); OUT=FILE appends there instead.
OUT     ?=
ARGS    ?=

.PHONY: bench test browser perf perf-fast perf-agree gpu-check device-bundle venv list leaderboard clean

venv: .venv/.installed

.venv/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade 'pip<27'
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

bench: venv
	$(PY) -m symbench bench --model $(MODEL) --suite $(SUITE) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(OUT),--out '$(OUT)') $(ARGS)

test: venv
	$(PY) -m pytest -q

browser:  ## headless Chromium for the page tests (Debian/Ubuntu, as root); .ci/run runs it before `make test`
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }

perf: venv perf-fast
	$(PY) -m symbench.bench.perf $(if $(DATA_DIR),--data-dir $(DATA_DIR))

perf-fast: venv  ## the fast path (--fast) vs eager on the standard suite, suite time vs its passes, the board's CPU-hours
	nice -n 10 $(PY) -m symbench.bench.perf.fastpath $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)

perf-agree: venv  ## the fast path's per-example outcomes equal eager's on quick and standard, one model per family (slow)
	nice -n 10 $(PY) -m pytest -q -m slow tests/test_fastpath.py

gpu-check: venv  ## on a GPU machine: CPU vs CUDA outcomes, GPU speed-up, one CUDA training epoch, perf on CUDA
	$(PY) -m symbench.bench.perf.gpu_check $(if $(DATA_DIR),--data-dir $(DATA_DIR))

device-bundle: venv  ## here: toolkits + a CIFAR-10 subset for a bare GPU machine (bench/perf/device_check.sh runs there)
	$(PY) -m symbench.bench.perf.device_bundle $(if $(DATA_DIR),--data-dir $(DATA_DIR))

list: venv
	$(PY) -m symbench list

leaderboard: venv
	$(PY) -m symbench leaderboard build --publish

clean:
	rm -rf results .pytest_cache
