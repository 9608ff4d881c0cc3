# reliability.mk — fork storms, collector outage, hostile collectors, bad input, security (tests/reliability); fuzzing; valgrind; bindings on an ASan core; `make soak`.
TEST_TARGETS += test-reliability test-fuzz test-valgrind test-bindings-asan
FUZZ_SECONDS ?= 15
FUZZ_TARGETS := encode config console propagation response retry_after fmt metrics
# Per-target time in `make test` (pure parsers saturate sooner); FUZZ_SECONDS=N on the command line sets all.
# 15 s each keeps the whole run about where three targets at 30 s had it.
FUZZ_SECONDS_propagation ?= 20
fuzz_secs = $(if $(filter command line,$(origin FUZZ_SECONDS)),$(FUZZ_SECONDS),$(or $(FUZZ_SECONDS_$(1)),$(FUZZ_SECONDS)))
FUZZ_OUT := $(CURDIR)/$(BUILD)/fuzz
# tests/reliability/test_sanitized.py runs the reliability programs from the ASan+UBSan build of `make test-asan`.
RELIABILITY_ASAN_BUILD ?= $(CURDIR)/build-asan
RELIABILITY_ASAN_DEP ?= build-asan/.built
RELIABILITY_ENV = POLYTEL_BUILD_DIR=$(CURDIR)/$(BUILD) POLYTEL_PY=$(PY_VENV)/bin/python POLYTEL_GEM_HOME=$(RUBY_GEM_HOME) \
  POLYTEL_ASAN_BUILD_DIR=$(RELIABILITY_ASAN_BUILD)
# (RELIABILITY_ENV is recursive: ruby.mk, which defines RUBY_GEM_HOME, is included after this file.)
# The ASan runtime preloaded into interpreters that are not themselves instrumented.
LIBASAN := $(shell gcc -print-file-name=libasan.so 2>/dev/null)
ASAN_PY_VENV := $(CURDIR)/$(BUILD)/py-asan-venv
ASAN_PY_SRC := $(CURDIR)/$(BUILD)/py-asan-src
ASAN_GEM_HOME := $(CURDIR)/$(BUILD)/ruby-asan-gems
ASAN_FLAGS := -fsanitize=address -fno-omit-frame-pointer -g
ASAN_RUN := LD_PRELOAD=$(LIBASAN) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1

.PHONY: test-reliability test-fuzz test-valgrind test-bindings-asan soak py-asan-venv ruby-asan-gem

# The C programs come from the normal build; the bindings from their own make targets (python.mk, ruby.mk, wasm.mk).
test-reliability: build $(RELIABILITY_ASAN_DEP) py-venv ruby-gem wasm-build
	$(RELIABILITY_ENV) $(VENV)/bin/python -m pytest -q -rxX tests/reliability

