# receiver.mk — the test OTLP receiver's own tests (tests/receiver).
TEST_TARGETS += test-receiver
.PHONY: test-receiver
test-receiver: deps
	$(VENV)/bin/python -m pytest -q tests/receiver
