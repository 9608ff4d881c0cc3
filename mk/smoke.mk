# smoke.mk — the cross-language smoke suite (tests/smoke): one scenario run by the C, Python, Ruby and wasm workers against the real receiver.
TEST_TARGETS += test-smoke
.PHONY: test-smoke

# Each binding as `make` builds and installs it: the CMake build, the py-venv, the private GEM_HOME, the wasm dist/.
test-smoke: build py-venv ruby-gem wasm-build collector
	POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) POLYTEL_PY=$(CURDIR)/$(BUILD)/py-venv/bin/python \
	  POLYTEL_RUBY_GEM_HOME=$(CURDIR)/$(BUILD)/ruby-gems POLYTEL_WASM_DIR=$(CURDIR)/bindings/wasm \
	  $(VENV)/bin/python -m pytest -q tests/smoke
