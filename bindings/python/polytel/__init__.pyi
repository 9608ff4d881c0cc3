# Type stubs for polytel: logs, spans and metrics from the polytel C core (docs/python.md).
import logging
import os
from typing import Any, Callable, Dict, Iterable, Literal, Mapping, MutableMapping, Optional, Tuple, TypedDict, TypeVar, Union

from ._polytel import (
    DEBUG as DEBUG,
    EALREADY as EALREADY,
    EDISABLED as EDISABLED,
    EDROPPED as EDROPPED,
    EINVAL as EINVAL,
    EIO as EIO,
    ENOCTX as ENOCTX,
    ENOMEM as ENOMEM,
    ENOSYS as ENOSYS,
    ERROR as ERROR,
    ESTATE as ESTATE,
    ETIMEDOUT as ETIMEDOUT,
    FATAL as FATAL,
    INFO as INFO,
    OK as OK,
    TRACE as TRACE,
    WARN as WARN,
    Span as Span,
    SpanContext as SpanContext,
)

_F = TypeVar("_F", bound=Callable[..., Any])
_AttrValue = Union[str, int, float, bool, object]  # str/int/float/bool typed; anything else str(value)
_Phase = Literal["none", "console", "deferred", "full"]

__version__: str
__all__ = [
    "bootstrap_worker",
    "phase",
    "trace",
    "debug",
    "info",
    "warning",
    "warn",
    "error",
    "fatal",
    "critical",
    "log",
    "span",
    "Span",
    "current_span",
    "inject",
    "extract",
    "SpanContext",
    "Tracer",
    "tracer",
    "get_baggage",
    "set_baggage",
    "remove_baggage",
    "counter_add",
    "gauge_set",
    "histogram_record",
    "flush",
    "shutdown",
    "stats",
    "strerror",
    "err_name",
    "now_ns",
    "LoggingHandler",
    "resolved_config",
    "TRACE",
    "DEBUG",
    "INFO",
    "WARN",
    "ERROR",
    "FATAL",
    "OK",
    "EINVAL",
    "ENOMEM",
    "ENOCTX",
    "EALREADY",
    "ESTATE",
    "ETIMEDOUT",
    "ENOSYS",
    "EIO",
    "EDISABLED",
    "EDROPPED",
]
DEFAULT_EXIT_TIMEOUT_MS: int

# A resolved setting: bool, int, str, or None when it has no value.
_Setting = Union[bool, int, str, None]

# What bootstrap_worker() says is running, from the core's resolved configuration.
class _WorkerStatus(TypedDict, total=False):
    phase: _Phase
    status: Literal["started", "already running", "telemetry disabled", "error"]
    service: str
    endpoint: Optional[str]  # the collector's base URL, the file exporter's directory, None for "none"
    exporter: str
    protocol: str
    compression: str
    endpoints: Dict[str, str]  # traces, logs, metrics: the URL each signal is sent to
    export_dir: Optional[str]
    not_exporting: Optional[str]  # why nothing is exported (TELEMETRY_ENABLED not true, ...), else None
    pid: int
    config: Dict[str, _Setting]  # every option, as resolved (resolved_config())
    error: str

def phase() -> _Phase: ...
# Options are the core's (docs/configuration.md): a str, int, bool, dict (resource_attributes, headers), path or None.
def bootstrap_worker(**options: Union[str, int, bool, Mapping[str, object], "os.PathLike[str]", None]) -> _WorkerStatus: ...
def resolved_config() -> Dict[str, _Setting]: ...

# Logs: msg is the body as given, never a format string. Target "app".
def trace(msg: object, /, **attrs: _AttrValue) -> None: ...
def debug(msg: object, /, **attrs: _AttrValue) -> None: ...
def info(msg: object, /, **attrs: _AttrValue) -> None: ...
def warning(msg: object, /, **attrs: _AttrValue) -> None: ...
def warn(msg: object, /, **attrs: _AttrValue) -> None: ...
def error(msg: object, /, **attrs: _AttrValue) -> None: ...
def fatal(msg: object, /, **attrs: _AttrValue) -> None: ...
def critical(msg: object, /, **attrs: _AttrValue) -> None: ...
def log(level: int, target: str, msg: object, /, **attrs: _AttrValue) -> None: ...

# Spans: a context manager and a decorator (sync, async, generators). Parents follow contextvars, or parent=.
_Parent = Union[SpanContext, Span]
_Link = Union[SpanContext, Span, Tuple[Union[SpanContext, Span], Dict[str, _AttrValue]]]
_Kind = Literal["internal", "server", "client", "producer", "consumer"]

class Tracer:
    name: str
    version: Optional[str]
    def __init__(self, name: str, version: Optional[str] = ...) -> None: ...
    def span(self, name: str, /, *, parent: Optional[_Parent] = ..., kind: Optional[_Kind] = ...,
             links: Optional[Iterable[_Link]] = ..., attributes: Optional[Mapping[str, _AttrValue]] = ...,
             **attrs: _AttrValue) -> Span: ...

_Scope = Union[str, Tuple[str, Optional[str]], Tracer]

def span(name: str, /, *, parent: Optional[_Parent] = ..., kind: Optional[_Kind] = ...,
         links: Optional[Iterable[_Link]] = ..., attributes: Optional[Mapping[str, _AttrValue]] = ...,
         scope: Optional[_Scope] = ..., **attrs: _AttrValue) -> Span: ...
def current_span() -> Optional[Span]: ...
def tracer(name: str, version: Optional[str] = ...) -> Tracer: ...

# W3C Trace Context and Baggage (OTEL_PROPAGATORS decides which headers).
_C = TypeVar("_C", bound=MutableMapping[str, str])
def inject(carrier: Optional[_C] = ..., *, context: Optional[_Parent] = ...) -> _C: ...
def extract(carrier: Optional[Mapping[Any, Any]], /) -> Optional[SpanContext]: ...
def get_baggage(key: Optional[str] = ...) -> Any: ...  # str | None for a key, Dict[str, str] for None
def set_baggage(key: str, value: str) -> None: ...
def remove_baggage(key: Optional[str] = ...) -> None: ...

# Metrics. Series are keyed by name + attributes.
def counter_add(name: str, /, value: int = 1, unit: str = "", **attrs: _AttrValue) -> None: ...
def gauge_set(name: str, /, value: float, unit: str = "", **attrs: _AttrValue) -> None: ...
def histogram_record(name: str, /, value: float, unit: str = "", **attrs: _AttrValue) -> None: ...

# Blocking (the GIL is released): 0 when everything was delivered, else a negative polytel error code.
def flush(timeout_ms: Optional[int] = 5000) -> int: ...
def shutdown(timeout_ms: Optional[int] = 5000) -> int: ...
# polytel_stats_t (POLYTEL_STATS_FIELDS): recorded = exported + dropped + unconfirmed + pending (logs and
# spans), and dropped = dropped_buffer_full + dropped_invalid + dropped_depth + dropped_export + dropped_rejected.
def stats() -> Dict[str, int]: ...
def strerror(code: int, /) -> str: ...
def err_name(code: int, /) -> str: ...
def now_ns() -> int: ...

class LoggingHandler(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool: ...  # type: ignore[override]
    def emit(self, record: logging.LogRecord) -> None: ...
