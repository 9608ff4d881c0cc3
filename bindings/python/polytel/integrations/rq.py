"""polytel.integrations.rq: one trace per RQ job, from the process that enqueues it to the work horse that runs it.

Worker side, a worker class:

    rq worker -w polytel.integrations.rq.Worker [--burst] QUEUE...

Each job runs in a forked work horse that leaves with os._exit (atexit never runs there): the horse bootstraps
phase 2, runs the job inside a ``consumer`` span ``process <func>`` (a child of the enqueuing ``producer`` span,
with job id, function, queue, outcome; a raising job records the exception) and delivers its records before it
exits, bounded by ``exit_timeout_ms`` (POLYTEL_WORKER_EXIT_TIMEOUT_MS). The worker process that forks the horses
never bootstraps. ``SimpleWorker`` is the same for jobs run in the worker process itself (no fork).

Enqueue side: ``polytel.integrations.rq.instrument()`` once at start-up: every enqueue (enqueue, enqueue_call,
enqueue_at/in, enqueue_job, enqueue_many) runs inside a ``producer`` span ``send <func>`` and the job carries its
``traceparent`` (and tracestate/baggage) in ``job.meta``. See docs/rq.md.
"""
import contextvars
import functools

import rq as _rq

from . import _common

__all__ = ["Worker", "SimpleWorker", "instrument", "uninstrument", "META_KEYS"]

# job.meta keys the trace context travels in (W3C names; a Ruby or C consumer reads the same).
META_KEYS = ("traceparent", "tracestate", "baggage")

# The outermost enqueue call owns the producer span: enqueue -> enqueue_call -> enqueue_job is one enqueue.
_in_enqueue = contextvars.ContextVar("polytel_rq_enqueue", default=False)
_patched = {}


# ------------------------------------------------------------------ worker


class _Instrumented:
    """perform_job (run only in the horse, or in the worker itself for SimpleWorker) inside a consumer span."""

    _polytel_span = None

    def perform_job(self, job, queue, *args, **kwargs):
        in_horse = bool(getattr(self, "_is_horse", False))
        _common.bootstrap()  # the horse was forked from a phase-1 parent; a repeated call is free
        try:
            sp = _common.span("process " + _func_name(job), "consumer", parent=_common.extract(_meta_carrier(job)),
                              attributes=_job_attrs(job, queue))
            self._polytel_span = sp
            with sp:
                ok = super().perform_job(job, queue, *args, **kwargs)
                sp.set_attribute("rq.job.outcome", "finished" if ok is not False else "failed")
            return ok
        finally:
            self._polytel_span = None
            if in_horse:  # os._exit follows: deliver now, within the bound
                _common.deliver_before_exit()

    def handle_exception(self, job, *exc_info):
        # Called while the job's span is still open (rq's failure path), with the job's own exception.
        sp = self._polytel_span
        if sp is not None and len(exc_info) > 1 and isinstance(exc_info[1], BaseException):
            _common.record_exception(sp, exc_info[1])
        return super().handle_exception(job, *exc_info)


class Worker(_Instrumented, _rq.Worker):
    """rq.Worker whose work horses bootstrap polytel, trace each job and deliver before os._exit."""


class SimpleWorker(_Instrumented, _rq.SimpleWorker):
    """rq.SimpleWorker (jobs in the worker process, no fork) with the same job spans."""


def _meta_carrier(job):
    meta = getattr(job, "meta", None) or {}
    return {k: meta[k] for k in META_KEYS if isinstance(meta.get(k), str)}


def _func_name(job):
    try:
        return str(job.func_name)
    except Exception:  # a job whose data cannot be deserialized still gets a span
        return "job"


def _job_attrs(job, queue):
    a = {"messaging.system": "rq", "messaging.operation.type": "process", "messaging.message.id": str(job.id),
         "rq.job.func_name": _func_name(job)}
    name = getattr(queue, "name", None) or getattr(job, "origin", None)
    if name:
        a["messaging.destination.name"] = str(name)
    retries = getattr(job, "retries_left", None)
    if isinstance(retries, int):
        a["rq.job.retries_left"] = retries
    return a


