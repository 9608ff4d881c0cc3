"""polytel.integrations.uwsgi: phase 2 in every uWSGI worker after the master forks it, delivery when it leaves.

In the module uWSGI loads (``--module app:application``):

    from polytel.integrations.uwsgi import instrument
    application = instrument(app)   # postfork + atexit hooks, and the WSGI server-span middleware

``install()`` registers the hooks alone (for an app already wrapped, or not WSGI). Without ``--lazy-apps`` the
module is imported in the master, which stays in phase 1 and forks the workers: the postfork hook bootstraps each
of them. With ``--lazy-apps`` (or ``--lazy``) each worker imports the module itself and bootstraps at once. A
worker recycled by ``--max-requests`` (or stopped) delivers in uWSGI's atexit hook, bounded by
``exit_timeout_ms``. Imported outside uWSGI, install() does nothing. See docs/uwsgi.md.
"""
import polytel

from . import _common
from .wsgi import Middleware

__all__ = ["instrument", "install", "postfork", "atexit"]

_installed = [False]


def postfork():
    # uWSGI forks from C: Python's os.register_at_fork hooks run only with --py-call-uwsgi-fork-hooks, so reset
    # the binding's per-process Python state here (a second reset is harmless).
    reset = getattr(polytel, "_after_fork_in_child", None)
    if reset is not None:
        reset()
    _common.bootstrap()


def atexit():
    if _common.bootstrapped_here():
        _common.deliver_before_exit()


def install():
    """Registers postfork and atexit with uWSGI (chained with hooks already there); idempotent. Returns True
    when running under uWSGI."""
    try:
        import uwsgi
    except ImportError:
        return False
    if _installed[0]:
        return True
    _installed[0] = True
    try:
        import uwsgidecorators  # its postfork chain keeps every registered hook

        uwsgidecorators.postfork(postfork)
    except ImportError:
        prev = getattr(uwsgi, "post_fork_hook", None)

        def chained_postfork():
            if prev is not None:
                prev()
            postfork()

        uwsgi.post_fork_hook = chained_postfork
    prev_exit = getattr(uwsgi, "atexit", None)

    def chained_atexit():
        try:
            atexit()
        finally:
            if prev_exit is not None:
                prev_exit()

    uwsgi.atexit = chained_atexit
    if _in_worker(uwsgi):  # lazy apps: this worker was forked before it imported us
        postfork()
    return True


def _in_worker(uwsgi):
    try:
        return int(uwsgi.worker_id()) > 0
    except Exception:
        return False


def instrument(app, **middleware_options):
    """install() and the WSGI Middleware around app (a server span per request); returns the wrapped app."""
    install()
    if getattr(app, "_polytel_wsgi", False):
        return app
    return Middleware(app, **middleware_options)
