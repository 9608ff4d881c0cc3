"""The WSGI app tests/fleet serves with gunicorn (wrapped by the config hook) and uWSGI (wsgi_uwsgi.py)."""
import os
import time
from urllib.parse import parse_qs

import polytel


def app(environ, start_response):
    n = int(parse_qs(environ.get("QUERY_STRING", "")).get("n", ["-1"])[0])
    polytel.info("wsgi request", n=n)
    polytel.counter_add("fleet.requests", 1)
    if environ.get("PATH_INFO") == "/boom":
        raise RuntimeError("boom %d" % n)
    if environ.get("PATH_INFO") == "/hold":  # a request in flight until the test releases it (FLEET_HOLD_DIR)
        hold = os.environ["FLEET_HOLD_DIR"]
        with open(os.path.join(hold, "started.tmp"), "w") as f:
            f.write(str(os.getpid()))
        os.rename(os.path.join(hold, "started.tmp"), os.path.join(hold, "started"))
        deadline = time.monotonic() + 180  # hang guard
        while not os.path.exists(os.path.join(hold, "release")) and time.monotonic() < deadline:
            time.sleep(0.02)
    body = b"%d %d\n" % (n, os.getpid())
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return iter([body])  # an iterator, not a list: the span ends at close()
