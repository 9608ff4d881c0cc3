"""Trace context across processes (inject/extract, SpanContext, baggage) and the span model from Python:
kinds, events, exception events, links, arrays, scopes, limits, sampling. Asserted on what the receiver decoded."""
import json
import re

import pytest
from conftest import REPO, of_service, run_worker, worker_env
from otlp_receiver import Receiver

UPSTREAM_TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UPSTREAM_TS = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"
KIND = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
# OTLP Span.flags: bit 8 says whether the parent's remoteness is known, bit 9 that it was remote.
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200

PRODUCER = """
import json, polytel
polytel.bootstrap_worker()
upstream = polytel.extract({"traceparent": %r, "tracestate": %r})
polytel.set_baggage("tenant", "acme corp/\\u00fc")
with polytel.span("enqueue", parent=upstream, kind="producer", queue="jobs") as sp:
    headers = polytel.inject()
out = {"headers": headers, "ctx": [sp.context.trace_id, sp.context.span_id, sp.context.sampled],
       "rc": polytel.shutdown(timeout_ms=5000)}
print("RESULT " + json.dumps(out))
""" % (UPSTREAM_TP, UPSTREAM_TS)

# The job's headers arrive as a queue would hand them over (here: the environment), names in another case.
CONSUMER = """
import json, os, polytel
polytel.bootstrap_worker()
headers = {k.title(): v for k, v in json.loads(os.environ["JOB_HEADERS"]).items()}
ctx = polytel.extract(headers)
before = polytel.get_baggage()
with polytel.span("process", parent=ctx, kind="consumer") as sp:
    tenant = polytel.get_baggage("tenant")
    with polytel.span("step") as step:
        downstream = polytel.inject({"x-other": "kept"})
after = polytel.get_baggage()
back = polytel.extract(downstream)
out = {"remote": [ctx.trace_id, ctx.span_id, ctx.sampled, ctx.is_remote, ctx.tracestate, ctx.baggage],
       "before": before, "tenant": tenant, "after": after, "downstream": downstream,
       "back_baggage": back.baggage, "step": [step.trace_id, step.span_id],
       "rc": polytel.shutdown(timeout_ms=5000)}
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def chain():
    """A producer process and a consumer process (real subprocesses), one receiver."""
    receiver = Receiver().start()
    try:
        p = run_worker(PRODUCER, worker_env(receiver, "py-producer", TELEMETRY_ENABLED="true")).check().result()
        env = worker_env(receiver, "py-consumer", TELEMETRY_ENABLED="true", JOB_HEADERS=json.dumps(p["headers"]))
        c = run_worker(CONSUMER, env).check().result()
        assert p["rc"] == 0 and c["rc"] == 0
        spans = receiver.received()["spans"]
        receiver.assert_no_errors()
        yield p, c, {s["name"]: s for s in of_service(spans, "py-producer") + of_service(spans, "py-consumer")}
    finally:
        receiver.stop()


def test_inject_writes_the_current_span(chain):
    p, _, spans = chain
    enq = spans["enqueue"]
    trace_id, span_id, sampled = p["ctx"]
    assert (trace_id, span_id, sampled) == (enq["trace_id"], enq["span_id"], True)
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"  # the upstream trace goes on
    assert p["headers"]["traceparent"] == "00-%s-%s-01" % (trace_id, span_id)
    # tracestate travels with the trace, normalized (optional whitespace removed); baggage percent-encoded.
    assert p["headers"]["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert p["headers"]["baggage"] == "tenant=acme%20corp/%C3%BC"  # "/" is a baggage-octet
    assert set(p["headers"]) == {"traceparent", "tracestate", "baggage"}


def test_consumer_is_the_child_of_the_producer_in_another_process(chain):
    _, c, spans = chain
    enq, proc, step = spans["enqueue"], spans["process"], spans["step"]
    assert enq["parent_span_id"] == "00f067aa0ba902b7"
    assert proc["trace_id"] == enq["trace_id"] == step["trace_id"]
    assert proc["parent_span_id"] == enq["span_id"]
    assert step["parent_span_id"] == proc["span_id"]
    assert (enq["kind"], proc["kind"], step["kind"]) == (KIND["producer"], KIND["consumer"], KIND["internal"])
    assert enq["attributes"] == {"queue": "jobs"}
    # A remote parent is flagged as such; a local one as known-local.
    assert enq["flags"] & (HAS_IS_REMOTE | IS_REMOTE) == HAS_IS_REMOTE | IS_REMOTE
    assert proc["flags"] & (HAS_IS_REMOTE | IS_REMOTE) == HAS_IS_REMOTE | IS_REMOTE
    assert step["flags"] & (HAS_IS_REMOTE | IS_REMOTE) == HAS_IS_REMOTE
    assert enq["trace_state"] == proc["trace_state"] == step["trace_state"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert c["remote"] == [enq["trace_id"], enq["span_id"], True, True, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
                           {"tenant": "acme corp/\u00fc"}]  # fmt: skip


def test_baggage_is_current_inside_the_consumer_span_and_sent_on(chain):
    _, c, _ = chain
    assert c["before"] == {} and c["after"] == {}  # only the work under the remote context has its baggage
    assert c["tenant"] == "acme corp/\u00fc"
    d = c["downstream"]
    assert d["x-other"] == "kept"
    assert d["traceparent"] == "00-%s-%s-01" % tuple(c["step"])
    assert d["tracestate"] == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert c["back_baggage"] == {"tenant": "acme corp/\u00fc"}


MODEL = """
import json, polytel
polytel.bootstrap_worker()
out = {}
for kind in ("internal", "server", "client", "producer", "consumer"):
    with polytel.span("kind-" + kind, kind=kind):
        pass
