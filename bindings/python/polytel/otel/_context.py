"""One context for the OpenTelemetry API and polytel: OTel's Context in its ContextVar, polytel's current span in
polytel's, moved together by attach/detach; get_current() sees a polytel.span entered since the last attach."""
import contextvars

from opentelemetry import context as _otel_context
from opentelemetry.context.context import Context, _RuntimeContext
from opentelemetry.trace.propagation import _SPAN_KEY

import polytel
from polytel import _polytel

SPAN_KEY = _SPAN_KEY


def _find_polytel_var():
    """polytel's ContextVar of the current span (the extension's own; found once, never copied)."""
    var = getattr(_polytel, "_current_span_var", None)
    if var is not None:
        return var

    def probe():
        # Entered in a throwaway context and never exited: a span that is never finished is never recorded.
        polytel.span("polytel.otel.probe").__enter__()
        for v in contextvars.copy_context():
            if v.name == "polytel.current_span":
                return v
        return None

    var = contextvars.copy_context().run(probe)
    if var is None:
        raise ImportError("polytel.otel: this polytel extension does not keep its current span in a ContextVar")
    return var


PT_VAR = _find_polytel_var()
_pt_get = PT_VAR.get
_wrap = None  # polytel.otel._trace.wrap(polytel.Span) -> OTel span; set by _trace (it imports this module)
_is_ours = None  # polytel.otel._trace.polytel_span_of(span) -> polytel.Span or None


# The API's Context variable: the default runtime's own when it is the default (tokens it handed out stay valid).
_default_var = getattr(_otel_context._RUNTIME_CONTEXT, "_current_context", None)
if not isinstance(_default_var, contextvars.ContextVar):
    _default_var = contextvars.ContextVar("current_context", default=Context())
OTEL_GET = _default_var.get  # the attached Context, once ensure_runtime() ran


class PolytelRuntimeContext(_RuntimeContext):
    """The OTel runtime context that keeps polytel's current span in step (OTEL_PYTHON_CONTEXT=polytel)."""

    def __init__(self, var=None):
        # Reusing the default runtime's ContextVar keeps tokens handed out before the switch valid.
        self._var = var if var is not None else _default_var
        self._get = self._var.get

    def attach(self, context):
        pt = _is_ours(context.get(SPAN_KEY)) if _is_ours is not None else None
        # A context without a polytel span makes polytel's current span None: a polytel.span begun under it
        # takes its parent from the OTel span (see _trace.parent_for), or starts a trace when there is none.
        return (self._var.set(context), PT_VAR.set(pt))

    def get_current(self):
        ctx = self._get()
        pt = _pt_get(None)
        if pt is None:
            return ctx
        sp = ctx.get(SPAN_KEY)
        if sp is not None and _is_ours(sp) is pt:
            return ctx
        if not pt.active:
            return ctx
        values = dict(ctx)
        values[SPAN_KEY] = _wrap(pt)
        return Context(values)

    def detach(self, token):
        if isinstance(token, tuple):
            otel_token, pt_token = token
            PT_VAR.reset(pt_token)
            self._var.reset(otel_token)
        else:  # attached before polytel took over the runtime context
            self._var.reset(token)


def ensure_runtime():
    """Make polytel's runtime context the API's (idempotent); returns it."""
    rt = _otel_context._RUNTIME_CONTEXT
    if isinstance(rt, PolytelRuntimeContext):
        return rt
    new = PolytelRuntimeContext()
    if getattr(rt, "_current_context", None) is not _default_var:
        # A foreign runtime context: start from its current Context.
        new._var.set(rt.get_current())
    _otel_context._RUNTIME_CONTEXT = new
    return new


def otel_current():
    """The OTel Context as attached (without the polytel overlay)."""
    rt = _otel_context._RUNTIME_CONTEXT
    if isinstance(rt, PolytelRuntimeContext):
        return rt._get()
    return rt.get_current()
