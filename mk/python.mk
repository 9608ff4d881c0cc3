# python.mk — the Python binding: pip-installed into a fresh venv, tested against the real receiver; its bench.
BENCH_TARGETS += bench-python
PY_VENV := $(CURDIR)/$(BUILD)/py-venv
PYTHON ?= python3

.PHONY: test-python bench-python py-venv

$(PY_VENV)/bin/python:
	@mkdir -p $(BUILD)
	$(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install -q --upgrade pip

# Reinstalled every run (a no-op rebuild is cheap; a stale extension would test old code).
py-venv: deps $(PY_VENV)/bin/python
	$(PY_VENV)/bin/pip install -q pytest opentelemetry-proto protobuf build mypy
	$(PY_VENV)/bin/pip install -q --force-reinstall --no-deps ./bindings/python

# ctest `python` (tests/CMakeLists.txt): bindings/python/tests in the py-venv.
test-python: build
	$(call ctest,-R '^python$$')

# The bench runs in the same venv, with the reference OpenTelemetry SDK beside polytel.
bench-python: py-venv
	$(PY_VENV)/bin/pip install -q opentelemetry-sdk
	$(PY_VENV)/bin/python bench/bench_python.py $(CURDIR)/$(BUILD)

