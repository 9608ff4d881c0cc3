# wasm.mk — the WebAssembly binding: emcc build, node:test suites against the real receiver, headless chromium; its bench.
BENCH_TARGETS += bench-wasm
WASM_DIR := bindings/wasm

.PHONY: test-wasm bench-wasm wasm-build

# npm install when node_modules is missing or older than package.json / the lock (a dependency was added);
# never a browser download.
$(WASM_DIR)/node_modules/.package-lock.json: $(WASM_DIR)/package.json $(WASM_DIR)/package-lock.json
	cd $(WASM_DIR) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json

wasm-build: deps $(WASM_DIR)/node_modules/.package-lock.json
	cd $(WASM_DIR) && npm run --silent build

test-wasm: build
	$(call ctest,-R '^wasm$$')

bench-wasm: wasm-build
	node bench/bench_wasm.mjs
