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
    ENOCTX,
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
    SpanContext,
    counter_add,
    critical,
    current_span,
    debug,
    err_name,
    error,
    fatal,
    flush,
    gauge_set,
    extract,
    histogram_record,
    info,
    inject,
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
    "span", "Span", "current_span", "inject", "extract", "SpanContext", "Tracer", "tracer", "get_baggage",
    "set_baggage", "remove_baggage", "counter_add", "gauge_set", "histogram_record", "flush", "shutdown", "stats",
    "strerror", "err_name", "now_ns", "LoggingHandler", "resolved_config",
    "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL",
    "OK", "EINVAL", "ENOMEM", "EALREADY", "ESTATE", "ETIMEDOUT", "ENOSYS", "EIO", "EDISABLED", "EDROPPED",
    "ENOCTX",
]  # fmt: skip

DEFAULT_EXIT_TIMEOUT_MS = _polytel.option_defaults["exit_timeout_ms"]  # the core's POLYTEL_EXIT_TIMEOUT_MS default

# Python-side process state; reset in a fork child (the core resets its own side).
_proc = {"mp_finalizer": False}

# ------------------------------------------------------------------ phase 2
# Names, types, ranges, defaults and the environment are the core's (its option table): keyword arguments
# go to polytel_config_set() as text, and the status comes from polytel_config_resolved().


def _pct(s):
    # OTEL_RESOURCE_ATTRIBUTES syntax: the core percent-decodes values.
    return str(s).replace("%", "%25").replace(",", "%2C").replace("=", "%3D")


