# stress.mk — `make test-stress`: the integration, reliability and smoke suites three times in a row with two
# CPU-burning processes beside them (scripts/stress.sh starts and always stops them); docs/reliability.md records a run.
.PHONY: test-stress
STRESS_RUNS ?= 3
STRESS_BURNERS ?= 2

test-stress: build collector $(RELIABILITY_ASAN_DEP) py-venv ruby-gem wasm-build
	$(RELIABILITY_ENV) POLYTEL_RUBY_GEM_HOME=$(RUBY_GEM_HOME) POLYTEL_WASM_DIR=$(CURDIR)/$(WASM_DIR) \
	  STRESS_RUNS=$(STRESS_RUNS) STRESS_BURNERS=$(STRESS_BURNERS) STRESS_OUT=$(CURDIR)/$(BUILD)/stress \
	  STRESS_PYTHON=$(VENV)/bin/python scripts/stress.sh
