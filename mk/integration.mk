# integration.mk — the C library end to end against the test OTLP receiver (tests/integration), faults injected; also under ASan+UBSan and TSan.
# The suites are ctest tests (tests/CMakeLists.txt): integration.test_<file>, integration.{asan,tsan}.test_<file>.
.PHONY: test-integration test-integration-asan test-integration-tsan
test-integration: build
	$(call ctest,-R '^integration\.test_')

test-integration-asan: build
	$(call ctest,-R '^integration\.asan\.')

test-integration-tsan: build
	$(call ctest,-R '^integration\.tsan\.')
