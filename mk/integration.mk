# integration.mk — the C library end to end against the test OTLP receiver (tests/integration), faults injected; also under ASan+UBSan and TSan.
TEST_TARGETS += test-integration test-integration-asan test-integration-tsan
INTEGRATION_SUITES := tests/integration/test_export.py tests/integration/test_faults.py tests/integration/test_accounting.py tests/integration/test_span_model.py
.PHONY: test-integration test-integration-asan test-integration-tsan
test-integration: build collector
	POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) $(VENV)/bin/python -m pytest -q tests/integration

# A sanitizer report makes the worker exit non-zero, which fails the test that ran it.
test-integration-asan: build-asan/.built
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  POLYTEL_BUILD_DIR=$(CURDIR)/build-asan $(VENV)/bin/python -m pytest -q $(INTEGRATION_SUITES)

test-integration-tsan: build-tsan/.built
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  POLYTEL_BUILD_DIR=$(CURDIR)/build-tsan $(VENV)/bin/python -m pytest -q $(INTEGRATION_SUITES)
