# smoke.mk — the cross-language smoke suite (tests/smoke): one scenario run by the C, Python, Ruby and wasm workers against the real receiver.
.PHONY: test-smoke

# Each binding as `make` builds and installs it: the CMake build, the py-venv, the private GEM_HOME, the wasm
# dist/ (ctest fixtures of the smoke.test_<file> suites, tests/CMakeLists.txt).
test-smoke: build
	$(call ctest,-R '^smoke\.')
