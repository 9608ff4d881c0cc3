# fleet.mk — the worker systems (tests/fleet): Celery, RQ, gunicorn, uWSGI and make demo's fleet scene for real, on a real redis-server and the
# test receiver, each started by the suite on 127.0.0.1 with a random port.
TEST_TARGETS += test-fleet
.PHONY: test-fleet fleet-venv

fleet-venv: py-venv
	@scripts/deps.sh --fleet $(PY_VENV)

# ruby-gem: test_demo_fleet.py runs `make demo`'s fleet scene, whose Sidekiq worker loads the polytel gem.
test-fleet: fleet-venv ruby-gem
	cd tests/fleet && POLYTEL_GEM_HOME=$(RUBY_GEM_HOME) $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider .
