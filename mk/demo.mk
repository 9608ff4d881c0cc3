# demo.mk — `make demo`: installs what is missing, builds the core and the three bindings, runs the four workers.
.PHONY: demo

# scripts/deps.sh runs first (every build target depends on `deps`); then each build shows its own progress.
demo: build py-venv ruby-gem wasm-build
	@POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) POLYTEL_PY=$(CURDIR)/$(BUILD)/py-venv/bin/python \
	  POLYTEL_RUBY_GEM_HOME=$(CURDIR)/$(BUILD)/ruby-gems POLYTEL_WASM_DIR=$(CURDIR)/bindings/wasm \
	  POLYTEL_VENV_PY=$(VENV)/bin/python scripts/demo.sh
