"""In-process API checks: types, argument errors, stats fields, exported symbols, lazy imports, stubs."""
import ctypes
import os
import subprocess
import sys

import polytel
import pytest

# What the identity needs (the rest of POLYTEL_STATS_FIELDS comes along; test_stats_fields_are_the_cores).
IDENTITY_FIELDS = {
    "recorded", "exported", "dropped", "pending", "unconfirmed", "dropped_buffer_full", "dropped_export",
    "dropped_invalid", "dropped_depth", "dropped_rejected",
}  # fmt: skip


def test_phase_and_stats():
    assert polytel.phase() in ("none", "console", "deferred", "full")
    s = polytel.stats()
    assert IDENTITY_FIELDS <= set(s)
    assert all(isinstance(v, int) and v >= 0 for v in s.values())
    assert s["recorded"] == s["exported"] + s["dropped"] + s["unconfirmed"] + s["pending"]
    assert s["dropped"] == (s["dropped_buffer_full"] + s["dropped_invalid"] + s["dropped_depth"] + s["dropped_export"]
                            + s["dropped_rejected"])


def _core_table(header, macro):
    """The first column of an X-macro table in the core's sources (what the binding must agree with)."""
    import re

    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    text = open(os.path.join(root, header)).read()
    body = text[text.index("#define " + macro):]
    body = body[:re.search(r"[^\\]\n", body).end()]  # up to the first line without a continuation
    return re.findall(r"XX\((\w+)", body)


def test_stats_fields_are_the_cores():
    assert list(polytel.stats()) == _core_table("core/include/polytel.h", "POLYTEL_STATS_FIELDS")


def test_options_are_the_cores():
    keys = _core_table("core/src/common/options.h", "POLYTEL__CONFIG_OPTIONS")
    assert list(polytel._polytel.option_defaults) == keys
    cfg = polytel.resolved_config()
    assert list(cfg)[3:] == keys and list(cfg)[:3] == ["phase", "not_exporting", "destination"]


def test_every_option_is_documented():
    """docs/configuration.md's "Options by name" has a row for every option of the core's table."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..")
    text = open(os.path.join(root, "docs", "configuration.md")).read()
    table = text[text.index("## Options by name"):text.index("## Telemetry on/off")]
    missing = [k for k in polytel._polytel.option_defaults if "| `%s` |" % k not in table]
    assert not missing, "options without their row in docs/configuration.md: %s" % missing


def test_error_codes():
    # The constants are the core's table: each names itself, and the names are distinct codes.
    names = ("OK", "EINVAL", "ENOMEM", "EALREADY", "ESTATE", "ETIMEDOUT", "ENOSYS", "EIO", "EDISABLED", "EDROPPED")
    for name in names:
        assert polytel.err_name(getattr(polytel, name)) == "POLYTEL_" + name
    assert len({getattr(polytel, n) for n in names}) == len(names)
    assert polytel.strerror(polytel.EALREADY) == "already initialized"
    # Levels are OpenTelemetry severity numbers (the data model's, not ours): TRACE=1 ... FATAL=21.
    assert (polytel.TRACE, polytel.DEBUG, polytel.INFO, polytel.WARN, polytel.ERROR, polytel.FATAL) == (
        1, 5, 9, 13, 17, 21)  # fmt: skip


def test_logging_calls_accept_anything_and_never_format():
    polytel.info("100% %s %d {x}", a=1)  # not a format: nothing to raise
    polytel.debug(b"bytes message", raw=b"\x00\xff")
    polytel.warning("lone surrogate \udcff", key="\ud800")
    polytel.error(object(), obj=object(), big=2**80, f=float("nan"))
    polytel.log(polytel.ERROR, "custom.target", "message", k="v")
    with pytest.raises(TypeError):
        polytel.info()
    with pytest.raises(TypeError):
        polytel.info("a", "b")
    with pytest.raises(ValueError):
        polytel.log(99, "t", "m")
    with pytest.raises(TypeError):
        polytel.log(polytel.INFO, 3, "m")


def test_blocking_call_arguments():
    with pytest.raises(ValueError):
        polytel.flush(timeout_ms=-1)
    with pytest.raises(TypeError):
        polytel.flush(timeout=5)
    assert isinstance(polytel.flush(timeout_ms=0), int)


def test_only_pyinit_is_exported():
    so = polytel._polytel.__file__
    lib = ctypes.CDLL(so)
    assert lib.PyInit__polytel
    for sym in ("polytel_phase", "polytel_log_attrs", "polytel_init_full_telemetry", "polytel__diag"):
        with pytest.raises(AttributeError):
            getattr(lib, sym)


def test_typing_files_are_installed():
    pkg = os.path.dirname(polytel.__file__)
    for name in ("py.typed", "__init__.pyi", "_polytel.pyi"):
        assert os.path.isfile(os.path.join(pkg, name)), name


def test_import_is_lazy_and_multi_phase():
    code = (
        "import sys, polytel\n"
        "print('logging' in sys.modules, 'inspect' in sys.modules, type(polytel.span('x')).__name__,"
        " polytel.__version__ == polytel._polytel.core_version)\n"
        "from polytel import LoggingHandler\n"
        "print('logging' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POLYTEL_", "TELEMETRY_"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "Span", "True", "True"]


def test_star_import_includes_the_bridge():
    ns = {}
    exec("from polytel import *", ns)
    assert {"bootstrap_worker", "span", "LoggingHandler", "counter_add"} <= set(ns)


def test_libcurl_loads_at_phase_2_not_at_import():
    """import stays cheap: libcurl (and its TLS/HTTP dependency tree) is mapped only when OTLP export starts."""
    code = (
        "import polytel\n"
        "maps = lambda: 'libcurl' in open('/proc/self/maps').read()\n"
        "at_import = maps()\n"
        "res = polytel.bootstrap_worker(telemetry_enabled=True, endpoint='http://127.0.0.1:9', timeout_ms=100)\n"
        "print(at_import, res['status'], maps())\n"
        "polytel.shutdown(timeout_ms=200)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POLYTEL_", "TELEMETRY_"))}
    env["POLYTEL_CONSOLE"] = "off"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "started", "True"], (
        "libcurl mapped at import: the core now calls a curl function that bindings/python/src/lazy_curl.c does not "
        "cover (setup.py prints which and links libcurl instead); add it to lazy_curl.c")


class _Mutator:
    """A value whose str() changes the dict it was found in: conversion must not read freed items."""

    def __init__(self, mutate):
        self.mutate = mutate

    def __str__(self):
        self.mutate()
        return "mutated"


def test_values_that_mutate_their_container_are_safe():
    import logging

    sp = polytel.span("mutating")
    with sp:
        sp.set_attribute("a", _Mutator(lambda: [sp.set_attribute("k%d" % i, "x" * 100) for i in range(50)]))
        sp.set_attribute("b", "still here")
    log = logging.getLogger("polytel.test.mutating")
    h = polytel.LoggingHandler()

    def inject(record):
        record.first = _Mutator(record.__dict__.clear)
        record.second = "x" * 1000
        return True

    h.addFilter(inject)
    log.addHandler(h)
    log.propagate = False
    try:
        for _ in range(50):
            log.warning("mutating extra")
    finally:
        log.removeHandler(h)
    assert polytel.phase() in ("console", "deferred", "full")


def test_stubs_match_the_runtime(tmp_path):
    """mypy's stubtest: every name, signature and type in the .pyi files against the installed module."""
    import importlib.util

    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is installed by `make test-python`")
    # The stubs are polytel's and polytel._polytel's (the native module). polytel.otel and polytel.integrations
    # are plain Python over optional packages (opentelemetry-api, celery, rq, uwsgi) that this venv may lack:
    # stubtest skips them (stubtest.allowlist) and mypy does not analyse them (stubtest.ini).
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-m", "mypy.stubtest", "polytel", "--mypy-config-file",
                          os.path.join(here, "stubtest.ini"), "--allowlist", os.path.join(here, "stubtest.allowlist")],
                         cwd=str(tmp_path), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