with polytel.span("kind-default"):
    pass

with polytel.span("events") as s:
    s.add_event("cache.miss", key="user:1", size=3)
    s.add_event("at", timestamp_ns=1700000000000000000, attributes={"a": 1}, b=2)
    s.add_event("bare")

def parse(text):
    raise ValueError("bad input: %r" % text)

try:
    with polytel.span("raises", step="parse"):
        parse("x")
except ValueError:
    pass

with polytel.span("recorded") as s:
    try:
        {}["missing"]
    except KeyError as e:
        s.record_exception(e, handled=True)

with polytel.span("job-a") as a:
    pass
with polytel.span("job-b") as b:
    pass
other = polytel.SpanContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", tracestate="k=v")
with polytel.span("batch", kind="consumer", links=[a, (b.context, {"job.index": 1}), other]) as batch:
    batch.add_link(polytel.SpanContext(0x1234, 0x99, sampled=False), late=True)
out["links"] = [[a.trace_id, a.span_id], [b.trace_id, b.span_id]]

with polytel.span("arrays", strs=["a", "b"], ints=(1, -2, 3), floats=[0.5, 1.5], bools=[True, False],
                  mixed_num=[1, 2.5], mixed=["a", 1], empty=[], nested=[[1], [2]], big=[2**70],
                  none_in=[None, 1]) as s:
    s.set_attribute("late", ["x", "y"])
    polytel.info("log with arrays", tags=["p", "q"], codes=[7, 8])

with polytel.span("scoped", scope="billing"):
    pass
with polytel.span("scoped-v", scope=("payments", "2.1.0")):
    pass
t = polytel.tracer("inventory", "0.3")
with t.span("via-tracer", kind="client"):
    pass
with polytel.span("tracer-as-scope", scope=t):
    pass

@polytel.span("decorated", kind="server", scope="web", route="/x")
def handler():
    return polytel.current_span().kind
out["decorated"] = [handler(), handler()]

polytel.flush(timeout_ms=5000)
out["stats"] = polytel.stats()
out["rc"] = polytel.shutdown(timeout_ms=5000)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def model():
    receiver, service = Receiver().start(), "py-span-model"
    try:
        r = run_worker(MODEL, worker_env(receiver, service, TELEMETRY_ENABLED="true")).check().result()
        assert r["rc"] == 0
        got = receiver.received()
        receiver.assert_no_errors()
        spans = of_service(got["spans"], service)
        by_name = {}
        for s in spans:
            by_name.setdefault(s["name"], []).append(s)
        yield r, by_name, of_service(got["logs"], service)
    finally:
        receiver.stop()


def one(by_name, name):
    (s,) = by_name[name]
    return s


def test_kinds(model):
    _, by_name, _ = model
    for kind, n in KIND.items():
        assert one(by_name, "kind-" + kind)["kind"] == n
    assert one(by_name, "kind-default")["kind"] == KIND["internal"]


