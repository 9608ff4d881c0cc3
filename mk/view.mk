# view.mk — polytel.view (python -m polytel.view): its page checked in headless chromium against real workers' files (tests/view); its bench.
BENCH_TARGETS += bench-view
.PHONY: test-view bench-view

# Needs the C programs (job_step, smoke_worker), the binding in the py-venv, and playwright-core (bindings/wasm/node_modules).
test-view: build
	$(call ctest,-R '^view$$')

bench-view: py-venv bindings/wasm/node_modules/.package-lock.json
	@POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) POLYTEL_PY=$(PY_VENV)/bin/python node bench/bench_view.mjs
