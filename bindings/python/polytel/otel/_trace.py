"""OTel API tracing on polytel spans: TracerProvider, Tracer and the Span the API's callers hold."""
import contextvars
import functools
import sys

from opentelemetry import trace as _t
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

import polytel

from . import _context
from ._context import OTEL_GET as _otel_get
from ._context import PT_VAR, SPAN_KEY, otel_current

_KINDS = {
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_INTERNAL = SpanKind.INTERNAL
_KIND_OF = {v: k for k, v in _KINDS.items()}
_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
_pt_get = PT_VAR.get
_span_new = polytel.span
_copy_context = contextvars.copy_context
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


def _attr_value(v):
    # The API's sequences are often tuples; polytel sends lists (and str/int/float/bool) as typed values.
    return list(v) if type(v) is tuple else v


def _attrs(attributes):
    if not attributes:
        return None
    return {k: (list(v) if type(v) is tuple else v) for k, v in attributes.items()}


def _pt_context(sc):
    """A polytel.SpanContext for an OTel SpanContext (a remote parent, a link)."""
    ts = sc.trace_state.to_header() if sc.trace_state else None
    return polytel.SpanContext("%032x" % sc.trace_id, "%016x" % sc.span_id, sampled=bool(sc.trace_flags & 1),
                               tracestate=ts or None, is_remote=bool(sc.is_remote))  # fmt: skip


class _Root:
    """parent_for()'s answer for "no parent: a new trace"."""


ROOT = _Root()


def parent_for(context):
    """What polytel.span(parent=) takes for an OTel Context: a polytel.Span, a polytel.SpanContext, ROOT or None
    (None: polytel's current span, which the runtime context keeps in step)."""
    if context is None:
        if _pt_get(None) is not None:
            return None
        context = otel_current()
    sp = context.get(SPAN_KEY)
    if sp is None:
        return ROOT
    pt = polytel_span_of(sp)
    if pt is not None:
        if pt.active:
            return pt
        # An ended span is still a parent (as in the SDK): its context, ids and flags, is.
        sc = pt.context
        return sc if sc.is_valid else ROOT
    sc = sp.get_span_context()
    if not sc.is_valid:
        return ROOT
    return _pt_context(sc)


def _links(links):
    if not links:
        return None
    out = []
    for ln in links:
        sc = getattr(ln, "context", None)
        if sc is None or not sc.is_valid:
            continue
        pt = _pt_context(sc)
        out.append((pt, _attrs(ln.attributes)) if ln.attributes else pt)
    return out or None


def _start(scope, name, parent, kind, attributes, links):
    """A polytel.Span, not yet entered."""
    kw = {"kind": _KINDS.get(kind, "internal"), "scope": scope}
    if parent is not None and parent is not ROOT:
        kw["parent"] = parent
    a = _attrs(attributes)
    if a:
        kw["attributes"] = a
    ln = _links(links)
    if ln:
        kw["links"] = ln
    return _span_new(name, **kw)


def _enter_in(pt, root):
    if root:
        PT_VAR.set(None)
    pt.__enter__()


class Span(_t.Span):
    """An OTel API span over a polytel.Span (the OTel SDK's ReadableSpan is not part of the API)."""

    # Defaults on the class: a wrapper made per start (or per get_current_span()) sets only what differs.
    _ctx = None  # the throwaway Context a non-current span was entered in (its exit runs there)
    _sc = None
    _kind = None
    _record_exception = True
    _set_status_on_exception = True
    _status_set = False

    def __init__(self, pt, ctx=None, record_exception=True, set_status_on_exception=True, kind=None):
        self._pt = pt
        if kind is not None:
            self._kind = kind
        if ctx is not None:
            self._ctx = ctx
        if not record_exception:
            self._record_exception = False
        if not set_status_on_exception:
            self._set_status_on_exception = False

    # What instrumentations read of the SDK's span beyond the API (wsgi reads kind, several read name).
    @property
    def kind(self):
        if self._kind is None:
            self._kind = _KIND_OF.get(getattr(self._pt, "kind", None), SpanKind.INTERNAL)
        return self._kind

    @property
    def name(self):
        return self._pt.name

    @property
    def attributes(self):
        return self._pt.attributes

    def get_span_context(self):
        sc = self._sc
        if sc is None:
            pt = self._pt
            c = pt.context
            ts = c.tracestate
            sc = self._sc = SpanContext(
                int(pt.trace_id, 16), int(pt.span_id, 16), is_remote=False,
                trace_flags=_SAMPLED if c.sampled else _UNSAMPLED,
                trace_state=TraceState.from_header([ts]) if ts else TraceState(),
            )  # fmt: skip
        return sc

    def is_recording(self):
        pt = self._pt
        return pt.active and pt.context.sampled

    def set_attribute(self, key, value):
        if self._pt.active:
            self._pt.set_attribute(key, list(value) if type(value) is tuple else value)

    def set_attributes(self, attributes):
        if self._pt.active:
            for k, v in attributes.items():
                self._pt.set_attribute(k, list(v) if type(v) is tuple else v)

    def add_event(self, name, attributes=None, timestamp=None):
        if self._pt.active:
            self._pt.add_event(name, attributes=_attrs(attributes), timestamp_ns=timestamp)

    def add_link(self, context, attributes=None):
        if self._pt.active and context is not None and context.is_valid:
            self._pt.add_link(_pt_context(context), **(_attrs(attributes) or {}))

    def update_name(self, name):
        if self._pt.active:
            setter = getattr(self._pt, "update_name", None)
            if setter is not None:
                setter(name)

    def set_status(self, status, description=None):
        if not self._pt.active:
            return
        if isinstance(status, Status):
            code, description = status.status_code, status.description
        else:
            code = status
        if code is StatusCode.UNSET:
            return
        self._status_set = True
        if code is StatusCode.ERROR and description:
            self._pt.set_status("error", str(description))
        else:
            self._pt.set_status(_STATUS[code])

    def record_exception(self, exception, attributes=None, timestamp=None, escaped=False):
        if self._pt.active:
            self._pt.record_exception(exception, **(_attrs(attributes) or {}))

    def end(self, end_time=None):
        pt = self._pt
        if not pt.active:
            return
        if end_time is not None:
            if self._ctx is not None:
                self._ctx.run(pt.end, end_time)
            else:
                pt.end(end_time)
            return
        if self._ctx is not None:
            self._ctx.run(pt.__exit__, None, None, None)
        else:
            pt.__exit__(None, None, None)

    def __exit__(self, exc_type, exc_val, exc_tb):
        if exc_val is not None and self._pt.active and isinstance(exc_val, Exception):
            if self._record_exception:
                self.record_exception(exc_val)
            if self._set_status_on_exception and not self._status_set:
                self.set_status(Status(StatusCode.ERROR, "%s: %s" % (type(exc_val).__name__, exc_val)))
        self.end()

    def __repr__(self):
        return "<polytel.otel.Span %s>" % self._pt


def wrap(pt):
    return Span(pt)


def polytel_span_of(sp):
    return sp._pt if type(sp) is Span else None


_context._wrap = wrap
_context._is_ours = polytel_span_of


class _CurrentSpan(Span):
    """start_as_current_span() in the common case (no explicit context or start time, the default exception
    handling, ended on exit): one object that is the context manager, the decorator and the span; the polytel
    span it enters is polytel's current span, so no OTel Context is built for it."""

    def __init__(self, tracer, name, kind, attributes, links):
        self._tracer = tracer
        self._name = name
        if kind is not _INTERNAL:
            self._kind = kind
        self._attributes = attributes
        self._links = links

    def __enter__(self):
        if self._attributes or self._links or self._kind is not None:
            pt = _start(self._tracer._scope, self._name, parent_for(None), self._kind, self._attributes, self._links)
        elif _pt_get(None) is not None or _otel_get().get(SPAN_KEY) is None:
            # A child of polytel's current span, or a root: polytel.span decides alone.
            pt = _span_new(self._name, scope=self._tracer._scope)
        else:  # a span from elsewhere (a remote parent) is attached: it is the parent
            pt = _start(self._tracer._scope, self._name, parent_for(None), None, None, None)
        pt.__enter__()
        self._pt = pt
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        # BaseExceptions that are not errors (GeneratorExit, KeyboardInterrupt) end the span unfailed.
        if exc_val is not None and not isinstance(exc_val, Exception):
            exc_type = exc_val = exc_tb = None
        if self._pt.active:  # not when span.end() was called inside the block
            self._pt.__exit__(exc_type, exc_val, exc_tb)
        return False

    def __call__(self, func):
        tracer, name, kind, attributes, links = self._tracer, self._name, self._kind, self._attributes, self._links
        return _decorate(func, lambda: _CurrentSpan(tracer, name, kind or _INTERNAL, attributes, links))


class _UseSpan:
    """start_as_current_span() with an explicit context, a start time or non-default flags: start_span(), then
    the span attached as the current one (as trace.use_span does)."""

    __slots__ = ("_tracer", "_args", "_span", "_token")

    def __init__(self, tracer, args):
        self._tracer = tracer
        self._args = args  # (name, context, kind, attributes, links, start_time, rec_exc, set_status, end_on_exit)
        self._span = self._token = None

    def __enter__(self):
        name, context, kind, attributes, links, start_time, rec, sset, _ = self._args
        sp = self._span = self._tracer.start_span(name, context, kind, attributes, links, start_time, rec, sset)
        rt = _context.ensure_runtime()
        # get_current(), not the bare attached Context: baggage set through polytel since then stays current.
        self._token = rt.attach(_t.set_span_in_context(sp, context or rt.get_current()))
        return sp

    def __exit__(self, exc_type, exc_val, exc_tb):
        sp = self._span
        _context.ensure_runtime().detach(self._token)
        if exc_val is not None and sp._pt.active and isinstance(exc_val, Exception):
            if sp._record_exception:
                sp.record_exception(exc_val)
            if sp._set_status_on_exception and not sp._status_set:
                sp.set_status(Status(StatusCode.ERROR, "%s: %s" % (type(exc_val).__name__, exc_val)))
        if self._args[8]:
            sp.end()
        return False

    def __call__(self, func):
        tracer, args = self._tracer, self._args
        return _decorate(func, lambda: _UseSpan(tracer, args))


def _decorate(func, make):
    """@tracer.start_as_current_span(...): a new span per call, sync or async."""
    inspect = sys.modules.get("inspect") or __import__("inspect")
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*a, **kw):
            with make():
                return await func(*a, **kw)

        return async_wrapper

    @functools.wraps(func)
    def wrapper(*a, **kw):
        with make():
            return func(*a, **kw)

    return wrapper


