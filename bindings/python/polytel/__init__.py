"""polytel: logs, spans and metrics from the polytel C core, with two-phase initialization.

``import polytel`` is phase 1: console logging works at once, and with ``TELEMETRY_ENABLED=true``
everything recorded is kept for export. ``polytel.bootstrap_worker()`` is phase 2: batched OTLP
export from a polytel-owned loop thread. See docs/python.md.
"""
# The hot path (logs, spans, metrics) is C, called directly: no Python frame in between.
import atexit as _atexit
import os as _os
import sys as _sys

from . import _polytel
from ._polytel import (
    DEBUG,
    EALREADY,
    EDISABLED,
    EDROPPED,
    EINVAL,
    EIO,
    ENOMEM,
    ENOSYS,
    ESTATE,
    ETIMEDOUT,
    ERROR,
    FATAL,
    INFO,
    OK,
    TRACE,
    WARN,
    Span,
    counter_add,
    critical,
    current_span,
    debug,
    err_name,
    error,
    fatal,
    flush,
    gauge_set,
    histogram_record,
    info,
    log,
    now_ns,
    phase,
    shutdown,
    span,
    stats,
    strerror,
    trace,
    warn,
    warning,
)

__version__ = _polytel.core_version

__all__ = [
    "bootstrap_worker", "phase", "trace", "debug", "info", "warning", "warn", "error", "fatal", "critical", "log",
    "span", "Span", "current_span", "counter_add", "gauge_set", "histogram_record", "flush", "shutdown", "stats",
    "strerror", "err_name", "now_ns", "LoggingHandler",
    "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL",
    "OK", "EINVAL", "ENOMEM", "EALREADY", "ESTATE", "ETIMEDOUT", "ENOSYS", "EIO", "EDISABLED", "EDROPPED",
]  # fmt: skip

DEFAULT_EXIT_TIMEOUT_MS = 5000

# Python-side process state; reset in a fork child (the core resets its own side).
_proc = {"mp_finalizer": False}

# ------------------------------------------------------------------ phase 2

_PROTOCOLS = {"http/protobuf": 1, "protobuf": 1, "http/json": 2, "json": 2}
_EXPORTERS = {"otlp": 1, "file": 2, "none": 3}
_CONSOLES = {"stderr": 1, "stdout": 2, "off": 3}
_CONSOLE_FORMATS = {"text": 1, "json": 2}
_LEVELS = {"trace": 1, "debug": 5, "info": 9, "warn": 13, "warning": 13, "error": 17, "fatal": 21, "off": 255}
_STR_KEYS = (
    "service_name", "service_version", "endpoint", "traces_endpoint", "logs_endpoint", "metrics_endpoint",
    "certificate", "export_dir",
)  # fmt: skip
_KNOWN_KEYS = frozenset(_STR_KEYS) | {
    "resource_attributes", "headers", "protocol", "exporter", "compression", "timeout_ms", "telemetry_enabled",
    "sdk_disabled", "console", "console_format", "console_level", "max_memory_bytes", "use_env",
}  # fmt: skip


def _choice(key, value, table):
    if isinstance(value, str) and value.strip().lower() in table:
        return table[value.strip().lower()]
    raise ValueError("bootstrap_worker(%s=%r): expected one of %s" % (key, value, ", ".join(sorted(table))))


def _tristate(key, value):
    if isinstance(value, bool) or value in (0, 1):
        return int(bool(value))
    raise TypeError("bootstrap_worker(%s=%r): expected a bool" % (key, value))


def _pct(s):
    # OTEL_RESOURCE_ATTRIBUTES syntax: the core percent-decodes values.
    return str(s).replace("%", "%25").replace(",", "%2C").replace("=", "%3D")


def _pairs(key, value, encode):
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if encode:
                out.append("%s=%s" % (_pct(k), _pct(v)))
            else:
                k, v = str(k), str(v)
                if "," in k or "=" in k or "," in v:
                    raise ValueError("bootstrap_worker(%s=...): %r cannot hold ',' (or '=' in the name)" % (key, k))
                out.append("%s=%s" % (k, v))
        return ",".join(out)
    raise TypeError("bootstrap_worker(%s=...): expected a str 'k=v,...' or a dict" % key)


