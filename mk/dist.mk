# dist.mk — `make dist`: every release artefact into dist/ from this tree; `make test-dist` installs each as a user would.
# Wheels (manylinux, CPython 3.9-3.13) and the sdist, the source and x86_64-linux gems, the npm tarball, the
# .deb and .tar.gz of the C library. Work and caches under $(BUILD)/dist; docs/building.md lists what dist/ holds.
DIST := $(CURDIR)/dist
DIST_WORK := $(CURDIR)/$(BUILD)/dist
POLYTEL_VERSION := $(shell sed -n 's/^\#define POLYTEL_VERSION_STRING "\(.*\)"/\1/p' core/include/polytel/version.h)
DIST_PYTHONS := 3.9 3.10 3.11 3.12 3.13
# CPython X.Y from pyenv (where these machines have them); DIST_PYTHON_3.9=/path/python3 overrides one.
dist_python = $(or $(DIST_PYTHON_$(1)),$(firstword $(wildcard $(HOME)/.pyenv/versions/$(1).*/bin/python3)))

CORE_INPUTS := $(shell find core -type f 2>/dev/null) CMakeLists.txt
PY_INPUTS := $(shell find bindings/python \( -name build -o -name _core -o -name dist -o -name '*.egg-info' -o -name tests \
  -o -name __pycache__ \) -prune -o -type f -not -name '*.so' -print 2>/dev/null)
# (ruby.mk and wasm.mk are read after this file: their variables are not set yet where prerequisites are.)
DIST_RUBY_DIR := bindings/ruby
DIST_RUBY_INPUTS := $(shell find $(DIST_RUBY_DIR)/lib $(DIST_RUBY_DIR)/ext/polytel $(DIST_RUBY_DIR)/sig -type f \
  -not -path '*/core/*' 2>/dev/null) $(DIST_RUBY_DIR)/polytel.gemspec $(DIST_RUBY_DIR)/vendor_core.rb $(DIST_RUBY_DIR)/README.md
WASM_INPUTS := $(shell find bindings/wasm/src bindings/wasm/scripts -type f 2>/dev/null) bindings/wasm/package.json \
  bindings/wasm/README.md

SDIST := $(DIST)/polytel-$(POLYTEL_VERSION).tar.gz
WHEEL_STAMPS := $(foreach v,$(DIST_PYTHONS),$(DIST_WORK)/wheel-$(v).stamp)
SRC_GEM := $(DIST)/polytel-$(POLYTEL_VERSION).gem
PLATFORM_GEM := $(DIST)/polytel-$(POLYTEL_VERSION)-x86_64-linux.gem
NPM_TGZ := $(DIST)/polytel-wasm-$(POLYTEL_VERSION).tgz
DEB := $(DIST)/libpolytel_$(POLYTEL_VERSION)_amd64.deb
C_TGZ := $(DIST)/libpolytel-$(POLYTEL_VERSION)-linux-x86_64.tar.gz
DIST_FILES := $(SDIST) $(WHEEL_STAMPS) $(SRC_GEM) $(PLATFORM_GEM) $(NPM_TGZ) $(DEB) $(C_TGZ)

.PHONY: dist dist-python dist-ruby dist-npm dist-c test-dist test-dist-run
.SECONDARY: $(foreach v,$(DIST_PYTHONS),$(DIST_WORK)/venv-$(v)/.ok)

# At most two builds at once (2 cores); each is itself parallel where its tool allows.
dist: deps
	@$(MAKE) --no-print-directory -j2 $(DIST_FILES)
	@echo "dist: polytel $(POLYTEL_VERSION) in $(DIST)/"; cd $(DIST) && ls -1 | sed 's/^/  /'

dist-python: deps $(SDIST) $(WHEEL_STAMPS)
dist-ruby: deps $(SRC_GEM) $(PLATFORM_GEM)
dist-npm: deps $(NPM_TGZ)
dist-c: deps $(DEB) $(C_TGZ)

# --- Python: the sdist first; every wheel is built from it (so the sdist is proven to build), then repaired.
$(SDIST): $(CORE_INPUTS) $(PY_INPUTS)
	@mkdir -p $(DIST) $(DIST_WORK)/sdist && rm -f $(DIST_WORK)/sdist/*
	$(VENV)/bin/python -m build --sdist --no-isolation --outdir $(DIST_WORK)/sdist bindings/python >$(DIST_WORK)/sdist.log 2>&1 \
	  || { tail -n 30 $(DIST_WORK)/sdist.log; exit 1; }
	@cp $(DIST_WORK)/sdist/polytel-$(POLYTEL_VERSION).tar.gz $@

# One build venv per CPython (setuptools + wheel), kept: a wheel build needs no index afterwards.
$(DIST_WORK)/venv-%/.ok:
	@py=$(call dist_python,$*); test -x "$$py" || { echo "dist: no CPython $* (expected ~/.pyenv/versions/$*.*/bin/python3, or DIST_PYTHON_$*=...)"; exit 1; }; \
	  rm -rf $(@D) && "$$py" -m venv $(@D) && $(@D)/bin/pip install -q --disable-pip-version-check --upgrade "setuptools>=68" wheel
	@touch $@

