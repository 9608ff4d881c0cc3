"""polytel.integrations.gunicorn: a ready gunicorn config, or its hooks for yours.

    gunicorn -c python:polytel.integrations.gunicorn app:app

or, in your own gunicorn.conf.py:

    from polytel.integrations.gunicorn import post_fork, post_worker_init, worker_exit, worker_abort

- ``post_fork``: phase 2 in each worker, right after the arbiter forked it (the arbiter itself stays in phase 1
  and records nothing);
- ``post_worker_init``: wraps the loaded app in polytel.integrations.wsgi.Middleware (a ``server`` span per
  request continuing an incoming ``traceparent``) unless it is one already;
- ``worker_exit`` / ``worker_abort``: the worker delivers what it recorded before it leaves (``--max-requests``
  recycling, a graceful stop, a timeout's SIGABRT), bounded by ``exit_timeout_ms``.
A config of your own that defines one of these hooks calls ours from it. See docs/gunicorn.md.
"""
from . import _common
from .wsgi import Middleware

__all__ = ["post_fork", "post_worker_init", "worker_exit", "worker_abort"]


def post_fork(server, worker):
    _common.bootstrap()


def post_worker_init(worker):
    app = getattr(worker, "wsgi", None)
    if app is not None and not getattr(app, "_polytel_wsgi", False):
        worker.wsgi = Middleware(app)


def worker_exit(server, worker):
    if _common.bootstrapped_here():
        _common.deliver_before_exit()


def worker_abort(worker):
    if _common.bootstrapped_here():
        _common.deliver_before_exit()
