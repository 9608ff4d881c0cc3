"""Baggage in step: what opentelemetry.baggage sets, polytel.inject() sends and polytel.get_baggage() reads, and
what polytel.set_baggage() sets, the API and its propagator see; across a real urllib -> wsgi hop too."""
from conftest import run_worker, worker_env

BAGGAGE = r"""
import asyncio, json, threading, urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server
import polytel, polytel.otel
from opentelemetry import baggage, context, propagate, trace
polytel.bootstrap_worker()
polytel.otel.install()
tr = trace.get_tracer("lib.baggage")
out = {}

def otel_headers():
    c = {}
    propagate.inject(c)
    return c

# The API's baggage, attached: polytel's view and polytel.inject() have it; detach takes it away from both.
tok = context.attach(baggage.set_baggage("tenant", "acme"))
out["api_to_pt"] = [polytel.get_baggage("tenant"), polytel.inject().get("baggage"), otel_headers().get("baggage")]
context.detach(tok)
out["api_detached"] = [polytel.get_baggage(), "baggage" in polytel.inject(), "baggage" in otel_headers()]

# polytel's baggage: the API's get_baggage/get_all and its propagator see it, inside OTel spans too.
polytel.set_baggage("user", "u1")
with tr.start_as_current_span("otel-span"):
    out["pt_to_api"] = [baggage.get_baggage("user"), dict(baggage.get_all()), otel_headers().get("baggage"),
                        polytel.inject().get("baggage")]
    # Set through the API on top of polytel's (a non-str value, as the API allows): both send both.
    tok = context.attach(baggage.set_baggage("n", 3))
    out["stacked"] = [polytel.inject().get("baggage"), otel_headers().get("baggage"), baggage.get_baggage("n"),
                      polytel.get_baggage()]
    context.detach(tok)
    polytel.remove_baggage("user")
    out["removed"] = [dict(baggage.get_all()), "baggage" in otel_headers(), "baggage" in polytel.inject()]
out["after_span"] = [polytel.get_baggage(), dict(baggage.get_all())]

# A remote parent's baggage through polytel.extract (a polytel span), and through the API's extract + attach.
hdr = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "baggage": "job=7,queue=high"}
with polytel.span("job", parent=polytel.extract(hdr)):
    out["pt_extract"] = [dict(baggage.get_all()), otel_headers().get("baggage")]
tok = context.attach(propagate.extract(hdr))
out["api_extract"] = [polytel.get_baggage(), polytel.inject().get("baggage")]
context.detach(tok)
polytel.remove_baggage()

# Something that is not baggage under the API's key (the API ignores it): attach copes, polytel has none.
from opentelemetry.baggage import _BAGGAGE_KEY
tok = context.attach(context.set_value(_BAGGAGE_KEY, "not a dict"))
out["junk"] = [polytel.get_baggage(), "baggage" in polytel.inject(), dict(baggage.get_all())]
context.detach(tok)

# Tasks: each its own copy, either API.
async def task(n):
    if n == 1:
        polytel.set_baggage("task", "one")
    else:
        context.attach(baggage.set_baggage("task", "two"))
    await asyncio.sleep(0.01)
    return [polytel.get_baggage("task"), baggage.get_baggage("task"), polytel.inject().get("baggage"),
            otel_headers().get("baggage")]

async def main():
    return await asyncio.gather(task(1), task(2))
out["tasks"] = asyncio.run(main())
out["after_tasks"] = [polytel.get_baggage(), dict(baggage.get_all())]

# Over the wire with real instrumentation: polytel's baggage leaves through URLLibInstrumentor (the API's
# propagator), and OpenTelemetryMiddleware's extract + attach makes it polytel's in the handler.
from opentelemetry.instrumentation.urllib import URLLibInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
URLLibInstrumentor().instrument()

def app(environ, start_response):
    out["wire"] = [environ.get("HTTP_BAGGAGE"), polytel.get_baggage(), polytel.inject().get("baggage")]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

class Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass

srv = make_server("127.0.0.1", 0, OpenTelemetryMiddleware(app), handler_class=Quiet)
threading.Thread(target=srv.serve_forever, daemon=True).start()
polytel.set_baggage("tenant", "acme")
with polytel.span("client"):
    urllib.request.urlopen("http://127.0.0.1:%d/" % srv.server_port, timeout=30).read()
srv.shutdown()
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_baggage_in_step_both_ways(receiver, service):
    out = run_worker(BAGGAGE, worker_env(receiver, service)).check().result()
    assert out["api_to_pt"] == ["acme", "tenant=acme", "tenant=acme"]
    assert out["api_detached"] == [{}, False, False]
    assert out["pt_to_api"] == ["u1", {"user": "u1"}, "user=u1", "user=u1"]
    assert out["stacked"] == ["user=u1,n=3", "user=u1,n=3", 3, {"user": "u1", "n": "3"}]
    assert out["removed"] == [{}, False, False]
    # remove_baggage() inside the span's block is the block's context: it stays removed after.
    assert out["after_span"] == [{}, {}]
    assert out["pt_extract"] == [{"job": "7", "queue": "high"}, "job=7,queue=high"]
    assert out["api_extract"] == [{"job": "7", "queue": "high"}, "job=7,queue=high"]
    assert out["junk"] == [{}, False, {}]
    assert out["tasks"] == [["one", "one", "task=one", "task=one"], ["two", "two", "task=two", "task=two"]]
    assert out["after_tasks"] == [{}, {}]
    assert out["wire"] == ["tenant=acme", {"tenant": "acme"}, "tenant=acme"]