def test_events(model):
    _, by_name, _ = model
    s = one(by_name, "events")
    assert [e["name"] for e in s["events"]] == ["cache.miss", "at", "bare"]
    miss, at, bare = s["events"]
    assert miss["attributes"] == {"key": "user:1", "size": 3}
    assert s["start_ns"] <= miss["time_ns"] <= bare["time_ns"] <= s["end_ns"]
    assert at["time_ns"] == 1700000000000000000
    assert at["attributes"] == {"a": 1, "b": 2}
    assert bare["attributes"] == {}
    assert s["dropped_events_count"] == 0


def test_exception_escaping_a_span_is_an_event_with_the_traceback(model):
    _, by_name, _ = model
    s = one(by_name, "raises")
    assert (s["status_code"], s["status_message"]) == (2, "bad input: 'x'")
    assert s["attributes"] == {"step": "parse"}
    (ev,) = s["events"]
    assert ev["name"] == "exception"
    a = ev["attributes"]
    assert set(a) == {"exception.type", "exception.message", "exception.stacktrace"}
    assert (a["exception.type"], a["exception.message"]) == ("ValueError", "bad input: 'x'")
    st = a["exception.stacktrace"]
    # Python's own traceback text: both frames, the raising line, the exception line last.
    assert st.startswith("Traceback (most recent call last):\n")
    assert re.search(r'File "<string>", line \d+, in <module>\n', st)
    assert re.search(r'File "<string>", line \d+, in parse\n', st)
    assert st.rstrip("\n").endswith("ValueError: bad input: 'x'")


def test_record_exception_keeps_the_status(model):
    _, by_name, _ = model
    s = one(by_name, "recorded")
    assert s["status_code"] == 0
    (ev,) = s["events"]
    assert ev["attributes"]["exception.type"] == "KeyError"
    assert ev["attributes"]["exception.message"] == "'missing'"
    assert ev["attributes"]["handled"] is True
    assert "in <module>\n" in ev["attributes"]["exception.stacktrace"]
    assert ev["attributes"]["exception.stacktrace"].rstrip("\n").endswith("KeyError: 'missing'")


def test_links(model):
    r, by_name, _ = model
    s = one(by_name, "batch")
    assert s["kind"] == KIND["consumer"]
    got = [(ln["trace_id"], ln["span_id"], ln["attributes"], ln["trace_state"], ln["flags"] & 0xFF)
           for ln in s["links"]]  # fmt: skip
    (a_tid, a_sid), (b_tid, b_sid) = r["links"]
    assert got == [
        (a_tid, a_sid, {}, "", 1),
        (b_tid, b_sid, {"job.index": 1}, "", 1),
        ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", {}, "k=v", 1),
        ("%032x" % 0x1234, "%016x" % 0x99, {"late": True}, "", 0),
    ]
    assert s["dropped_links_count"] == 0


def test_arrays(model):
    _, by_name, logs = model
    a = one(by_name, "arrays")["attributes"]
    assert a == {
        "strs": ["a", "b"], "ints": [1, -2, 3], "floats": [0.5, 1.5], "bools": [True, False],
        "mixed_num": [1.0, 2.5], "empty": [], "late": ["x", "y"],
        # not one OTLP array type: their str(), as any other object
        "mixed": "['a', 1]", "nested": "[[1], [2]]", "big": "[%d]" % 2**70, "none_in": "[None, 1]",
    }  # fmt: skip
    (log,) = [lg for lg in logs if lg["body"] == "log with arrays"]
    assert log["attributes"] == {"tags": ["p", "q"], "codes": [7, 8]}


def test_scopes(model):
    r, by_name, _ = model
    assert (one(by_name, "kind-default")["scope"], one(by_name, "scoped")["scope"]) == ("polytel", "billing")
    s = one(by_name, "scoped-v")
    assert (s["scope"], s["scope_version"]) == ("payments", "2.1.0")
    for name in ("via-tracer", "tracer-as-scope"):
        s = one(by_name, name)
        assert (s["scope"], s["scope_version"]) == ("inventory", "0.3"), name
    assert one(by_name, "via-tracer")["kind"] == KIND["client"]
    # The decorator makes a fresh span per call with every option of its template.
    assert r["decorated"] == ["server", "server"]
    calls = by_name["decorated"]
    assert [(c["kind"], c["scope"], c["attributes"]) for c in calls] == [(2, "web", {"route": "/x"})] * 2