def _int(key, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError("bootstrap_worker(%s=%r): expected an int from %d to %d" % (key, value, lo, hi))
    return value


def _normalize(overrides):
    kw = {}
    for key, value in overrides.items():
        if key not in _KNOWN_KEYS:
            raise TypeError("bootstrap_worker() got an unexpected keyword argument %r" % key)
        if value is None:
            continue  # unset: environment, then default
        if key in _STR_KEYS:
            kw[key] = _os.fspath(value) if key in ("export_dir", "certificate") else str(value)
        elif key == "resource_attributes":
            kw[key] = _pairs(key, value, True)
        elif key == "headers":
            kw[key] = _pairs(key, value, False)
        elif key == "protocol":
            kw[key] = _choice(key, value, _PROTOCOLS)
        elif key == "exporter":
            kw[key] = _choice(key, value, _EXPORTERS)
        elif key == "console":
            kw[key] = _choice(key, value, _CONSOLES)
        elif key == "console_format":
            kw[key] = _choice(key, value, _CONSOLE_FORMATS)
        elif key == "console_level":
            kw[key] = _choice(key, value, _LEVELS) if isinstance(value, str) else _int(key, value, 1, 255)
        elif key == "compression":
            if isinstance(value, bool):
                kw["compression_gzip"] = int(value)
            else:
                kw["compression_gzip"] = _choice(key, value, {"gzip": 1, "zstd": 2, "none": 0})
        elif key == "timeout_ms":
            kw[key] = _int(key, value, 0, 2**31 - 1)
        elif key == "max_memory_bytes":
            kw[key] = _int(key, value, 0, 2**62)
        else:  # telemetry_enabled, sdk_disabled, use_env
            kw[key] = _tristate(key, value)
    return kw


def _env(name, use_env):
    return (_os.environ.get(name) or None) if use_env else None


def _display(overrides, kw):
    """Where the telemetry goes and under which service, for the status dict (the core logs the same)."""
    use_env = kw.get("use_env", 1)
    exporter = overrides.get("exporter") or _env("POLYTEL_EXPORTER", use_env) or "otlp"
    exporter = str(exporter).strip().lower()
    if exporter == "none":
        endpoint = None
    elif exporter == "file":
        endpoint = kw.get("export_dir") or _env("POLYTEL_EXPORT_DIR", use_env) or "./polytel-out"
    else:
        endpoint = kw.get("endpoint") or _env("OTEL_EXPORTER_OTLP_ENDPOINT", use_env) or "http://localhost:4318"
    service = kw.get("service_name") or _env("OTEL_SERVICE_NAME", use_env)
    if not service:
        for pair in (kw.get("resource_attributes") or _env("OTEL_RESOURCE_ATTRIBUTES", use_env) or "").split(","):
            k, _, v = pair.partition("=")
            if k.strip() == "service.name" and v.strip():
                service = v.strip()
    if not service:
        service = _exe_name()
    return endpoint, service


def _exe_name():
    try:
        return _os.path.basename(_os.readlink("/proc/self/exe"))
    except OSError:
        return _os.path.basename(_sys.executable or "python")


def bootstrap_worker(**overrides):
    """Phase 2: start exporting from a polytel-owned loop thread; returns a status dict.

    Keyword overrides take precedence over the environment: service_name, service_version,
    resource_attributes (str or dict), endpoint, traces_endpoint, logs_endpoint, metrics_endpoint,
    headers (str or dict), certificate, protocol ("http/protobuf" | "http/json"), compression
    ("gzip" | "zstd" | "none"), timeout_ms, exporter ("otlp" | "file" | "none"), export_dir,
    telemetry_enabled, sdk_disabled, console ("stderr" | "stdout" | "off"), console_format,
    console_level, max_memory_bytes, use_env.

    status is "started", "already running" (a repeated call: nothing changes), "telemetry
    disabled" (TELEMETRY_ENABLED is not true: console only) or "error" (with "error").
    Bad arguments raise TypeError or ValueError; a repeated call never raises.
    """
    kw = _normalize(overrides)
    rc = _polytel._bootstrap(**kw)
    ph = phase()
    if rc == OK:
        status = "started" if ph == "full" else "telemetry disabled"
    elif rc == EALREADY:
        status = "already running"
    else:
        status = "error"
    endpoint, service = _display(overrides, kw)
    result = {"phase": ph, "status": status, "endpoint": endpoint, "service": service, "pid": _os.getpid()}
    if status == "error":
        result["error"] = "%s: %s" % (err_name(rc), strerror(rc))
    if ph == "full":
        _flush_at_multiprocessing_exit()
    return result


# ------------------------------------------------------------- exit, fork


def _exit_timeout_ms():
    raw = _os.environ.get("POLYTEL_EXIT_TIMEOUT_MS")
    if raw is None or raw.strip() == "":
        return DEFAULT_EXIT_TIMEOUT_MS
    try:
        value = int(raw.strip())
        if not 0 <= value <= 2**32 - 1:
            raise ValueError
        return value
    except ValueError:
        # The core's wording for a bad value: the variable, the value, what was expected, what is kept.
        log(WARN, "polytel", 'invalid POLYTEL_EXIT_TIMEOUT_MS="%s" (expected milliseconds, 0 to 4294967295); using %d'
            % (raw, DEFAULT_EXIT_TIMEOUT_MS))  # fmt: skip
        return DEFAULT_EXIT_TIMEOUT_MS


def _at_exit():
    # A process that never calls shutdown() still delivers, within a bounded time.
    shutdown(timeout_ms=_exit_timeout_ms())


def _flush_at_multiprocessing_exit():
    # multiprocessing children leave through os._exit(), which skips atexit; its own finalizers run.
    if _proc["mp_finalizer"]:
        return
    mp = _sys.modules.get("multiprocessing")
    if mp is None or mp.parent_process() is None:
        return
    from multiprocessing import util

    util.Finalize(None, _at_exit, exitpriority=-100)
    _proc["mp_finalizer"] = True


def _after_fork_in_child():
    _polytel._after_fork_child()
    _proc["mp_finalizer"] = False


_atexit.register(_at_exit)
_os.register_at_fork(after_in_child=_after_fork_in_child)

# ------------------------------------------------------------- decorator

_CO_GENERATOR, _CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200


def _kind(func):
    inspect = _sys.modules.get("inspect")  # imported lazily: it costs more than all of polytel
    if inspect is not None:
        if inspect.iscoroutinefunction(func):
            return "async"
        if inspect.isasyncgenfunction(func):
            return "asyncgen"
        if inspect.isgeneratorfunction(func):
            return "gen"
        return "sync"
    flags = getattr(getattr(func, "__code__", None), "co_flags", 0)
    if flags & _CO_COROUTINE:
        return "async"
    if flags & _CO_ASYNC_GENERATOR:
        return "asyncgen"
    if flags & _CO_GENERATOR:
        return "gen"
    return "sync"


def _decorate(sp, func):
    """@polytel.span(name, **attrs): one new span per call, around the whole call (or iteration)."""
    import functools

    name, attrs = sp.name, sp.attributes or None
    span_from = _polytel._span_from
    kind = _kind(func)
    if kind == "async":

        @functools.wraps(func)
        async def wrapper(*args, **kwargs):
            with span_from(name, attrs):
                return await func(*args, **kwargs)

    elif kind == "gen":

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with span_from(name, attrs):
                return (yield from func(*args, **kwargs))

    elif kind == "asyncgen":

        @functools.wraps(func)
        async def wrapper(*args, **kwargs):
            with span_from(name, attrs):
                async for item in func(*args, **kwargs):
                    yield item

    else:

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with span_from(name, attrs):
                return func(*args, **kwargs)

    return wrapper


_polytel._set_decorate(_decorate)

# --------------------------------------------------------------- logging


def __getattr__(name):
    # `logging` costs more to import than polytel itself: load the bridge on first use.
    if name == "LoggingHandler":
        from ._logging import LoggingHandler

        globals()["LoggingHandler"] = LoggingHandler
        return LoggingHandler
    raise AttributeError("module 'polytel' has no attribute %r" % name)
