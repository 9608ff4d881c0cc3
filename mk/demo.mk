# demo.mk — `make demo`: installs what is missing, builds the core and the three bindings, runs the four workers, the jobs worker and the fleet scene (Celery + Sidekiq on one Redis), writes demo-out/trace.html.
.PHONY: demo demo-banner

demo-banner:
	@echo "demo: installing what is missing (scripts/deps.sh), then building the C core and the Python, Ruby and wasm bindings"

# Every build target depends on `deps`; each build shows its own progress (ninja [n/N], pip, gem, emcc per file).
demo: demo-banner build py-venv fleet-venv ruby-gem wasm-build
	@POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) POLYTEL_PY=$(CURDIR)/$(BUILD)/py-venv/bin/python \
	  POLYTEL_RUBY_GEM_HOME=$(CURDIR)/$(BUILD)/ruby-gems POLYTEL_WASM_DIR=$(CURDIR)/bindings/wasm \
	  POLYTEL_VENV_PY=$(VENV)/bin/python scripts/demo.sh