LIMITS = """
import json, polytel
polytel.bootstrap_worker()
with polytel.span("limited", a=1, b=2, c=3, d=4, e=5, **{"": "empty key"}) as s:
    for i in range(10):
        s.add_event("e%d" % i, i=i, j=i, k=i)
    for i in range(5):
        s.add_link(polytel.SpanContext("%032x" % (i + 1), "%016x" % (i + 1)), x=1, y=2, z=3)
with polytel.span("few-events") as s:
    s.add_event("only")
with polytel.span("no-events-allowed") as s:
    pass
print("RESULT " + json.dumps({"rc": polytel.shutdown(timeout_ms=5000)}))
"""


def test_limits_dropped_counts():
    receiver, service = Receiver().start(), "py-limits"
    try:
        env = worker_env(receiver, service, TELEMETRY_ENABLED="true", OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT="3",
                         OTEL_SPAN_EVENT_COUNT_LIMIT="4", OTEL_SPAN_LINK_COUNT_LIMIT="2",
                         OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT="1", OTEL_LINK_ATTRIBUTE_COUNT_LIMIT="2")  # fmt: skip
        assert run_worker(LIMITS, env).check().result()["rc"] == 0
        spans = {s["name"]: s for s in of_service(receiver.received()["spans"], service)}
        receiver.assert_no_errors()
    finally:
        receiver.stop()
    s = spans["limited"]
    # 5 attributes and one with an empty key: the empty key is dropped and counted, 3 of the rest kept.
    assert len(s["attributes"]) == 3 and set(s["attributes"]) <= set("abcde")
    assert s["dropped_attributes_count"] == 3
    # The newest events and links are kept, as the OTel SDKs keep them; each counted cut is on the wire.
    assert [e["name"] for e in s["events"]] == ["e6", "e7", "e8", "e9"]
    assert s["dropped_events_count"] == 6
    assert all(len(e["attributes"]) == 1 and e["dropped_attributes_count"] == 2 for e in s["events"])
    assert [ln["span_id"] for ln in s["links"]] == ["%016x" % 4, "%016x" % 5]
    assert s["dropped_links_count"] == 3
    assert all(len(ln["attributes"]) == 2 and ln["dropped_attributes_count"] == 1 for ln in s["links"])
    assert (spans["few-events"]["dropped_events_count"], len(spans["few-events"]["events"])) == (0, 1)


def _vectors():
    """The OTel Python SDK's own decisions (tests/unit/sampling_vectors.h), usable from Python: a trace id
    can be chosen only through a parent, so roots of the parent-based sampler are left out."""
    text = (REPO / "tests" / "unit" / "sampling_vectors.h").read_text()
    rows = re.findall(r'\{"(\w+)", "([^"]*)", (-?\d), "([0-9a-f]{32})", ([01])\}', text)
    groups = {}
    for sampler, arg, parent, tid, sampled in rows:
        if sampler not in ("traceidratio", "parentbased_traceidratio"):
            continue
        if int(parent) < 0 and sampler.startswith("parentbased"):
            continue
        groups.setdefault((sampler, arg), []).append((int(parent), tid, int(sampled)))
    return groups


SAMPLER = """
import json, os, polytel
polytel.bootstrap_worker()
out = []
for parent, tid in json.loads(os.environ["CASES"]):
    p = polytel.SpanContext(tid, "00f067aa0ba902b7", sampled=parent == 1)
    with polytel.span("s", parent=p) as s:
        with polytel.span("child") as c:
            h = polytel.inject()
            polytel.info("in child")
    out.append([s.trace_id, s.context.sampled, c.context.sampled, h["traceparent"][-2:]])
polytel.flush(timeout_ms=5000)
st = polytel.stats()
print("RESULT " + json.dumps({"out": out, "stats": st, "rc": polytel.shutdown(timeout_ms=5000)}))
"""


