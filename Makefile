# driftd — every target installs what it needs into .venv (in this repo).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KAFKA  := scripts/kafka/kafka.sh
export KAFKA_PORT ?= 9092

.PHONY: install test test-fast test-nojit lint bench bench-soak demo kafka-up kafka-down kafka-fetch clean promtool

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

kafka-fetch: install
	$(KAFKA) fetch

kafka-up: install
	$(KAFKA) up

kafka-down:
	$(KAFKA) down

lint: install
	$(VENV)/bin/ruff check driftd tests benchmarks
	$(VENV)/bin/mypy --strict driftd

# The whole suite: lint, every test (broker-backed ones against a real Kafka the suite starts,
# or KAFKA_BOOTSTRAP_SERVERS), then the kernel tests once more with the JIT disabled.
test: install kafka-fetch lint
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-nojit

test-nojit: install
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -p no:cacheprovider tests/stats tests/performance tests/multivariate/test_mv_kernels.py --ignore=tests/performance/test_perf_calibration.py

test-fast: install
	$(PY) -m pytest -m "not kafka and not slow"

# promtool for tests/ecosystem (Prometheus rules, `promtool check metrics`): Debian's prometheus
# package, as .ci/run installs it. Needs root; does nothing when promtool is on PATH.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Benchmarks (README, "Performance"): each prints human-readable lines and, last, one JSON line.
# The broker-backed ones (e2e, latency) start a private Kafka on free ports and stop it.
bench: install kafka-fetch
	$(PY) -m benchmarks.kernels --json
	$(PY) -m benchmarks.calibration --json
	$(PY) -m benchmarks.labels --json
	$(PY) -m benchmarks.memory --json
	$(PY) -m benchmarks.e2e --confluent --json
	$(PY) -m benchmarks.latency --json

# Not part of `bench` (10 minutes): steady rate, driftd RSS growth and consumer lag.
bench-soak: install kafka-fetch
	$(PY) -m benchmarks.soak --json

demo: install kafka-fetch
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
