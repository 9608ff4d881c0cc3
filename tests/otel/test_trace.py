"""OTel API spans on polytel: one context with polytel.span (both ways, threads, await), ids, the wire."""
import polytel
import pytest
from conftest import by_name, run_worker, spans_of, worker_env

NESTING = r"""
import asyncio, json, threading
import polytel, polytel.otel
from opentelemetry import context, propagate, trace
polytel.bootstrap_worker()
polytel.otel.install()
tr = trace.get_tracer("lib.nesting", "1.2.3")
out = {}
with tr.start_as_current_span("otel-outer") as o:
    with polytel.span("pt-middle") as p:
        cur = trace.get_current_span().get_span_context()
        out["current_in_pt"] = ["%032x" % cur.trace_id, "%016x" % cur.span_id]
        out["pt"] = [p.trace_id, p.span_id]
        with tr.start_as_current_span("otel-inner") as i:
            carrier = {}
            propagate.inject(carrier)
            out["traceparent"] = carrier["traceparent"]
            polytel.info("log in otel-inner")
    out["after_pt_is_outer"] = trace.get_current_span().get_span_context().span_id == o.get_span_context().span_id
out["after_all_invalid"] = not trace.get_current_span().get_span_context().is_valid

# start_span does not change the current span; use_span makes it current for polytel too.
with polytel.span("pt-root") as root:
    s = tr.start_span("otel-detached")
    out["detached_not_current"] = trace.get_current_span().get_span_context().span_id == int(root.span_id, 16)
    with trace.use_span(s, end_on_exit=True):
        with polytel.span("pt-under-detached"):
            pass
    out["detached_recording_after_end"] = s.is_recording()

# A thread: each thread's context starts empty (contextvars); a parent passed in a Context is honoured there.
def work(ctx):
    token = context.attach(ctx)
    try:
        with tr.start_as_current_span("otel-in-thread"):
            with polytel.span("pt-in-thread"):
                pass
    finally:
        context.detach(token)

with tr.start_as_current_span("otel-thread-parent"):
    t = threading.Thread(target=work, args=(context.get_current(),))
    t.start(); t.join()

async def job(n):
    with tr.start_as_current_span("otel-task-%d" % n):
        await asyncio.sleep(0.01 * (3 - n))
        with polytel.span("pt-after-await-%d" % n):
            await asyncio.sleep(0)
            with tr.start_as_current_span("otel-leaf-%d" % n):
                pass

async def main():
    with polytel.span("pt-gather"):
        await asyncio.gather(job(1), job(2))
asyncio.run(main())
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_nesting_either_way(receiver, service):
    w = run_worker(NESTING, worker_env(receiver, service)).check()
    out = w.result()
    spans = by_name(spans_of(receiver, service, 16))
    one = {name: v[0] for name, v in spans.items()}
    assert len(spans_of(receiver, service, 16)) == 16, sorted(spans)

    outer, middle, inner = one["otel-outer"], one["pt-middle"], one["otel-inner"]
    assert middle["parent_span_id"] == outer["span_id"]
    assert inner["parent_span_id"] == middle["span_id"]
    assert outer["parent_span_id"] == ""
    assert {outer["trace_id"], middle["trace_id"], inner["trace_id"]} == {outer["trace_id"]}
    # get_current_span() inside polytel.span is polytel's span; inject() carries the OTel-started inner span.
    assert out["current_in_pt"] == out["pt"] == [middle["trace_id"], middle["span_id"]]
    assert out["traceparent"] == "00-%s-%s-01" % (inner["trace_id"], inner["span_id"])
    assert out["after_pt_is_outer"] is True and out["after_all_invalid"] is True

    root, det, under = one["pt-root"], one["otel-detached"], one["pt-under-detached"]
    assert det["parent_span_id"] == root["span_id"] and under["parent_span_id"] == det["span_id"]
    assert out["detached_not_current"] is True and out["detached_recording_after_end"] is False

    tp, ot, pt = one["otel-thread-parent"], one["otel-in-thread"], one["pt-in-thread"]
    assert ot["parent_span_id"] == tp["span_id"] and pt["parent_span_id"] == ot["span_id"]
    assert pt["thread_id"] != tp["thread_id"]

    gather = one["pt-gather"]
    for n in (1, 2):
        task, after, leaf = one["otel-task-%d" % n], one["pt-after-await-%d" % n], one["otel-leaf-%d" % n]
        assert task["parent_span_id"] == gather["span_id"]
        assert after["parent_span_id"] == task["span_id"]
        assert leaf["parent_span_id"] == after["span_id"]
        assert leaf["trace_id"] == gather["trace_id"]


SPAN_API = r"""
import json, time
import polytel, polytel.otel
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
polytel.bootstrap_worker()
polytel.otel.install()
tr = trace.get_tracer("lib.model", "4.5")
out = {}
with tr.start_as_current_span("server", kind=SpanKind.SERVER, attributes={"ints": (1, 2, 3), "s": "x"}) as sp:
    sp.set_attribute("tags", ["a", "b"])
    sp.set_attributes({"f": 0.5, "b": True})
    sp.add_event("checkpoint", {"step": 2})
    sp.set_status(Status(StatusCode.OK))
    out["recording"] = sp.is_recording()
