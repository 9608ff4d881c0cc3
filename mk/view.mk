# view.mk — polytel.view (python -m polytel.view): its page checked in headless chromium against real workers' files (tests/view); its bench;
# docs/trace-view*.png, regenerated on demand (`make docs-images`), never by a test.
BENCH_TARGETS += bench-view
.PHONY: test-view bench-view docs-images

# Needs the C programs (job_step, smoke_worker), the binding in the py-venv, and playwright-core (bindings/wasm/node_modules).
test-view: build
	$(call ctest,-R '^view$$')

bench-view: py-venv bindings/wasm/node_modules/.package-lock.json
	@POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) POLYTEL_PY=$(PY_VENV)/bin/python node bench/bench_view.mjs

# The view suite's screenshot test with its images written into docs/ (the suite itself writes them to
# $(BUILD)/view-shots): the checked-in pictures of docs/trace-view.md change only when this is run.
docs-images: build py-venv bindings/wasm/node_modules/.package-lock.json
	POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) POLYTEL_PY=$(PY_VENV)/bin/python POLYTEL_VIEW_SHOTS=$(CURDIR)/docs \
	  node --test --test-concurrency=1 --test-name-pattern='^screenshots' tests/view/
	@git status --short docs/trace-view*.png