def test_sampler_decides_as_the_core_and_the_sdk():
    groups = _vectors()
    chosen = [k for k in (("traceidratio", "0.5"), ("parentbased_traceidratio", "0.25"), ("traceidratio", "0.1"))
              if k in groups]  # fmt: skip
    assert len(chosen) == 3, sorted(groups)
    receiver = Receiver().start()
    try:
        for i, (sampler, arg) in enumerate(chosen):
            cases = groups[(sampler, arg)]
            service = "py-sampler-%d" % i
            env = worker_env(receiver, service, TELEMETRY_ENABLED="true", OTEL_TRACES_SAMPLER=sampler,
                             OTEL_TRACES_SAMPLER_ARG=arg, CASES=json.dumps([[p, t] for p, t, _ in cases]))
            r = run_worker(SAMPLER, env).check().result()
            assert r["rc"] == 0
            expected = [bool(s) for _, _, s in cases]
            assert [o[1] for o in r["out"]] == expected, (sampler, arg)
            assert any(expected) and not all(expected), (sampler, arg)  # the vectors cut both ways
            # A child follows its root here (traceidratio decides on the trace id alone); the flag travels.
            assert [o[2] for o in r["out"]] == expected
            assert [o[3] for o in r["out"]] == ["01" if e else "00" for e in expected]
            n_in = sum(expected)
            assert r["stats"]["sampled_out"] == 2 * (len(cases) - n_in)
            receiver.wait_for(lambda got, svc=service, n=2 * n_in: len(of_service(got["spans"], svc)) >= n, timeout=30)
            got = receiver.received()
            exported = {s["trace_id"] for s in of_service(got["spans"], service)}
            assert exported == {o[0] for o, e in zip(r["out"], expected) if e}
            assert len(of_service(got["spans"], service)) == 2 * n_in
            # Logs inside unsampled spans are still exported, with the trace id and flags 0.
            logs = of_service(got["logs"], service)
            assert sorted((lg["trace_id"], lg["flags"]) for lg in logs) == sorted(
                (o[0], 1 if e else 0) for o, e in zip(r["out"], expected))
        receiver.assert_no_errors()
    finally:
        receiver.stop()


UNSAMPLED = """
import json, polytel
polytel.bootstrap_worker()
with polytel.span("root") as root:
    with polytel.span("child", kind="client") as child:
        child.add_event("ignored", n=1)
        child.set_attribute("k", [1, 2])
        h = polytel.inject()
try:
    with polytel.span("fails"):
        raise RuntimeError("x")
except RuntimeError:
    pass
polytel.flush(timeout_ms=5000)
st = polytel.stats()
print("RESULT " + json.dumps({"h": h, "ids": [root.trace_id, child.trace_id, child.parent_span_id, root.span_id],
                              "sampled": [root.context.sampled, child.context.sampled], "stats": st,
                              "rc": polytel.shutdown(timeout_ms=5000)}))
"""


def test_unsampled_spans_keep_their_context_and_are_counted_apart():
    receiver, service = Receiver().start(), "py-unsampled"
    try:
        env = worker_env(receiver, service, TELEMETRY_ENABLED="true", OTEL_TRACES_SAMPLER="always_off")
        r = run_worker(UNSAMPLED, env).check().result()
        assert r["rc"] == 0
        assert of_service(receiver.received()["spans"], service) == []
        receiver.assert_no_errors()
    finally:
        receiver.stop()
    root_tid, child_tid, child_parent, root_sid = r["ids"]
    assert child_tid == root_tid and child_parent == root_sid
    assert r["sampled"] == [False, False]
    assert r["h"]["traceparent"] == "00-%s-%s-00" % (root_tid, r["h"]["traceparent"][36:52])
    st = r["stats"]
    assert st["sampled_out"] == 3
    assert st["spans_recorded"] == 0 and st["dropped"] == 0
    assert st["recorded"] == st["exported"] + st["dropped"] + st["unconfirmed"] + st["pending"]


