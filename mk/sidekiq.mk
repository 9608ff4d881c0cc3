# sidekiq.mk — Sidekiq (Debian ruby-sidekiq) with require "polytel/sidekiq": jobs from Python and Ruby, a real redis-server, the project's receiver.
TEST_TARGETS += test-sidekiq

.PHONY: test-sidekiq

# The gem installed by ruby.mk (build/ruby-gems); Sidekiq and its Redis client come from Debian (deps.sh).
test-sidekiq: ruby-gem
	@POLYTEL_GEM_HOME=$(RUBY_GEM_HOME) $(VENV)/bin/python -m pytest tests/sidekiq -q -p no:cacheprovider
