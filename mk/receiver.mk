# receiver.mk — the test OTLP receiver's own tests (tests/receiver).
.PHONY: test-receiver
test-receiver: build
	$(call ctest,-L '^receiver$$')