MALFORMED = """
import json, polytel
bad_tp = [
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   # version ff
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",   # uppercase hex
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   # all-zero span id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", # version 00 with more
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    # short trace id
    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",   # separators
    "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
    "", "   ", "garbage",
]
out = {"tp": [polytel.extract({"traceparent": v}) is None for v in bad_tp]}
out["tp_types"] = [polytel.extract({"traceparent": v}) is None for v in (None, 5, ["a", "b"], [UP, UP])]
GOOD = UP
many = ",".join("k%d=v" % i for i in range(33))
bad_ts = [many, "Bad=1", "a=1,a=2", "k=" + "v" * 257, "k=v\\x01", "=v", "k=v,,=x"]
out["ts"] = [polytel.extract({"traceparent": GOOD, "tracestate": v}).tracestate for v in bad_ts]
out["ts_ok"] = [polytel.extract({"traceparent": GOOD, "tracestate": v}).tracestate
                for v in (",".join("k%d=v" % i for i in range(32)), " a=1 ,, b=2 ", ["a=1", "b=2"])]
out["ts_without_tp"] = polytel.extract({"traceparent": "bad", "tracestate": "a=1"})
# One bad baggage member is dropped, the others kept.
bg = polytel.extract({"traceparent": GOOD, "baggage": "ok=1,bad,=x,sp ace=2,pct=%zz,also=yes;prop=1,enc=a%20b"})
out["bg"] = bg.baggage
bg_only = polytel.extract({"baggage": "k=v"})
out["bg_only"] = [bg_only.is_valid, bg_only.traceparent, bg_only.baggage, bg_only.trace_id]
out["nothing"] = [polytel.extract({}), polytel.extract({"baggage": "bad"}), polytel.extract(None)]
for _ in range(2000):  # a flood of bad headers is silent
    polytel.extract({"traceparent": "00-zz", "tracestate": "Bad", "baggage": ",,,"})
with polytel.span("after", parent=polytel.extract({"traceparent": bad_tp[0]})) as s:
    out["new_trace"] = s.parent_span_id == "0" * 16
print("RESULT " + json.dumps(out, default=str))
""".replace("UP", repr(UPSTREAM_TP))


def test_malformed_headers_are_ignored_silently():
    w = run_worker(MALFORMED, worker_env(None, "py-malformed")).check()
    r = w.result()
    assert all(r["tp"]), r["tp"]
    assert r["tp_types"] == [True, True, True, True]
    assert r["ts"] == [None] * 7
    assert r["ts_ok"] == [",".join("k%d=v" % i for i in range(32)), "a=1,b=2", "a=1,b=2"]
    assert r["ts_without_tp"] is None
    assert r["bg"] == {"ok": "1", "also": "yes", "enc": "a b"}
    assert r["bg_only"] == [False, None, {"k": "v"}, "0" * 32]
    assert r["nothing"] == [None, None, None]
    assert r["new_trace"] is True
    assert w.stderr == "", w.stderr  # no warning per header: headers come from outside


PROPAGATORS = """
import json, polytel
polytel.set_baggage("k", "v")
with polytel.span("s"):
    h = polytel.inject()
x = polytel.extract({"traceparent": %r, "baggage": "a=b"})
print("RESULT " + json.dumps({"h": sorted(h), "x": None if x is None else [x.is_valid, x.baggage]}))
""" % UPSTREAM_TP


@pytest.mark.parametrize("value,headers,extracted", [
    (None, ["baggage", "traceparent"], [True, {"a": "b"}]),
    ("tracecontext", ["traceparent"], [True, {}]),
    ("baggage", ["baggage"], [False, {"a": "b"}]),
    ("none", [], None),
    ("b3,tracecontext", ["traceparent"], [True, {}]),
])  # fmt: skip
def test_otel_propagators(value, headers, extracted):
    r = run_worker(PROPAGATORS, worker_env(None, "py-prop", OTEL_PROPAGATORS=value)).check().result()
    assert (r["h"], r["x"]) == (headers, extracted)


# ------------------------------------------------------------- in-process: the API's rules


