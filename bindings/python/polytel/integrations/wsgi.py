"""polytel.integrations.wsgi: a ``server`` span per request for any WSGI app, continuing the caller's trace.

    from polytel.integrations.wsgi import Middleware
    application = Middleware(app)

The span continues an incoming ``traceparent`` (and tracestate/baggage) header, is named after the method (the
HTTP semantic conventions' name when the route is unknown; ``span_name=`` takes a function of the environ), and
carries http.request.method, url.path, url.query, url.scheme, server.address, server.port, client.address,
network.protocol.version, user_agent.original and http.response.status_code; a 5xx answer or a raising app sets
status ERROR (with error.type, and the exception as an event). The span ends when the server closes the response
iterable, so streamed bodies are inside it. See docs/gunicorn.md.
"""
from . import _common

__all__ = ["Middleware"]

_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"))
_CONTEXT_HEADERS = (("traceparent", "HTTP_TRACEPARENT"), ("tracestate", "HTTP_TRACESTATE"),
                    ("baggage", "HTTP_BAGGAGE"))


class Middleware:
    """Wraps a WSGI app: one server span per request."""

    def __init__(self, app, *, span_name=None):
        self.app = app
        self.span_name = span_name
        self._polytel_wsgi = True  # gunicorn's hook does not wrap twice

    def __call__(self, environ, start_response):
        method = str(environ.get("REQUEST_METHOD") or "GET").upper()
        known = method if method in _KNOWN_METHODS else "_OTHER"
        carrier = {k: environ[e] for k, e in _CONTEXT_HEADERS if isinstance(environ.get(e), str)}
        name = self.span_name(environ) if self.span_name else (known if known != "_OTHER" else "HTTP")
        sp = _common.span(str(name), "server", parent=_common.extract(carrier), attributes=_attrs(environ, known))
        sp.__enter__()
        done = [False]

        def finish(exc=None):
            if done[0]:
                return
            done[0] = True
            if exc is not None:
                sp.set_attribute("error.type", type(exc).__qualname__)
                sp.__exit__(type(exc), exc, exc.__traceback__)
            else:
                sp.__exit__(None, None, None)

        def traced_start_response(status, headers, exc_info=None):
            try:
                code = int(str(status).split(" ", 1)[0])
            except ValueError:
                code = 0
            if code:
                sp.set_attribute("http.response.status_code", code)
                if code >= 500:
                    sp.set_attribute("error.type", str(code))
                    sp.set_status("error", str(status))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, traced_start_response)
        except BaseException as e:
            finish(e)
            raise
        if isinstance(result, (list, tuple)):  # the whole body is here: nothing left to time
            finish()
            return result
        return _Body(result, finish)


class _Body:
    """The app's response iterable; the span ends when the server closes it (PEP 3333), or when it raises."""

    def __init__(self, result, finish):
        self._result = result
        self._it = None
        self._finish = finish

    def __iter__(self):
        self._it = iter(self._result)
        return self

    def __next__(self):
        if self._it is None:
            self._it = iter(self._result)
        try:
            return next(self._it)
        except StopIteration:
            raise
        except BaseException as e:
            self._finish(e)
            raise

    def close(self):
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()

    def __getattr__(self, name):  # wsgi.file_wrapper and friends (e.g. fileno) stay visible to the server
        return getattr(self._result, name)


def _attrs(environ, method):
    a = {"http.request.method": method, "url.path": str(environ.get("PATH_INFO") or "/"),
         "url.scheme": str(environ.get("wsgi.url_scheme") or "http")}
    if method == "_OTHER":
        a["http.request.method_original"] = str(environ.get("REQUEST_METHOD"))
    q = environ.get("QUERY_STRING")
    if q:
        a["url.query"] = str(q)
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME")
    if host:
        h, _, p = str(host).rpartition(":") if str(host).rsplit(":", 1)[-1].isdigit() else (str(host), "", "")
        a["server.address"] = h or str(host)
        port = p or environ.get("SERVER_PORT")
        if port and str(port).isdigit():
            a["server.port"] = int(port)
    if environ.get("REMOTE_ADDR"):
        a["client.address"] = str(environ["REMOTE_ADDR"])
    proto = str(environ.get("SERVER_PROTOCOL") or "")
    if proto.startswith("HTTP/"):
        a["network.protocol.version"] = proto[5:]
    ua = environ.get("HTTP_USER_AGENT")
    if ua:
        a["user_agent.original"] = str(ua)
    return a
