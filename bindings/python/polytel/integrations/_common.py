"""What every worker integration shares: bootstrap in a worker process, bounded delivery before it leaves, and
spans that continue a trace carried in a job's headers (polytel.inject/extract, issue 14)."""
import os

import polytel

# The integrations read these, the user may set them (docs/celery.md): phase-2 options of a worker process and
# the bound on the delivery a leaving process waits for (its exit_timeout_ms unless POLYTEL_WORKER_EXIT_TIMEOUT_MS).
_state = {"options": {}, "bootstrapped_pid": None}

# The trace-context API of issue 14 (branch py). Until a binding has it, spans are still recorded and delivered,
# but they neither carry kind nor continue a remote parent: docs/celery.md says so.
HAS_CONTEXT = all(hasattr(polytel, n) for n in ("inject", "extract", "SpanContext"))


def set_options(options):
    """bootstrap_worker() keyword arguments for every worker process this integration starts."""
    _state["options"] = dict(options)


def bootstrap(**extra):
    """Phase 2 in this (worker) process; once per process, a repeated call is free. Returns the status dict."""
    opts = dict(_state["options"])
    opts.update(extra)
    status = polytel.bootstrap_worker(**opts)
    _state["bootstrapped_pid"] = os.getpid()
    return status


def bootstrapped_here():
    return _state["bootstrapped_pid"] == os.getpid()


def exit_timeout_ms():
    raw = os.environ.get("POLYTEL_WORKER_EXIT_TIMEOUT_MS")
    if raw:
        try:
            v = int(raw)
            if v >= 0:
                return v
        except ValueError:
            pass
        polytel.warning("POLYTEL_WORKER_EXIT_TIMEOUT_MS=%r is not a number of milliseconds; using exit_timeout_ms"
                        % raw[:40])
        os.environ.pop("POLYTEL_WORKER_EXIT_TIMEOUT_MS", None)  # one warning, not one per job
    return polytel.resolved_config()["exit_timeout_ms"]


def deliver_before_exit():
    """A worker process about to leave (os._exit, recycling): deliver what it recorded, bounded by the timeout."""
    return polytel.shutdown(timeout_ms=exit_timeout_ms())


def inject(carrier):
    """Writes the current span's traceparent (and tracestate/baggage) into carrier, a dict."""
    if HAS_CONTEXT:
        polytel.inject(carrier)
    return carrier


def extract(carrier):
    """The remote parent in carrier (any mapping, names case-insensitive), or None."""
    if not HAS_CONTEXT or not carrier:
        return None
    try:
        return polytel.extract(carrier)
    except Exception:  # a foreign carrier (e.g. non-str values) never breaks the job
        return None


def span(name, kind, parent=None, attributes=None):
    """A polytel span of the given kind ("producer", "consumer", "server"), child of parent when given."""
    if HAS_CONTEXT:
        return polytel.span(name, kind=kind, parent=parent, attributes=attributes)
    return polytel.span(name, **(attributes or {}))


def record_exception(sp, exc):
    if sp is None or exc is None:
        return
    rec = getattr(sp, "record_exception", None)
    if rec is not None:
        rec(exc)
    else:
        sp.set_attribute("exception.type", type(exc).__name__)
        sp.set_attribute("exception.message", str(exc))
    sp.set_status("error", "%s: %s" % (type(exc).__name__, exc))
