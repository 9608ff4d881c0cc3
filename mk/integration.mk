# integration.mk — the C library end to end against the test OTLP receiver (tests/integration), faults injected.
TEST_TARGETS += test-integration
.PHONY: test-integration
test-integration: build
	POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) $(VENV)/bin/python -m pytest -q tests/integration