def _text(key, value):
    """A keyword argument as the text its environment variable would hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        if key == "resource_attributes":
            return ",".join("%s=%s" % (_pct(k), _pct(v)) for k, v in value.items())
        if key != "headers":
            raise TypeError("bootstrap_worker(%s=...): a dict is only taken by resource_attributes and headers" % key)
        out = []
        for k, v in value.items():
            k, v = str(k), str(v)
            if "," in k or "=" in k or "," in v:
                raise ValueError("bootstrap_worker(%s=...): %r cannot hold ',' (or '=' in the name)" % (key, k))
            out.append("%s=%s" % (k, v))
        return ",".join(out)
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, _os.PathLike):
        return _os.fspath(value)
    raise TypeError("bootstrap_worker(%s=%r): expected a str, int, bool%s" % (
        key, value, " or dict" if key in ("resource_attributes", "headers") else ""))


def resolved_config():
    """What is running: phase, not_exporting and every option, as the core resolved them (a dict)."""
    return _polytel.resolved_config()


def _status(status, rc):
    cfg = _polytel.resolved_config()
    result = {
        "phase": cfg["phase"],
        "status": status,
        "service": cfg["service_name"],
        "endpoint": cfg["destination"],
        "exporter": cfg["exporter"],
        "protocol": cfg["protocol"],
        "compression": cfg["compression"],
        "endpoints": {s: cfg[s + "_endpoint"] for s in ("traces", "logs", "metrics")},
        "export_dir": cfg["export_dir"] if cfg["exporter"] == "file" else None,
        "not_exporting": cfg["not_exporting"],
        "pid": _os.getpid(),
        "config": cfg,
    }
    if status == "error":
        result["error"] = "%s: %s" % (err_name(rc), strerror(rc))
    return result


def bootstrap_worker(**overrides):
    """Phase 2: start exporting from a polytel-owned loop thread; returns a status dict (_WorkerStatus in the stubs).

    Keyword arguments are the core's options (docs/configuration.md; polytel._polytel.option_defaults) and take
    precedence over the environment: service_name, service_version, resource_attributes (str or dict),
    endpoint, traces_endpoint, logs_endpoint, metrics_endpoint, headers (str or dict), certificate, protocol
    ("http/protobuf" | "http/json"), compression ("gzip" | "none" or a bool), timeout_ms, exporter ("otlp" |
    "file" | "none"), export_dir, telemetry_enabled, sdk_disabled, console ("stderr" | "stdout" | "off"),
    console_format, console_level, max_memory_bytes, use_env, the batching options, exit_timeout_ms, ...
    None leaves an option to the environment.

    The status says what is running, as the core resolved it: phase, status ("started", "already running"
    (a repeated call: nothing changes), "telemetry disabled" (console only) or "error", with "error"),
    service, endpoint (the collector, the file exporter's directory, or None), exporter, protocol,
    compression, endpoints (per signal), export_dir, not_exporting (why nothing is exported, or None), pid
    and config (every option). Bad arguments raise TypeError or ValueError; a repeated call never raises.
    """
    pairs = []
    for key, value in overrides.items():
        if key not in _polytel.option_defaults:
            raise TypeError("bootstrap_worker() got an unexpected keyword argument %r" % key)
        if value is not None:  # unset: environment, then default
            pairs.append((key, _text(key, value)))
    rc = _polytel._bootstrap(pairs)
    ph = phase()
    if rc == OK:
        status = "started" if ph == "full" else "telemetry disabled"
    elif rc == EALREADY:
        status = "already running"
    else:
        status = "error"
    if ph == "full":
        _flush_at_multiprocessing_exit()
    return _status(status, rc)


# ------------------------------------------------------------- exit, fork


def _at_exit():
    # A process that never calls shutdown() still delivers, within a bounded time (POLYTEL_EXIT_TIMEOUT_MS).
    shutdown(timeout_ms=_polytel.resolved_config()["exit_timeout_ms"])


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

    span_from = _polytel._span_from  # a fresh span with sp's name, attributes, kind, scope, parent, links
    kind = _kind(func)
    if kind == "async":

        @functools.wraps(func)
        async def wrapper(*args, **kwargs):
            with span_from(sp):
                return await func(*args, **kwargs)

    elif kind == "gen":

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with span_from(sp):
                return (yield from func(*args, **kwargs))

    elif kind == "asyncgen":

        @functools.wraps(func)
        async def wrapper(*args, **kwargs):
            with span_from(sp):
                async for item in func(*args, **kwargs):
                    yield item

    else:

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with span_from(sp):
                return func(*args, **kwargs)

    return wrapper


_polytel._set_decorate(_decorate)

# --------------------------------------------------------- tracers, baggage


class Tracer:
    """Spans of one instrumentation scope: ``polytel.tracer("billing", "1.2").span(name, ...)``.

    The same as ``polytel.span(name, scope=("billing", "1.2"), ...)``; a Tracer is also accepted as ``scope=``.
    """

    __slots__ = ("name", "version", "_scope")

    def __init__(self, name, version=None):
        if not isinstance(name, str) or not name:
            raise ValueError("Tracer(): name must be a non-empty str")
        if version is not None and not isinstance(version, str):
            raise TypeError("Tracer(): version must be a str or None")
        self.name, self.version, self._scope = name, version, (name, version)

    def span(self, name, /, **options):
        options.setdefault("scope", self._scope)
        return span(name, **options)

    def __repr__(self):
        return "<polytel.Tracer %r%s>" % (self.name, " " + self.version if self.version else "")


def tracer(name, version=None):
    """A Tracer for instrumentation scope `name` (and `version`): its spans carry that scope."""
    return Tracer(name, version)


# W3C Baggage: key = token (RFC 9110), value any str (percent-encoded by inject()). The current baggage is a
# dict held by a ContextVar and replaced, never changed, so a copy of the context (a task) keeps its own.
_baggage_var = _polytel._baggage_var
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def get_baggage(key=None):
    """The current baggage value for `key` (None when absent), or a copy of all entries when key is None."""
    bg = _baggage_var.get(None)
    if key is None:
        return dict(bg) if bg else {}
    return bg.get(key) if bg else None


def set_baggage(key, value):
    """Set baggage entry `key` in the current context (the rest of this block, task or thread, and what it
    calls), so inject() sends it on. A span entered with parent=extract(...) has the extracted baggage."""
    if not isinstance(key, str) or not key or not _TCHAR.issuperset(key):
        raise ValueError("set_baggage(): key %r is not a W3C baggage key (an RFC 9110 token: letters, digits, "
                         "!#$%%&'*+-.^_`|~)" % (key,))
    if not isinstance(value, str):
        raise TypeError("set_baggage(): value must be a str, not %s" % type(value).__name__)
    bg = dict(_baggage_var.get(None) or ())
    bg[key] = value
    _baggage_var.set(bg)


def remove_baggage(key=None):
    """Remove baggage entry `key` from the current context (every entry when key is None)."""
    bg = _baggage_var.get(None)
    if not bg:
        return
    if key is None:
        _baggage_var.set({})
    elif key in bg:
        bg = dict(bg)
        del bg[key]
        _baggage_var.set(bg)

# --------------------------------------------------------------- logging


def __getattr__(name):
    # `logging` costs more to import than polytel itself: load the bridge on first use.
    if name == "LoggingHandler":
        from ._logging import LoggingHandler

        globals()["LoggingHandler"] = LoggingHandler
        return LoggingHandler
    raise AttributeError("module 'polytel' has no attribute %r" % name)