# ------------------------------------------------------------------ enqueue


def _name_of(f):
    if isinstance(f, str):
        return f
    if isinstance(f, _rq.job.Job):
        return _func_name(f)
    mod, qual = getattr(f, "__module__", None), getattr(f, "__qualname__", None) or getattr(f, "__name__", None)
    return "%s.%s" % (mod, qual) if mod and qual else "job"


def _producer(name_from):
    """Wraps a Queue method: the outermost enqueue call runs inside a producer span."""

    def wrap(orig):
        @functools.wraps(orig)
        def method(self, *args, **kwargs):
            if _in_enqueue.get():
                return orig(self, *args, **kwargs)
            token = _in_enqueue.set(True)
            try:
                attrs = {"messaging.system": "rq", "messaging.operation.type": "send",
                         "messaging.destination.name": str(self.name)}
                with _common.span("send " + name_from(args, kwargs, self), "producer", attributes=attrs) as sp:
                    result = orig(self, *args, **kwargs)
                    jid = getattr(result, "id", None)
                    if isinstance(jid, str):
                        sp.set_attribute("messaging.message.id", jid)
                    elif isinstance(result, list):
                        sp.set_attribute("messaging.batch.message_count", len(result))
                    return result
            finally:
                _in_enqueue.reset(token)

        method.__wrapped__ = orig
        return method

    return wrap


def _inject_meta(job):
    if job is None or not hasattr(job, "meta"):
        return job
    if job.meta is None:
        job.meta = {}
    if "traceparent" not in job.meta:  # a job that already carries a context (re-enqueued, retried) keeps it
        carrier = _common.inject({})
        for k in META_KEYS:
            if k in carrier:
                job.meta[k] = carrier[k]
    return job


def _wrap_create_job(orig):
    @functools.wraps(orig)
    def create_job(self, *args, **kwargs):
        return _inject_meta(orig(self, *args, **kwargs))

    create_job.__wrapped__ = orig
    return create_job


def _wrap_enqueue_job(orig):
    inner = _producer(lambda a, kw, q: _name_of(a[0] if a else kw.get("job")))(orig)

    @functools.wraps(orig)
    def enqueue_job(self, job, *args, **kwargs):
        # Job.create(...) + queue.enqueue_job(job): the job meets the context here (inside the producer span).
        if _in_enqueue.get():
            _inject_meta(job)
            return orig(self, job, *args, **kwargs)
        return inner(self, job, *args, **kwargs)

    enqueue_job.__wrapped__ = orig
    return enqueue_job


def _first(a, kw, key):
    return a[0] if a else kw.get(key)


def instrument():
    """Makes every rq enqueue carry the current trace (a producer span per enqueue); idempotent."""
    if _patched:
        return
    Q = _rq.Queue
    originals = {name: Q.__dict__[name] for name in
                 ("create_job", "enqueue_call", "enqueue_at", "enqueue_job", "enqueue_many", "schedule_job")
                 if name in Q.__dict__}
    _patched.update(originals)
    if "create_job" in originals:
        Q.create_job = _wrap_create_job(originals["create_job"])
    if "enqueue_call" in originals:
        Q.enqueue_call = _producer(lambda a, kw, q: _name_of(_first(a, kw, "func")))(originals["enqueue_call"])
    if "enqueue_at" in originals:  # enqueue_at(datetime, f, ...): enqueue_in calls it
        Q.enqueue_at = _producer(lambda a, kw, q: _name_of(a[1] if len(a) > 1 else kw.get("f")))(
            originals["enqueue_at"])
    if "enqueue_job" in originals:
        Q.enqueue_job = _wrap_enqueue_job(originals["enqueue_job"])
    if "enqueue_many" in originals:
        Q.enqueue_many = _producer(lambda a, kw, q: str(q.name))(originals["enqueue_many"])
    if "schedule_job" in originals:
        Q.schedule_job = _producer(lambda a, kw, q: _name_of(_first(a, kw, "job")))(originals["schedule_job"])


def uninstrument():
    """Restores rq.Queue's own methods."""
    for name, orig in _patched.items():
        setattr(_rq.Queue, name, orig)
    _patched.clear()