class Tracer(_t.Tracer):
    """A tracer per instrumentation scope (name, version): its spans carry that scope."""

    def __init__(self, name, version=None, schema_url=None, attributes=None):
        name = name or "polytel"
        # polytel.tracer(name, version) holds the scope once, so a span does not carry it per call.
        self._scope = polytel.tracer(name, version)

    def start_span(self, name, context=None, kind=SpanKind.INTERNAL, attributes=None, links=None, start_time=None,
                   record_exception=True, set_status_on_exception=True):  # fmt: skip
        parent = parent_for(context)
        pt = _start(self._scope, name, parent, kind, attributes, links)
        if start_time is not None:
            pt.start_ns = start_time  # the API's start_time is Unix ns, as polytel's (a clear error otherwise)
        ctx = _copy_context()  # entered there, so the caller's current span stays what it was
        ctx.run(_enter_in, pt, parent is ROOT)
        return Span(pt, ctx, record_exception, set_status_on_exception, kind)

    def start_as_current_span(self, name, context=None, kind=SpanKind.INTERNAL, attributes=None, links=None,
                              start_time=None, record_exception=True, set_status_on_exception=True,
                              end_on_exit=True):  # fmt: skip
        if context is None and start_time is None and end_on_exit and record_exception and set_status_on_exception:
            return _CurrentSpan(self, name, kind, attributes, links)
        return _UseSpan(self, (name, context, kind, attributes, links, start_time, record_exception,
                               set_status_on_exception, end_on_exit))  # fmt: skip


class TracerProvider(_t.TracerProvider):
    """polytel as the OpenTelemetry API's tracer provider: `trace.set_tracer_provider(TracerProvider())`."""

    def __init__(self):
        _context.ensure_runtime()
        self._tracers = {}

    def get_tracer(self, instrumenting_module_name, instrumenting_library_version=None, schema_url=None,
                   attributes=None):  # fmt: skip
        key = (instrumenting_module_name, instrumenting_library_version)
        tr = self._tracers.get(key)
        if tr is None:
            tr = self._tracers[key] = Tracer(instrumenting_module_name, instrumenting_library_version)
        return tr

    def force_flush(self, timeout_millis=30000):
        return polytel.flush(timeout_ms=timeout_millis) == polytel.OK

    def shutdown(self):
        # The core is the process's, not this provider's: flush, and let polytel's exit handling end it.
        polytel.flush()
