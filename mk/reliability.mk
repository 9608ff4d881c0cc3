# reliability.mk — fork storms, collector outage, hostile collectors, bad input, security (tests/reliability); fuzzing; valgrind; bindings on an ASan core; `make soak`.
# The suites are ctest tests (tests/CMakeLists.txt): reliability.test_<file>, fuzz.<target> (15 s each, propagation
# 20 s; FUZZ_SECONDS=N sets all), valgrind.<unit test>, python.asan and ruby.asan. These targets run them.
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

.PHONY: test-reliability test-fuzz test-valgrind test-bindings-asan soak py-asan-venv ruby-asan-gem

test-reliability: build
	$(call ctest,-R '^reliability\.')

test-fuzz: build
	$(if $(FUZZ_SECONDS),FUZZ_SECONDS=$(FUZZ_SECONDS)) $(call ctest,-L '^fuzz$$')

test-valgrind: build
	$(call ctest,-L '^valgrind$$')

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

# Each binding's own suite, once, against its ASan-built core (tests/CMakeLists.txt says how and why).
test-bindings-asan: build
	$(call ctest,-R '^(python|ruby)\.asan$$')

# Longer runs on demand: 10-minute fuzzing per target, a 100-child fork storm, a 20 s outage (10 s down).
soak: build
	POLYTEL_SOAK=1 $(call ctest,-R '^reliability\.')
	FUZZ_SECONDS=600 $(call ctest,-L '^fuzz$$')
