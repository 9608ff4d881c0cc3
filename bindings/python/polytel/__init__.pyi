# Type stubs for polytel: logs, spans and metrics from the polytel C core (docs/python.md).
import logging
from typing import Any, Callable, Literal, Mapping, Optional, TypedDict, TypeVar, Union

from ._polytel import (
    DEBUG as DEBUG,
    EALREADY as EALREADY,
    EDISABLED as EDISABLED,
    EDROPPED as EDROPPED,
    EINVAL as EINVAL,
    EIO as EIO,
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
    "TRACE",
    "DEBUG",
    "INFO",
    "WARN",
    "ERROR",
    "FATAL",
    "OK",
    "EINVAL",
    "ENOMEM",
    "EALREADY",
    "ESTATE",
    "ETIMEDOUT",
    "ENOSYS",
    "EIO",
    "EDISABLED",
    "EDROPPED",
]
DEFAULT_EXIT_TIMEOUT_MS: int

class _BootstrapResult(TypedDict, total=False):
    phase: _Phase
    status: Literal["started", "already running", "telemetry disabled", "error"]
    endpoint: Optional[str]
    service: str
    pid: int
    error: str

# polytel_stats_t: recorded = exported + dropped + unconfirmed + pending (logs and spans), and
# dropped = dropped_buffer_full + dropped_invalid + dropped_depth + dropped_export + dropped_rejected.
class _Stats(TypedDict):
    recorded: int
    exported: int
    dropped: int
    pending: int
    dropped_buffer_full: int
    dropped_export: int
    dropped_invalid: int
    logs_recorded: int
    spans_recorded: int
    export_requests: int
    export_retries: int
    export_failures: int
    truncated: int
    buffer_bytes: int
    buffer_bytes_max: int
    unconfirmed: int  # sent, never answered before a deadline: may have arrived
    dropped_series: int  # metric updates past POLYTEL_MAX_METRIC_SERIES
    dropped_depth: int  # spans nested deeper than 64
    metric_saturated: int  # counter increments lost at INT64_MAX
    dropped_rejected: int  # rejected by the collector in an OTLP partial_success

def phase() -> _Phase: ...
def bootstrap_worker(
    *,
    service_name: Optional[str] = ...,
    service_version: Optional[str] = ...,
    resource_attributes: Optional[Union[str, Mapping[str, object]]] = ...,
    endpoint: Optional[str] = ...,
    traces_endpoint: Optional[str] = ...,
    logs_endpoint: Optional[str] = ...,
    metrics_endpoint: Optional[str] = ...,
    headers: Optional[Union[str, Mapping[str, object]]] = ...,
    certificate: Optional[str] = ...,
    protocol: Optional[Literal["http/protobuf", "http/json"]] = ...,
    compression: Optional[Union[Literal["gzip", "zstd", "none"], bool]] = ...,
    timeout_ms: Optional[int] = ...,
    exporter: Optional[Literal["otlp", "file", "none"]] = ...,
    export_dir: Optional[str] = ...,
    telemetry_enabled: Optional[bool] = ...,
    sdk_disabled: Optional[bool] = ...,
    console: Optional[Literal["stderr", "stdout", "off"]] = ...,
    console_format: Optional[Literal["text", "json"]] = ...,
    console_level: Optional[Union[str, int]] = ...,
    max_memory_bytes: Optional[int] = ...,
    use_env: Optional[bool] = ...,
) -> _BootstrapResult: ...

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

# Spans: a context manager and a decorator (sync, async, generators). Parents follow contextvars.
def span(name: str, /, **attrs: _AttrValue) -> Span: ...
def current_span() -> Optional[Span]: ...

# Metrics. Series are keyed by name + attributes.
def counter_add(name: str, /, value: int = 1, unit: str = "", **attrs: _AttrValue) -> None: ...
def gauge_set(name: str, /, value: float, unit: str = "", **attrs: _AttrValue) -> None: ...
def histogram_record(name: str, /, value: float, unit: str = "", **attrs: _AttrValue) -> None: ...

# Blocking (the GIL is released): 0 when everything was delivered, else a negative polytel error code.
def flush(timeout_ms: Optional[int] = 5000) -> int: ...
def shutdown(timeout_ms: Optional[int] = 5000) -> int: ...
def stats() -> _Stats: ...
def strerror(code: int, /) -> str: ...
def err_name(code: int, /) -> str: ...
def now_ns() -> int: ...

class LoggingHandler(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool: ...  # type: ignore[override]
    def emit(self, record: logging.LogRecord) -> None: ...