try:
    with tr.start_as_current_span("failing", kind=SpanKind.CLIENT):
        raise KeyError("missing")
except KeyError:
    pass
ctx = propagate.extract({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
link_to = trace.SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=trace.TraceFlags(1))
with tr.start_as_current_span("remote-child", context=ctx, kind=SpanKind.CONSUMER,
                              links=[Link(link_to, {"why": "batch"})]):
    pass
s = tr.start_span("explicit-end", kind=SpanKind.PRODUCER)
s.record_exception(ValueError("noted"))
s.set_status(StatusCode.ERROR, "it broke")
s.end()
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_span_model_on_the_wire(receiver, service):
    out = run_worker(SPAN_API, worker_env(receiver, service)).check().result()
    one = {s["name"]: s for s in spans_of(receiver, service, 4)}
    srv = one["server"]
    assert srv["kind"] == 2 and srv["scope"] == "lib.model"
    assert srv["attributes"] == {"ints": [1, 2, 3], "s": "x", "tags": ["a", "b"], "f": 0.5, "b": True}
    assert [(e["name"], e["attributes"]) for e in srv["events"]] == [("checkpoint", {"step": 2})]
    assert srv["status_code"] == 1 and out["recording"] is True

    fail = one["failing"]
    assert fail["kind"] == 3 and fail["status_code"] == 2
    ev = [e for e in fail["events"] if e["name"] == "exception"]
    assert len(ev) == 1 and ev[0]["attributes"]["exception.type"] == "KeyError"
    assert ev[0]["attributes"]["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert ev[0]["attributes"]["exception.stacktrace"].rstrip().endswith("KeyError: 'missing'")

    rc = one["remote-child"]
    assert rc["kind"] == 5
    assert rc["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and rc["parent_span_id"] == "b7ad6b7169203331"
    # flags: sampled (0x1), and the link's context is remote (OTLP 0x100 "known" + 0x200 "remote").
    assert rc["links"] == [{"trace_id": "%032x" % 0x1234, "span_id": "%016x" % 0x5678, "trace_state": "",
                            "flags": 0x301, "attributes": {"why": "batch"}, "dropped_attributes_count": 0}]

    ex = one["explicit-end"]
    assert ex["kind"] == 4 and ex["status_code"] == 2 and ex["status_message"] == "it broke"
    assert [e["attributes"]["exception.message"] for e in ex["events"] if e["name"] == "exception"] == ["noted"]



END_TIME = r"""
import json, time
import polytel, polytel.otel
from opentelemetry import trace
polytel.bootstrap_worker()
polytel.otel.install()
tr = trace.get_tracer("lib.time")
out = {}
s = tr.start_span("explicit-end")
out["end"] = time.time_ns() + 5_000_000
s.end(end_time=out["end"])
s.end(end_time=out["end"] + 1)  # a second end is a no-op (the API's rule)
with tr.start_as_current_span("ended-in-block") as b:
    out["block_end"] = time.time_ns() + 3_000_000
    b.end(out["block_end"])
# polytel's own Span.end(end_ns) (in place of __exit__): a clear error for what is not Unix nanoseconds, and
# the span stays open.
p = polytel.span("pt-end").__enter__()
for bad in ("soon", -1, 1.5):
    try:
        p.end(bad)
    except ValueError as e:
        out.setdefault("errors", []).append(str(e).split(",")[0])
out["pt_active_after_bad"] = p.active
out["pt_end"] = time.time_ns() + 7_000_000
p.end(out["pt_end"])
try:
    p.end()
except RuntimeError as e:
    out["twice"] = str(e)
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_explicit_end_time(receiver, service):
    out = run_worker(END_TIME, worker_env(receiver, service)).check().result()
    spans = by_name(spans_of(receiver, service, 3))
    assert [s["end_ns"] for s in spans["explicit-end"]] == [out["end"]]
    assert [s["end_ns"] for s in spans["ended-in-block"]] == [out["block_end"]]
    assert [s["end_ns"] for s in spans["pt-end"]] == [out["pt_end"]]
    assert out["errors"] == ["end(): end_ns is Unix nanoseconds (a non-negative int)"] * 3
    assert out["pt_active_after_bad"] is True
    assert out["twice"] == "polytel: end() on a span that is not active (not entered, or ended)"


# start_time= (Unix ns, the API's unit) is the span's start on the wire, for start_span and start_as_current_span
# (as a context manager and as a decorator); what is not Unix ns is a clear error and starts nothing.
START_TIME = r"""
import json, time
import polytel, polytel.otel
from opentelemetry import trace
polytel.bootstrap_worker()
polytel.otel.install()
tr = trace.get_tracer("lib.start")
out = {}
now = time.time_ns()
out["detached"] = now - 40_000_000
s = tr.start_span("detached-start", start_time=out["detached"])
out["detached_end"] = now - 30_000_000
s.end(end_time=out["detached_end"])
out["child"] = now - 20_000_000
c = tr.start_span("child-start", context=trace.set_span_in_context(s), start_time=out["child"])
c.end()
out["current"] = now - 10_000_000
with tr.start_as_current_span("current-start", start_time=out["current"], attributes={"a": 1}) as cur:
    with polytel.span("under-current") as u:
        out["under_parent_is_current"] = u.parent_span_id == "%016x" % cur.get_span_context().span_id
out["deco"] = now - 5_000_000

@tr.start_as_current_span("deco-start", start_time=out["deco"])
def work():
    return polytel.current_span().name
out["work"] = work()
for bad in ("soon", -1, 1.5):
    try:
        tr.start_span("bad-start", start_time=bad)
    except ValueError as e:
        out.setdefault("errors", []).append(str(e).split(",")[0])
out["current_after_bad"] = trace.get_current_span().get_span_context().is_valid
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_explicit_start_time(receiver, service):
    out = run_worker(START_TIME, worker_env(receiver, service)).check().result()
    spans = by_name(spans_of(receiver, service, 5))
    assert "bad-start" not in spans
    (d,) = spans["detached-start"]
    assert (d["start_ns"], d["end_ns"]) == (out["detached"], out["detached_end"])
    (c,) = spans["child-start"]
    assert c["start_ns"] == out["child"] and c["parent_span_id"] == d["span_id"] and c["end_ns"] > out["child"]
    (cur,) = spans["current-start"]
    assert cur["start_ns"] == out["current"] and cur["attributes"] == {"a": 1}
    (u,) = spans["under-current"]
    assert u["parent_span_id"] == cur["span_id"] and out["under_parent_is_current"] is True
    assert u["start_ns"] > out["current"] and cur["end_ns"] >= u["end_ns"]
    (w,) = spans["deco-start"]
    assert w["start_ns"] == out["deco"] and out["work"] == "deco-start"
    assert out["errors"] == ["span.start_ns is Unix nanoseconds (a non-negative int)"] * 3
    assert out["current_after_bad"] is False


SAMPLING = r"""
import json
import polytel, polytel.otel
from opentelemetry import propagate, trace
polytel.bootstrap_worker()
polytel.otel.install()
tr = trace.get_tracer("lib.sampling")
out = {}
with tr.start_as_current_span("unsampled") as sp:
    out["recording"] = sp.is_recording()
    out["flags"] = int(sp.get_span_context().trace_flags)
    with polytel.span("pt-child") as c:
        out["child_sampled"] = c.context.sampled
    carrier = {}
    propagate.inject(carrier)
    out["traceparent"] = carrier["traceparent"]
polytel.shutdown()
out["sampled_out"] = polytel.stats()["sampled_out"]
print("RESULT " + json.dumps(out))
"""


def test_sampling_through_the_configured_sampler(receiver, service):
    env = worker_env(receiver, service, OTEL_TRACES_SAMPLER="always_off")
    out = run_worker(SAMPLING, env).check().result()
    assert out["recording"] is False and out["flags"] == 0 and out["child_sampled"] is False
    assert out["traceparent"].endswith("-00")
    assert out["sampled_out"] == 2
    assert receiver.received()["spans"] == []
