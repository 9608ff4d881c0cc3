# polytel — `make demo` and `make test` are the two commands a new user needs.
# Every target installs what is missing first (scripts/deps.sh).
SHELL := /bin/bash
BUILD ?= build
PREFIX ?= $(CURDIR)/$(BUILD)/prefix
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -G Ninja -DPOLYTEL_WERROR=ON
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
# What the suites share (tests/support: the receiver, worker_harness, procs, ...) imports from anywhere, also in a
# suite or bench that still puts the old tests/receiver or tests/integration on sys.path (docs/testing.md).
export PYTHONPATH := $(CURDIR)/tests/support$(if $(PYTHONPATH),:$(PYTHONPATH))

# Suites are ctest tests (tests/CMakeLists.txt, docs/testing.md); TEST_TARGETS is for a suite that is still only
# a make target (mk/*.mk: `TEST_TARGETS += test-foo`): ctest runs it as make.test-foo.
TEST_TARGETS :=
BENCH_TARGETS :=
# At most two suites at once (2 cores shared with others); TEST_JOBS=1 runs them one by one.
TEST_JOBS ?= 2
# ctest over the main build tree; `$(call ctest,-L python)` runs one area (its set-up steps are ctest fixtures).
ctest = ctest --test-dir $(BUILD) --output-on-failure -j$(TEST_JOBS) $(1)

.PHONY: all deps build install test print-test-targets test-core test-nouv test-asan test-tsan test-consumer bench demo clean format
all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX) >/dev/null

test-core: build
	$(call ctest,-L '^unit$$')

build-asan/.built: deps FORCE
	@cmake -S . -B build-asan -G Ninja -DPOLYTEL_WERROR=ON -DPOLYTEL_SANITIZE=address,undefined -DPOLYTEL_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug -DPOLYTEL_TEST_SUITES=OFF >/dev/null
	@cmake --build build-asan -j$(JOBS) && touch $@

build-tsan/.built: deps FORCE
	@cmake -S . -B build-tsan -G Ninja -DPOLYTEL_WERROR=ON -DPOLYTEL_SANITIZE=thread -DPOLYTEL_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug -DPOLYTEL_TEST_SUITES=OFF >/dev/null
	@cmake --build build-tsan -j$(JOBS) && touch $@

# The loop-free core (POLYTEL_WITH_UV=OFF, what the wasm build compiles) builds and passes natively too.
build-nouv/.built: deps FORCE
	@cmake -S . -B build-nouv -G Ninja -DPOLYTEL_WERROR=ON -DPOLYTEL_WITH_UV=OFF -DPOLYTEL_BUILD_BENCH=OFF -DPOLYTEL_TEST_SUITES=OFF >/dev/null
	@cmake --build build-nouv -j$(JOBS) && touch $@

# The unit tests in the loop-free, ASan+UBSan and TSan trees; the C consumer against the installed library.
test-nouv: build
	$(call ctest,-R '^nouv$$')

test-asan: build
	$(call ctest,-R '^asan$$')

test-tsan: build
	$(call ctest,-R '^tsan$$')

test-consumer: build
	$(call ctest,-R '^consumers$$')

-include mk/*.mk

# Every suite: `ctest -N` lists them, docs/testing.md says how to add one. Set-up steps run as ctest fixtures.
test: build
	$(call ctest)
	@echo "make test: all suites passed"

print-test-targets:
	@echo $(TEST_TARGETS)

# One command: every bench, each figure beside its anchor; writes docs/benchmarks.md + .png.
bench: build
	@scripts/deps.sh --bench
	@bench/run.sh $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-tsan build-nouv demo-out dist

FORCE:
