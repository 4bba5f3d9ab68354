# driftd — every target installs what it needs into .venv (in this repo).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KAFKA  := scripts/kafka/kafka.sh
export KAFKA_PORT ?= 9092

.PHONY: install test test-fast test-nojit lint docs lock bench bench-soak demo kafka-up kafka-down kafka-fetch clean promtool chromium report-screenshot

install: $(STAMP)

# Dependencies come from requirements-test.lock (pinned, every file checked against its hash),
# the same resolution CI and the image (requirements.lock) install; driftd itself is editable.
$(STAMP): pyproject.toml requirements-test.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	{ $(PY) -m pip install -q --require-hashes -r requirements-test.lock && \
	  $(PY) -m pip install -q --no-deps -e . ; } > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

# Re-resolve the lock files from pyproject.toml (after changing a dependency there).
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock" -q
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) --extra test -o requirements-test.lock

# The documentation site (mkdocs.yml, docs/): any warning (a broken link, a page missing from
# the nav) fails the build. Output in site/.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

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
test: install kafka-fetch lint docs
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-nojit

test-nojit: install
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -p no:cacheprovider tests/stats tests/performance tests/multivariate/test_mv_kernels.py tests/ingest/test_batch_decode.py --ignore=tests/performance/test_perf_calibration.py

test-fast: install
	$(PY) -m pytest -m "not kafka and not slow"

# promtool and amtool for tests/ecosystem (Prometheus rules, `promtool check metrics`,
# `amtool check-config`): Debian's prometheus and prometheus-alertmanager packages, as .ci/run
# installs them. Needs root; does nothing when both are on PATH.
promtool:
	@command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 || { \
	  echo "installing promtool and amtool (Debian packages prometheus, prometheus-alertmanager)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager >/dev/null; }

# chromium for tests/report (the HTML report opened in a real headless browser): Debian's
# chromium package, as .ci/run installs it. Needs root; does nothing when chromium is on PATH.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package chromium)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# docs/img/report.png: the report of a demo-like replay, screenshotted in headless chromium.
report-screenshot: install chromium
	$(PY) scripts/report_screenshot.py --out docs/img/report.png

# Benchmarks (README, "Performance"): each prints human-readable lines and, last, one JSON line.
# The broker-backed ones (e2e, latency) start a private Kafka on free ports and stop it.
bench: install kafka-fetch
	$(PY) -m benchmarks.kernels --json
	$(PY) -m benchmarks.calibration --json
	$(PY) -m benchmarks.labels --json
	$(PY) -m benchmarks.breakdown --json
	$(PY) -m benchmarks.memory --json
	$(PY) -m benchmarks.e2e --confluent --json
	$(PY) -m benchmarks.latency --json

# Not part of `bench` (10 minutes): steady rate, driftd RSS growth and consumer lag.
bench-soak: install kafka-fetch
	$(PY) -m benchmarks.soak --json

demo: install kafka-fetch
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache site
