# polytel — `make demo` and `make test` are the two commands a new user needs.
# Every target installs what is missing first (scripts/deps.sh).
SHELL := /bin/bash
BUILD ?= build
PREFIX ?= $(CURDIR)/$(BUILD)/prefix
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -G Ninja -DPOLYTEL_WERROR=ON
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)

TEST_TARGETS :=
BENCH_TARGETS :=

.PHONY: all deps build install test test-core test-nouv test-asan test-tsan test-consumer bench demo clean format
all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX) >/dev/null

test-core: build
	ctest --test-dir $(BUILD) -j$(JOBS) --output-on-failure

build-asan/.built: deps FORCE
	@cmake -S . -B build-asan -G Ninja -DPOLYTEL_WERROR=ON -DPOLYTEL_SANITIZE=address,undefined -DPOLYTEL_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-asan -j$(JOBS) && touch $@

build-tsan/.built: deps FORCE
	@cmake -S . -B build-tsan -G Ninja -DPOLYTEL_WERROR=ON -DPOLYTEL_SANITIZE=thread -DPOLYTEL_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build build-tsan -j$(JOBS) && touch $@

# The loop-free core (POLYTEL_WITH_UV=OFF, what the wasm build compiles) builds and passes natively too.
build-nouv/.built: deps FORCE
	@cmake -S . -B build-nouv -G Ninja -DPOLYTEL_WERROR=ON -DPOLYTEL_WITH_UV=OFF -DPOLYTEL_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-nouv -j$(JOBS) && touch $@

test-nouv: build-nouv/.built
	ctest --test-dir build-nouv -j$(JOBS) --output-on-failure

test-asan: build-asan/.built
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build-asan -j$(JOBS) --output-on-failure

test-tsan: build-tsan/.built
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --test-dir build-tsan -j$(JOBS) --output-on-failure

# The C consumer, built against the *installed* library through pkg-config, shared and static.
test-consumer: install
	@$(MAKE) -s -C examples/c-consumer clean all PKG_CONFIG_PATH=$(PREFIX)/lib/pkgconfig
	@examples/c-consumer/run-test.sh $(PREFIX)

-include mk/*.mk

test: test-core test-nouv test-asan test-tsan test-consumer $(TEST_TARGETS)
	@echo "make test: all suites passed"

# One command: every bench, each figure beside its anchor; writes docs/benchmarks.md + .png.
bench: build
	@scripts/deps.sh --bench
	@bench/run.sh $(BUILD)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-tsan build-nouv demo-out dist

FORCE:
