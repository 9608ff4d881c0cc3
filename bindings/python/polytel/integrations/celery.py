"""polytel.integrations.celery: one trace per task from the caller to the prefork child that runs it.

    from polytel.integrations.celery import instrument
    app = Celery("proj", broker=...)
    instrument(app)

- phase 1 is ``import polytel`` (in every process); phase 2 runs in each prefork child (``worker_process_init``),
  never in the worker's parent that forks them (solo/threads/gevent pools: in the worker process itself);
- ``apply_async``/``delay``/``send_task`` run inside a ``producer`` span ``send <task>`` whose ``traceparent``
  travels in the task message headers;
- each task runs inside a ``consumer`` span ``process <task>``, a child of that producer span, with the task's
  name, id, retries and outcome; a raising task records the exception (status ERROR, an ``exception`` event);
- a child delivers what it recorded before it leaves (recycled by ``worker_max_tasks_per_child``, or at warm
  shutdown), bounded by ``exit_timeout_ms`` (billiard children leave through os._exit: atexit never runs).
See docs/celery.md.
"""
import threading

import polytel

from . import _common

__all__ = ["instrument", "uninstrument"]

# Message header names the trace context travels in (W3C names, as every other polytel binding reads them).
_CONTEXT_HEADERS = ("traceparent", "tracestate", "baggage")

_lock = threading.Lock()
_installed = {"signals": False, "apps": []}
# task id -> (span, exception or None): prerun opens, failure notes the exception, postrun closes.
_running = {}


def instrument(app, **bootstrap_options):
    """Instruments app (a celery.Celery) and connects the worker signals; idempotent.

    bootstrap_options are polytel.bootstrap_worker() keyword arguments for every worker process (service_name=...,
    endpoint=...); the environment (OTEL_*, TELEMETRY_ENABLED) applies as usual. Returns app.
    """
    with _lock:
        if bootstrap_options:
            _common.set_options(bootstrap_options)
        if not _installed["signals"]:
            _connect()
            _installed["signals"] = True
        if not getattr(app, "_polytel_instrumented", False):
            _wrap_send_task(app)
            app._polytel_instrumented = True
            _installed["apps"].append(app)
    return app


def uninstrument():
    """Disconnects the signals and unwraps every instrumented app (tests, or a worker that turns tracing off)."""
    from celery import signals

    with _lock:
        for app in _installed["apps"]:
            app.__dict__.pop("send_task", None)
            app._polytel_instrumented = False
        _installed["apps"] = []
        if _installed["signals"]:
            for sig, fn in _handlers():
                sig.disconnect(fn)
            _installed["signals"] = False


# ------------------------------------------------------------------ caller


def _wrap_send_task(app):
    # Task.apply_async and delay end in app.send_task: one span there covers both and send_task itself, and a
    # failed publish still closes its span (with the error) through the with block.
    orig = app.send_task

    def send_task(name, args=None, kwargs=None, *rest, **options):
        attrs = {"messaging.system": "celery", "messaging.operation.type": "send", "celery.task.name": name}
        queue = options.get("queue")
        if isinstance(queue, str):
            attrs["messaging.destination.name"] = queue
        with _common.span("send " + name, "producer", attributes=attrs) as sp:
            result = orig(name, args, kwargs, *rest, **options)
            tid = getattr(result, "id", None)
            if tid:
                sp.set_attribute("messaging.message.id", str(tid))
            return result

    send_task.__wrapped__ = orig
    app.send_task = send_task


def _before_publish(sender=None, headers=None, routing_key=None, **_kw):
    # Runs inside send_task's producer span (or the caller's span when a message is published another way).
    if headers is None:
        return
    carrier = {}
    _common.inject(carrier)
    for k, v in carrier.items():
        headers.setdefault(k, v)
    if routing_key:
        sp = polytel.current_span()
        if sp is not None and sp.name.startswith("send "):
            sp.set_attribute("messaging.destination.name", str(routing_key))


# ------------------------------------------------------------------ worker


def _process_init(**_kw):
    # In each prefork child, after billiard forked it: the core reset itself to phase 1 at fork.
    _common.bootstrap()


def _process_shutdown(**_kw):
    # In the child, just before billiard's os._exit (recycled, or at the pool's shutdown).
    _close_open_spans()
    _common.deliver_before_exit()


def _worker_init(sender=None, **_kw):
    # Pools that do not fork (solo, threads, eventlet, gevent) run tasks in the worker process itself.
    if not _forks(sender):
        _common.bootstrap()


def _worker_shutdown(sender=None, **_kw):
    if _common.bootstrapped_here():
        _close_open_spans()
        _common.deliver_before_exit()


def _forks(worker):
    pool_cls = getattr(worker, "pool_cls", None)
    if pool_cls is None:
        return True  # unknown: never bootstrap a parent that may fork
    if isinstance(pool_cls, str):
        return pool_cls in ("prefork", "processes") or "prefork" in pool_cls
    return "prefork" in getattr(pool_cls, "__module__", "")


def _carrier(request):
    carrier = {}
    headers = getattr(request, "headers", None)
    for k in _CONTEXT_HEADERS:
        v = getattr(request, k, None)
        if v is None and isinstance(headers, dict):
            v = headers.get(k)
        if isinstance(v, str):
            carrier[k] = v
    return carrier


def _prerun(task_id=None, task=None, **_kw):
    if task is None or task_id is None:
        return
    req = task.request
    attrs = {
        "messaging.system": "celery",
        "messaging.operation.type": "process",
        "messaging.message.id": str(task_id),
        "celery.task.name": str(task.name),
        "celery.task.retries": int(getattr(req, "retries", 0) or 0),
    }
    di = getattr(req, "delivery_info", None) or {}
    dest = di.get("routing_key") or di.get("queue")
    if isinstance(dest, str) and dest:
        attrs["messaging.destination.name"] = dest
    parent = _common.extract(_carrier(req))
    sp = _common.span("process " + str(task.name), "consumer", parent=parent, attributes=attrs)
    sp.__enter__()
    _running[task_id] = [sp, None]


def _failure(task_id=None, exception=None, **_kw):
    entry = _running.get(task_id)
    if entry is not None:
        entry[1] = exception


def _postrun(task_id=None, state=None, **_kw):
    entry = _running.pop(task_id, None)
    if entry is None:
        return
    sp, exc = entry
    if state:
        sp.set_attribute("celery.task.outcome", str(state))
    if exc is not None:
        sp.__exit__(type(exc), exc, exc.__traceback__)
    else:
        sp.__exit__(None, None, None)


def _close_open_spans():
    # A task that never reached postrun (the child is leaving mid-task): end its span rather than lose it.
    for task_id in list(_running):
        entry = _running.pop(task_id)
        entry[0].set_attribute("celery.task.outcome", "INTERRUPTED")
        entry[0].__exit__(None, None, None)


def _handlers():
    from celery import signals

    return (
        (signals.before_task_publish, _before_publish),
        (signals.worker_process_init, _process_init),
        (signals.worker_process_shutdown, _process_shutdown),
        (signals.worker_init, _worker_init),
        (signals.worker_shutdown, _worker_shutdown),
        (signals.task_prerun, _prerun),
        (signals.task_failure, _failure),
        (signals.task_postrun, _postrun),
    )


def _connect():
    for sig, fn in _handlers():
        sig.connect(fn, weak=False, dispatch_uid="polytel." + fn.__name__)

