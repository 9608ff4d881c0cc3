"""The WSGI app tests/fleet serves with gunicorn (wrapped by the config hook) and uWSGI (wsgi_uwsgi.py)."""
import os
from urllib.parse import parse_qs

import polytel


def app(environ, start_response):
    n = int(parse_qs(environ.get("QUERY_STRING", "")).get("n", ["-1"])[0])
    polytel.info("wsgi request", n=n)
    polytel.counter_add("fleet.requests", 1)
    if environ.get("PATH_INFO") == "/boom":
        raise RuntimeError("boom %d" % n)
    body = b"%d %d\n" % (n, os.getpid())
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return iter([body])  # an iterator, not a list: the span ends at close()
