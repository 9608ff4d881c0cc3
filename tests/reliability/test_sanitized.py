"""test_sanitized — the reliability programs (fork storm, outage, every bad-input mode) built with ASan+UBSan (build-asan, from `make test-asan`'s build), with leak detection, against the real receiver."""
from __future__ import annotations

import os

import pytest

from conftest import ROOT, clean_env, run

ASAN_BUILD = os.environ.get("POLYTEL_ASAN_BUILD_DIR", os.path.join(ROOT, "build-asan"))
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:halt_on_error=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
HANG = 180


def asan_program(name: str) -> str:
    path = os.path.join(ASAN_BUILD, "tests", name)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} not built: run `make build-asan/.built` (or set POLYTEL_ASAN_BUILD_DIR)")
    return path


def clean_run(argv: list, env: dict):
    r = run(argv, clean_env({**SAN_ENV, **env}), timeout=HANG)
    assert r.returncode == 0, r.describe()
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in r.stderr, r.describe()
    return r


@pytest.mark.parametrize("mode", [["nullapi"], ["lifecycle"], ["bigmsg"], ["threadspans"], ["spans", "20000"],
                                  ["env"], ["fmtbomb"]])
def test_bad_input_programs_are_sanitizer_clean(receiver, mode):
    r = clean_run([asan_program("badinput"), *mode], {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    res = r.one("RESULT")
    assert res["recorded"] == res["exported"] + res["dropped"] + res["pending"] and res["pending"] == 0, res


def test_fork_storm_is_sanitizer_clean(receiver):
    r = clean_run([asan_program("forkstorm"), "--children", 20, "--parent-events", 1000],
                  {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    assert r.one("FORKS")["failed"] == 0
    assert len(r.lines("CHILD")) == 20


def test_fork_during_thread_registration_is_sanitizer_clean(receiver):
    # Each fork lands while 4 fresh threads record their first event (thread registration allocates). A fork
    # inside one of those mallocs left the child a lock of ASan's allocator (no fork handlers before LLVM 18):
    # the child's next malloc of that size hung. Registration allocates under a lock fork's prepare holds.
    children, fresh, child_events = 30, 4, 50
    r = clean_run([asan_program("forkstorm"), "--children", children, "--fresh-threads", fresh,
                   "--child-events", child_events, "--parent-events", 500],
                  {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    forks = r.one("FORKS")
    assert forks["failed"] == 0 and forks["fresh"] == children * fresh, forks
    kids = r.lines("CHILD")
    assert sorted(k["who"] for k in kids) == list(range(children)), r.describe()
    for k in kids:
        # Only the child's own records: nothing of the parent's (fresh) threads came along.
        assert k["init_rc"] == 0 and k["shutdown_rc"] == 0 and k["phase_before"] == "deferred", k
        assert k["recorded"] == k["exported"] == child_events + 1 and k["dropped"] == k["pending"] == 0, k
    p = r.one("PARENT")  # a span and a log per parent event, a log per fresh thread
    assert p["recorded"] == sum(forks["emitted"]) * 2 + children * fresh, p
    assert p["recorded"] == p["exported"] + p["dropped"] + p["unconfirmed"] + p["pending"] and p["pending"] == 0, p


def test_outage_is_sanitizer_clean():
    # Collector unreachable throughout: retries, backoff, the pool filling up, drops, bounded shutdown.
    r = clean_run([asan_program("outage"), "--seconds", 2, "--shutdown-ms", 1000],
                  {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "500"})
    res = r.one("RESULT")
    assert res["recorded"] == res["emitted"] == res["dropped"] and res["exported"] == 0, res
