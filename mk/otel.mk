# otel.mk — polytel.otel (polytel behind the OpenTelemetry API): tests with real instrumentation packages, its bench.
TEST_TARGETS += test-otel
BENCH_TARGETS += bench-otel bench-otel-node
OTEL_VENV := $(CURDIR)/$(BUILD)/otel-venv

.PHONY: test-otel bench-otel bench-otel-node otel-venv

$(OTEL_VENV)/bin/python:
	@mkdir -p $(BUILD)
	$(PYTHON) -m venv $(OTEL_VENV)
	$(OTEL_VENV)/bin/pip install -q --upgrade pip

# The stamp names the requirements it installed; the binding is reinstalled every run (a stale one tests old code).
otel-venv: deps $(OTEL_VENV)/bin/python
	@stamp=$(OTEL_VENV)/.req-$$(sha1sum tests/otel/requirements.txt | cut -c1-12); \
	  [ -f $$stamp ] || { $(OTEL_VENV)/bin/pip install -q -r tests/otel/requirements.txt && touch $$stamp; }
	$(OTEL_VENV)/bin/pip install -q --force-reinstall --no-deps ./bindings/python

test-otel: otel-venv
	$(OTEL_VENV)/bin/python -m pytest -q tests/otel

# Side by side in one run: the OpenTelemetry SDK (batch + OTLP/HTTP to the same receiver), polytel's providers,
# the API's no-op default and contextlib.nullcontext. The SDK lives in the bench's own venv (py-venv).
bench-otel: py-venv
	$(PY_VENV)/bin/pip install -q opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
	$(PY_VENV)/bin/python bench/otel_bench.py

# The same for Node: @opentelemetry/sdk-trace (batch + OTLP/HTTP), pt.registerOpenTelemetry(), the API's no-op;
# the receiver is tests/support/otlp_receiver.py in the project's venv. The SDK packages are devDependencies.
bench-otel-node: deps wasm-build
	BENCH_PYTHON=$(VENV)/bin/python node bench/otel_bench.mjs
