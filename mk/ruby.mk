# ruby.mk — the Ruby gem: gem build, gem install --local into a private GEM_HOME, minitest against the installed gem; its bench.
BENCH_TARGETS += bench-ruby
RUBY_DIR := bindings/ruby
RUBY_GEM_HOME := $(CURDIR)/$(BUILD)/ruby-gems
RUBY_GEM_STAMP := $(RUBY_GEM_HOME)/.installed
# Everything the gem is made of: rebuilt and reinstalled only when one of these changed.
RUBY_GEM_INPUTS := $(shell find $(RUBY_DIR)/lib $(RUBY_DIR)/ext/polytel -maxdepth 2 -type f \( -name '*.rb' -o -name '*.c' -o -name '*.h' \) -not -path '*/core/*' 2>/dev/null) \
	$(wildcard $(RUBY_DIR)/sig/*.rbs) $(RUBY_DIR)/polytel.gemspec $(RUBY_DIR)/vendor_core.rb core/sources.txt \
	$(shell find core/include core/src -type f 2>/dev/null)

.PHONY: test-ruby bench-ruby ruby-gem

# The bundled core is compiled into the extension (POLYTEL_BUNDLED_CORE=1), as on a machine with no
# libpolytel installed: the path a fresh clone takes.
$(RUBY_GEM_STAMP): $(RUBY_GEM_INPUTS)
	@echo "ruby: gem build + gem install --local into $(RUBY_GEM_HOME)" >&2
	@cd $(RUBY_DIR) && rm -f polytel-*.gem && gem build --quiet polytel.gemspec >&2
	@rm -rf $(RUBY_GEM_HOME) && mkdir -p $(RUBY_GEM_HOME)
	@POLYTEL_BUNDLED_CORE=1 MAKEFLAGS=-j$(JOBS) gem install --local --no-document --install-dir $(RUBY_GEM_HOME) \
	  $(RUBY_DIR)/polytel-*.gem >&2
	@touch $@

ruby-gem: deps $(RUBY_GEM_STAMP)

# GEM_HOME points at the private install; GEM_PATH is left to its default so minitest and rake are found.
# `install` gives the prefix for the test of extconf's other path (an installed libpolytel, pkg-config).
# (ctest `ruby`, tests/CMakeLists.txt, runs `rake test` so.)
test-ruby: build
	$(call ctest,-R '^ruby$$')

bench-ruby: ruby-gem
	@GEM_HOME=$(RUBY_GEM_HOME) ruby bench/bench_ruby.rb
