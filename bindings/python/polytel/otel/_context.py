"""One context for the OpenTelemetry API and polytel: OTel's Context in its ContextVar, polytel's current span and
baggage in polytel's, moved together by attach/detach; get_current() sees a polytel.span entered and baggage set
through polytel since the last attach."""
import contextvars
from typing import Any

from opentelemetry import context as _otel_context
from opentelemetry.baggage import _BAGGAGE_KEY as BAGGAGE_KEY
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
BG_VAR = _polytel._baggage_var  # polytel's baggage: a dict of str, replaced and never changed once set
_bg_get = BG_VAR.get


class _FromOtel(dict):
    """polytel's view (str values) of an OTel baggage dict that holds other values: `src` is that dict."""

    __slots__ = ("src",)


def _pt_baggage(bg):
    """polytel's baggage for the OTel Context's baggage dict: the same dict when every key and value is a str
    (the common case: nothing is copied, and identity says they are in step), else a str() copy."""
    if not isinstance(bg, dict):  # absent, or not baggage the API would read (it takes dicts only)
        return None
    if not bg:
        return bg
    for k, v in bg.items():
        if type(k) is not str or type(v) is not str:
            d = _FromOtel((str(k), str(v)) for k, v in bg.items())
            d.src = bg
            return d
    return bg


def _in_step(pbg, cbg):
    """polytel's baggage (pbg) says the same as the OTel Context's (cbg). None (polytel never set any here)
    follows the Context."""
    return pbg is cbg or pbg is None or (not pbg and not cbg) or (type(pbg) is _FromOtel and pbg.src is cbg)
_wrap: Any = None  # polytel.otel._trace.wrap(polytel.Span) -> OTel span; set by _trace (it imports this module)
_is_ours: Any = None  # polytel.otel._trace.polytel_span_of(span) -> polytel.Span or None


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
        # Its baggage becomes polytel's (polytel.inject() and get_baggage() see what the API set).
        bg = context.get(BAGGAGE_KEY)
        pbg = _bg_get(None)
        bg_token = None if pbg is bg else BG_VAR.set(_pt_baggage(bg))
        return (self._var.set(context), PT_VAR.set(pt), bg_token)

    def get_current(self):
        ctx = self._get()
        pt = _pt_get(None)
        pbg = _bg_get(None)
        span_ok = True
        if pt is not None and pt.active:
            sp = ctx.get(SPAN_KEY)
            span_ok = sp is not None and _is_ours(sp) is pt
        if span_ok and _in_step(pbg, ctx.get(BAGGAGE_KEY)):
            return ctx
        # A polytel.span entered, or baggage set through polytel, since the last attach: the Context says so.
        values = dict(ctx)
        if not span_ok:
            values[SPAN_KEY] = _wrap(pt)
        if not _in_step(pbg, values.get(BAGGAGE_KEY)):
            values[BAGGAGE_KEY] = pbg.src if type(pbg) is _FromOtel else pbg
        return Context(values)

    def detach(self, token):
        if isinstance(token, tuple):
            otel_token, pt_token, bg_token = token
            if bg_token is not None:
                BG_VAR.reset(bg_token)
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
    bg = new._get().get(BAGGAGE_KEY)
    if bg and not _bg_get(None):  # baggage attached before the switch is polytel's too
        BG_VAR.set(_pt_baggage(bg))
    _otel_context._RUNTIME_CONTEXT = new
    return new


def otel_current():
    """The OTel Context as attached (without the polytel overlay)."""
    rt = _otel_context._RUNTIME_CONTEXT
    if isinstance(rt, PolytelRuntimeContext):
        return rt._get()
    return rt.get_current()
