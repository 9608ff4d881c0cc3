# fleet.mk — the worker systems (tests/fleet): Celery, RQ, gunicorn, uWSGI for real, on a real redis-server and the
# test receiver, each started by the suite on 127.0.0.1 with a random port.
TEST_TARGETS += test-fleet
.PHONY: test-fleet fleet-venv

fleet-venv: py-venv
	@scripts/deps.sh --fleet $(PY_VENV)

test-fleet: fleet-venv
	cd tests/fleet && $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider .
