"""Real, unmodified instrumentation packages from PyPI on polytel's providers: urllib against a local HTTP server,
wsgi (its middleware in a wsgiref server), redis against a real redis-server; spans as the receiver decoded them."""
import pytest
from conftest import by_name, run_worker, spans_of, worker_env
from otlp_receiver import Receiver

HTTP = r"""
import json, threading, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, make_server
import polytel, polytel.otel
polytel.bootstrap_worker()
polytel.otel.install()
from opentelemetry.instrumentation.urllib import URLLibInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
URLLibInstrumentor().instrument()
out = {"seen": []}

class Plain(BaseHTTPRequestHandler):
    def do_GET(self):
        out["seen"].append(self.headers.get("traceparent"))
        body = b"plain"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

def app(environ, start_response):
    with polytel.span("handler", path=environ["PATH_INFO"]):
        polytel.info("in handler")
    status = "404 Not Found" if environ["PATH_INFO"] == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain")])
    return [b"wsgi"]

class Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass

plain = ThreadingHTTPServer(("127.0.0.1", 0), Plain)
wsgi = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(app), handler_class=Quiet)
for srv in (plain, wsgi):
    threading.Thread(target=srv.serve_forever, daemon=True).start()
out["plain"] = "http://127.0.0.1:%d/plain?q=1" % plain.server_port
out["wsgi"] = "http://127.0.0.1:%d/hello" % wsgi.server_port
out["missing"] = "http://127.0.0.1:%d/missing" % wsgi.server_port
with polytel.span("client-root") as root:
    out["root"] = [root.trace_id, root.span_id]
    out["body"] = urllib.request.urlopen(out["plain"], timeout=30).read().decode()
    out["wsgi_body"] = urllib.request.urlopen(out["wsgi"], timeout=30).read().decode()
    try:
        urllib.request.urlopen(out["missing"], timeout=30)
    except urllib.error.HTTPError as e:
        out["missing_status"] = e.code
plain.shutdown(); wsgi.shutdown()
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def http_run():
    """One worker run (urllib client, plain and wsgi servers) that the tests below read; its own receiver."""
    service = "otel-instrumentation-http"
    with Receiver() as rcv:
        out = run_worker(HTTP, worker_env(rcv, service)).check().result()
        spans = spans_of(rcv, service, 8)
        logs = [lg for lg in rcv.received()["logs"] if lg["service"] == service]
    return out, spans, logs


def test_urllib_client_spans(http_run):
    out, spans, _ = http_run
    root = [s for s in spans if s["name"] == "client-root"][0]
    clients = [s for s in spans if s["attributes"].get("http.url") in (out["plain"], out["wsgi"], out["missing"])]
    clients = [s for s in clients if s["name"] == "GET"]
    assert len(clients) == 3, [(s["name"], s["attributes"]) for s in spans]
    plain = [s for s in clients if s["attributes"]["http.url"] == out["plain"]][0]
    assert plain["name"] == "GET"
    assert plain["attributes"]["http.method"] == "GET"
    assert plain["attributes"]["http.status_code"] == 200
    assert plain["parent_span_id"] == root["span_id"] and plain["trace_id"] == root["trace_id"]
    # The instrumentation injected the current span (its own) through the global propagator.
    assert out["seen"] == ["00-%s-%s-01" % (plain["trace_id"], plain["span_id"])]
    assert out["body"] == "plain"
    missing = [s for s in clients if s["attributes"]["http.url"] == out["missing"]][0]
    assert missing["attributes"]["http.status_code"] == 404 and out["missing_status"] == 404


def test_urllib_client_kind_and_scope(http_run):
    out, spans, _ = http_run
    clients = [s for s in spans if s["name"] == "GET" and s["attributes"].get("http.url") == out["plain"]]
    assert [(s["kind"], s["scope"]) for s in clients] == [(3, "opentelemetry.instrumentation.urllib")]


def _server(spans, path):
    servers = [s for s in spans if s["name"] == "GET " + path]
    assert len(servers) == 1, [(s["name"], s["attributes"]) for s in spans]
    return servers[0]


def test_wsgi_server_spans(http_run):
    out, spans, logs = http_run
    server = _server(spans, "/hello")
    a = server["attributes"]
    assert (a["http.method"], a["http.scheme"], a["http.status_code"]) == ("GET", "http", 200)
    assert a["http.url"] == out["wsgi"] and a["net.host.port"] == int(out["wsgi"].split(":")[2].split("/")[0])
    assert a["http.user_agent"].startswith("Python-urllib/")
    # The application's own polytel.span is the server span's child, and its log is linked to it.
    handler = [s for s in by_name(spans)["handler"] if s["attributes"]["path"] == "/hello"][0]
    assert handler["parent_span_id"] == server["span_id"] and handler["trace_id"] == server["trace_id"]
    assert handler["span_id"] in [lg["span_id"] for lg in logs if lg["body"] == "in handler"]
    assert _server(spans, "/missing")["attributes"]["http.status_code"] == 404
    assert out["wsgi_body"] == "wsgi"


def test_wsgi_server_kind_one_trace(http_run):
    out, spans, _ = http_run
    root = by_name(spans)["client-root"][0]
    client = [s for s in spans if s["name"] == "GET" and s["attributes"].get("http.url") == out["wsgi"]][0]
    server = _server(spans, "/hello")
    # One trace: client-root -> urllib client span -> (traceparent) -> wsgi server span.
    assert server["trace_id"] == root["trace_id"] and server["parent_span_id"] == client["span_id"]
    assert server["kind"] == 2 and server["scope"] == "opentelemetry.instrumentation.wsgi"


REDIS = r"""
import json, os
import polytel, polytel.otel
polytel.bootstrap_worker()
polytel.otel.install()
from opentelemetry.instrumentation.redis import RedisInstrumentor
RedisInstrumentor().instrument()
import redis
r = redis.Redis.from_url(os.environ["REDIS_URL"])
out = {}
with polytel.span("job") as job:
    r.set("greeting", "hello")
    out["value"] = r.get("greeting").decode()
    with r.pipeline() as p:
        p.incr("n").incr("n")
        out["pipeline"] = p.execute()
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_redis_client_spans(receiver, service, redis_server):
    out = run_worker(REDIS, worker_env(receiver, service, REDIS_URL=redis_server.url)).check().result()
    spans = spans_of(receiver, service, 4)
    names = by_name(spans)
    job = names["job"][0]
    assert out["value"] == "hello" and out["pipeline"] == [1, 2]
    sets, gets = names["SET"], names["GET"]
    assert len(sets) == 1 and len(gets) == 1
    for sp, stmt in ((sets[0], "SET ? ?"), (gets[0], "GET ?")):
        assert sp["parent_span_id"] == job["span_id"] and sp["trace_id"] == job["trace_id"]
        assert sp["attributes"]["db.system"] == "redis"
        assert sp["attributes"]["db.statement"] == stmt
        assert sp["attributes"]["net.peer.port"] == redis_server.port
        assert sp["attributes"]["db.redis.database_index"] == 0
    pipe = [s for s in spans if s["attributes"].get("db.redis.pipeline_length") == 2]
    assert len(pipe) == 1 and pipe[0]["parent_span_id"] == job["span_id"]
    assert {(s["kind"], s["scope"]) for s in sets + gets + pipe} == {(3, "opentelemetry.instrumentation.redis")}