def test_carriers_of_every_kind():
    import email.message
    from collections.abc import Mapping

    import polytel

    class Headers(Mapping):  # a read-only mapping without dict underneath, as web frameworks have
        def __init__(self, d):
            self.d = d

        def __getitem__(self, k):
            return self.d[k]

        def __iter__(self):
            return iter(self.d)

        def __len__(self):
            return len(self.d)

    msg = email.message.Message()
    msg["TraceParent"] = UPSTREAM_TP
    for carrier in ({"traceparent": UPSTREAM_TP}, {"TRACEPARENT": UPSTREAM_TP}, Headers({"Traceparent": UPSTREAM_TP}),
                    msg, {b"traceparent": UPSTREAM_TP.encode()}, {"traceparent": [UPSTREAM_TP]}):  # fmt: skip
        ctx = polytel.extract(carrier)
        assert ctx is not None, carrier
        assert (ctx.trace_id, ctx.span_id, ctx.sampled, ctx.is_remote) == (
            "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True, True)
        assert ctx.traceparent == UPSTREAM_TP
    with pytest.raises(TypeError, match="mapping"):
        polytel.extract([("traceparent", UPSTREAM_TP)])
    with pytest.raises(TypeError, match="mapping"):
        polytel.extract(UPSTREAM_TP)


def test_span_context_and_inject_of_a_given_context():
    import pickle

    import polytel

    c = polytel.SpanContext("4BF92F3577B34DA6A3CE929D0E0E4736", 0x00F067AA0BA902B7, sampled=False, tracestate="a=1 ,b=2")
    assert (c.trace_id, c.span_id, c.sampled, c.trace_flags, c.tracestate) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", False, 0, "a=1,b=2")
    assert c.traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    assert c == polytel.extract({"traceparent": c.traceparent}) and hash(c) == hash(pickle.loads(pickle.dumps(c)))
    assert pickle.loads(pickle.dumps(c)).tracestate == "a=1,b=2"
    carrier = {"keep": "me"}
    assert polytel.inject(carrier, context=c) is carrier
    assert carrier == {"keep": "me", "traceparent": c.traceparent, "tracestate": "a=1,b=2"}
    assert polytel.inject() == {}  # no current span, no baggage
    for bad in (("0" * 32, "1" * 16), ("xyz", "1" * 16), ("1" * 32, 2**64), (-1, 1)):
        with pytest.raises(ValueError):
            polytel.SpanContext(*bad)
    with pytest.raises(TypeError):
        polytel.SpanContext(1.5, 1)
    with pytest.raises(ValueError, match="tracestate"):
        polytel.SpanContext(1, 1, tracestate="Bad=1")


def test_span_arguments_are_checked():
    import polytel

    with pytest.raises(ValueError, match="kind 'queue'"):
        polytel.span("x", kind="queue")
    with pytest.raises(TypeError, match="parent"):
        polytel.span("x", parent="00-abc")
    with pytest.raises(ValueError, match="has not started"):
        polytel.span("x", parent=polytel.span("new"))
    with pytest.raises(TypeError, match="link"):
        polytel.span("x", links=["nope"])
    with pytest.raises((TypeError, ValueError), match="scope"):
        polytel.span("x", scope=42)
    with pytest.raises(ValueError, match="scope"):
        polytel.span("x", scope="")
    with pytest.raises(TypeError):
        polytel.span("x").record_exception("not an exception")
    with pytest.raises(ValueError, match="baggage key"):
        polytel.set_baggage("bad key", "v")
    with pytest.raises(TypeError):
        polytel.set_baggage("k", 1)
    # None leaves an option at its default, so wrappers can pass their own through.
    sp = polytel.span("x", parent=None, kind=None, links=None, attributes=None, scope=None, a=1)
    assert (sp.kind, sp.attributes) == ("internal", {"a": 1})
    assert polytel.span("y", attributes={"a": 1, "b": 2}, b=3).attributes == {"a": 1, "b": 3}


def test_baggage_follows_the_context():
    import asyncio

    import polytel

    assert polytel.get_baggage() == {}
    polytel.set_baggage("user", "42")
    try:

        async def task(v):
            polytel.set_baggage("task", v)  # a task's context is a copy: no other task sees it
            await asyncio.sleep(0)
            return polytel.get_baggage()

        async def main():
            return await asyncio.gather(task("a"), task("b"))

        assert asyncio.run(main()) == [{"user": "42", "task": "a"}, {"user": "42", "task": "b"}]
        assert polytel.get_baggage() == {"user": "42"}
        assert polytel.inject(context=polytel.SpanContext(1, 1))["baggage"] == "user=42"
        remote = polytel.extract({"traceparent": UPSTREAM_TP, "baggage": "job=7"})
        with polytel.span("consumer", parent=remote):
            assert polytel.get_baggage() == {"job": "7"}
            polytel.set_baggage("more", "x")
            assert polytel.inject()["baggage"] == "job=7,more=x"
        assert polytel.get_baggage() == {"user": "42"}
    finally:
        polytel.remove_baggage()
    assert polytel.get_baggage() == {}