# linux_x86_64 from the sdist, then auditwheel: libuv vendored (Debian's libuv_a.a is not PIC), a manylinux tag.
$(DIST_WORK)/wheel-%.stamp: $(SDIST) $(DIST_WORK)/venv-%/.ok
	@rm -rf $(DIST_WORK)/raw-$* && mkdir -p $(DIST_WORK)/raw-$*
	@tag=cp$(subst .,,$*); rm -f $(DIST)/polytel-*-$$tag-$$tag-*.whl; \
	  echo "dist: wheel for CPython $* (from the sdist)"; \
	  POLYTEL_BUILD_JOBS=1 $(DIST_WORK)/venv-$*/bin/pip wheel -q --no-deps --no-build-isolation --disable-pip-version-check \
	    -w $(DIST_WORK)/raw-$* $(SDIST) >$(DIST_WORK)/wheel-$*.log 2>&1 || { tail -n 30 $(DIST_WORK)/wheel-$*.log; exit 1; }; \
	  $(VENV)/bin/auditwheel repair --strip -w $(DIST) $(DIST_WORK)/raw-$*/polytel-*.whl >>$(DIST_WORK)/wheel-$*.log 2>&1 \
	    || { tail -n 30 $(DIST_WORK)/wheel-$*.log; exit 1; }
	@touch $@

# --- Ruby: the source gem (core vendored by the gemspec), and the x86_64-linux gem built from it.
$(SRC_GEM): $(CORE_INPUTS) $(DIST_RUBY_INPUTS)
	@mkdir -p $(DIST)
	cd $(DIST_RUBY_DIR) && gem build --quiet polytel.gemspec --output $@

$(PLATFORM_GEM): $(SRC_GEM) $(DIST_RUBY_DIR)/platform_gem.rb
	@rm -f $@
	MAKEFLAGS=-j2 ruby $(DIST_RUBY_DIR)/platform_gem.rb $(SRC_GEM) $(DIST) >$(DIST_WORK)/platform-gem.log 2>&1 \
	  || { tail -n 30 $(DIST_WORK)/platform-gem.log; exit 1; }

# --- npm: release and debug modules, types and README (package.json "files"), no emscripten needed to use it.
$(NPM_TGZ): $(CORE_INPUTS) $(WASM_INPUTS) | bindings/wasm/node_modules/.package-lock.json
	@mkdir -p $(DIST)
	cd bindings/wasm && node scripts/build.mjs --release && node scripts/build.mjs --debug
	cd bindings/wasm && npm pack --silent --pack-destination $(DIST) >/dev/null

# --- C: the configuration `make test` checks with -Werror (RelWithDebInfo: -O2), stripped by CPack, through
# `cmake --install` into a .deb and a .tar.gz.
$(DIST_WORK)/c/.built: $(CORE_INPUTS)
	@mkdir -p $(DIST_WORK)
	@{ cmake -S . -B $(DIST_WORK)/c -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
	    -DPOLYTEL_BUILD_BENCH=OFF -DPOLYTEL_WERROR=ON && cmake --build $(DIST_WORK)/c -j2; } >$(DIST_WORK)/c.log 2>&1 \
	  || { grep -E -m 20 'error|Error' $(DIST_WORK)/c.log; exit 1; }
	@touch $@

$(DEB) $(C_TGZ) &: $(DIST_WORK)/c/.built
	@mkdir -p $(DIST) && rm -rf $(DIST_WORK)/cpack
	@cd $(DIST_WORK)/c && cpack -B $(DIST_WORK)/cpack >$(DIST_WORK)/cpack.log 2>&1 || { tail -n 30 $(DIST_WORK)/cpack.log; exit 1; }
	@cp $(DIST_WORK)/cpack/libpolytel_$(POLYTEL_VERSION)_amd64.deb $(DEB)
	@cp $(DIST_WORK)/cpack/libpolytel-$(POLYTEL_VERSION)-linux-x86_64.tar.gz $(C_TGZ)

# Each artefact installed into a fresh place with the build tools off PATH, a worker exporting to the receiver;
# every CPython runs bindings/python/tests against its installed wheel (tests/dist/README.md).
# ctest `dist` runs test-dist-run after its fixture `make dist`.
test-dist: build
	$(call ctest,-R '^dist$$')

test-dist-run:
	POLYTEL_DIST=$(DIST) POLYTEL_DIST_WORK=$(DIST_WORK) POLYTEL_VERSION=$(POLYTEL_VERSION) \
	  POLYTEL_DIST_PYTHONS="$(foreach v,$(DIST_PYTHONS),$(v)=$(call dist_python,$(v)))" \
	  $(VENV)/bin/python -m pytest -q -rs tests/dist
