# python.mk — the Python binding: pip-installed into a fresh venv, tested against the real receiver; its bench.
TEST_TARGETS += test-python
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

test-python: py-venv
	$(PY_VENV)/bin/python -m pytest -q bindings/python/tests

# The bench runs in the same venv, with the reference OpenTelemetry SDK beside polytel.
bench-python: py-venv
	$(PY_VENV)/bin/pip install -q opentelemetry-sdk
	$(PY_VENV)/bin/python bench/bench_python.py

# The same tests against an ASan+UBSan build of the extension and core (not part of `make test`:
# the reliability suite decides). Python itself is not instrumented, so ASan is preloaded.
PY_ASAN_VENV := $(CURDIR)/$(BUILD)/py-venv-asan
.PHONY: test-python-asan
test-python-asan: deps
	@test -x $(PY_ASAN_VENV)/bin/python || $(PYTHON) -m venv $(PY_ASAN_VENV)
	$(PY_ASAN_VENV)/bin/pip install -q pytest opentelemetry-proto protobuf
	CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  $(PY_ASAN_VENV)/bin/pip install -q --force-reinstall --no-deps ./bindings/python
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PY_ASAN_VENV)/bin/python -m pytest -q -p no:cacheprovider bindings/python/tests