# libFuzzer (clang, ASan+UBSan) over each target with the checked-in corpus; executions are printed per target.
# pipefail: a failing target fails the target (the tee would otherwise hide its exit status).
test-fuzz: deps
	@mkdir -p $(FUZZ_OUT)
	@set -o pipefail; for ts in $(foreach t,$(FUZZ_TARGETS),$(t):$(call fuzz_secs,$(t))); do t=$${ts%%:*}; secs=$${ts##*:}; \
	  FUZZ_OUT=$(FUZZ_OUT) tests/fuzz/run.sh $$t $$secs >$(FUZZ_OUT)/fuzz-$$t.log 2>&1 \
	    || { tail -n 60 $(FUZZ_OUT)/fuzz-$$t.log; echo "fuzz $$t FAILED (log: $(FUZZ_OUT)/fuzz-$$t.log)"; exit 1; }; \
	  echo "fuzz $$t: $${secs}s, $$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_OUT)/fuzz-$$t.log) executions," \
	       "$$(sed -n 's/^stat::average_exec_per_sec: *//p' $(FUZZ_OUT)/fuzz-$$t.log)/s, no crash"; \
	done | tee $(FUZZ_OUT)/summary.txt

# memcheck over every C unit test of the normal build. Fork children _exit() holding what they inherited:
# tests/reliability/valgrind.supp lists exactly those stacks (docs/reliability.md); nothing is skipped.
test-valgrind: build
	@command -v valgrind >/dev/null || { echo "valgrind missing: scripts/deps.sh installs it"; exit 1; }
	@fail=0; for t in $(BUILD)/tests/test_*; do \
	  [ -x "$$t" ] || continue; \
	  if env -u TELEMETRY_ENABLED -u OTEL_EXPORTER_OTLP_ENDPOINT -u POLYTEL_CONSOLE -u POLYTEL_LOG_LEVEL \
	      -u OTEL_SERVICE_NAME valgrind -q --error-exitcode=1 --leak-check=full \
	      --suppressions=tests/reliability/valgrind.supp $$t >$(BUILD)/valgrind-$$(basename $$t).log 2>&1; then \
	    echo "valgrind $$(basename $$t): clean"; \
	  else \
	    tail -n 40 $(BUILD)/valgrind-$$(basename $$t).log; echo "valgrind $$(basename $$t): FAILED"; fail=1; \
	  fi; \
	done; exit $$fail

# The Python extension built with -fsanitize=address, from a private copy of the package (bindings/python/build
# stays the normal build's), into its own venv.
py-asan-venv: deps
	@test -n "$(LIBASAN)" -a -f "$(LIBASAN)" || { echo "libasan.so not found (gcc)"; exit 1; }
	@test -x $(ASAN_PY_VENV)/bin/python || { $(PYTHON) -m venv $(ASAN_PY_VENV) && $(ASAN_PY_VENV)/bin/pip install -q --upgrade pip; }
	$(ASAN_PY_VENV)/bin/pip install -q pytest opentelemetry-proto protobuf build setuptools wheel
	@rm -rf $(ASAN_PY_SRC) && mkdir -p $(ASAN_PY_SRC)/bindings && ln -s $(CURDIR)/core $(ASAN_PY_SRC)/core \
	  && cp CMakeLists.txt $(ASAN_PY_SRC)/ \
	  && cp -r bindings/python $(ASAN_PY_SRC)/bindings/ \
	  && rm -rf $(ASAN_PY_SRC)/bindings/python/build $(ASAN_PY_SRC)/bindings/python/_core $(ASAN_PY_SRC)/bindings/python/*.egg-info
	CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address" $(ASAN_PY_VENV)/bin/pip install -q --force-reinstall --no-deps \
	  --no-build-isolation $(ASAN_PY_SRC)/bindings/python

ruby-asan-gem: ruby-gem
	@rm -rf $(ASAN_GEM_HOME) && mkdir -p $(ASAN_GEM_HOME)
	POLYTEL_BUNDLED_CORE=1 MAKEFLAGS=-j$(JOBS) gem install --local --no-document --install-dir $(ASAN_GEM_HOME) \
	  $(RUBY_DIR)/polytel-*.gem -- --with-cflags="-O1 $(ASAN_FLAGS) --param asan-stack=0" --with-ldflags="-fsanitize=address"

# Each binding's own suite, once, against its ASan-built core (leak checks off: the interpreters are not built
# for them). A sanitizer report aborts the worker, which fails its test. Ruby: heap checks only (asan-stack=0),
# because Ruby raises (Interrupt, Timeout) by longjmp over the extension's frames without ASan seeing it, and the
# stale stack redzones then give false reports; and no ASan alternate signal stack (Ruby installs its own).
test-bindings-asan: py-asan-venv ruby-asan-gem
	$(ASAN_RUN) $(ASAN_PY_VENV)/bin/python -m pytest -q -p no:cacheprovider bindings/python/tests
	cd $(RUBY_DIR) && $(ASAN_RUN):use_sigaltstack=0 GEM_HOME=$(ASAN_GEM_HOME) POLYTEL_GEM_HOME=$(ASAN_GEM_HOME) \
	  POLYTEL_PYTHON=$(VENV)/bin/python rake test

# Longer runs on demand: 10-minute fuzzing per target, a 100-child fork storm, a 20 s outage (10 s down).
soak: build $(RELIABILITY_ASAN_DEP) py-venv ruby-gem wasm-build
	POLYTEL_SOAK=1 $(RELIABILITY_ENV) $(VENV)/bin/python -m pytest -q -rxX tests/reliability
	$(MAKE) --no-print-directory test-fuzz FUZZ_SECONDS=600
