"""polytel.otel: polytel as an implementation of the OpenTelemetry API (pip install "polytel[otel]").

`polytel.otel.install()` makes polytel the API's tracer, meter and logger provider, the propagator W3C trace
context + baggage, and the API's context the one polytel.span uses. See docs/opentelemetry.md.
"""
try:
    import opentelemetry.trace  # noqa: F401
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError('polytel.otel needs opentelemetry-api: pip install "polytel[otel]"') from e

from ._context import PolytelRuntimeContext, ensure_runtime
from ._logs import Logger, LoggerProvider
from ._metrics import Meter, MeterProvider
from ._trace import Span, Tracer, TracerProvider

__all__ = [
    "TracerProvider", "MeterProvider", "LoggerProvider", "install",
    "Tracer", "Span", "Meter", "Logger", "PolytelRuntimeContext",
]  # fmt: skip

_installed: dict = {}


def install():
    """Set polytel's providers as the API's global ones and the global propagator to tracecontext + baggage.

    Idempotent: a second call returns the same providers. Returns {"tracer_provider", "meter_provider",
    "logger_provider"}. The API lets a global provider be set once: one set before (say, an SDK's) stays, with
    a warning naming it.
    """
    if _installed:
        return dict(_installed)
    from opentelemetry import _logs, metrics, propagate, trace
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ensure_runtime()
    tp, mp, lp = TracerProvider(), MeterProvider(), LoggerProvider()
    for what, setter, getter, mine in (
        ("tracer", trace.set_tracer_provider, trace.get_tracer_provider, tp),
        ("meter", metrics.set_meter_provider, metrics.get_meter_provider, mp),
        ("logger", _logs.set_logger_provider, _logs.get_logger_provider, lp),
    ):
        setter(mine)
        if getter() is not mine:
            import sys

            sys.stderr.write("polytel.otel: install(): a global %s provider was already set (%s); it stays\n"
                             % (what, type(getter()).__name__))  # fmt: skip
    propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    _installed.update(tracer_provider=tp, meter_provider=mp, logger_provider=lp)
    return dict(_installed)
