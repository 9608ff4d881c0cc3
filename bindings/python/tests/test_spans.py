"""Spans: nesting, attributes, decorators (sync, async, generator), asyncio parents, exceptions."""
import pytest
from conftest import of_service, run_worker, worker_env
from otlp_receiver import Receiver

WORKER = """
import asyncio, json, time, polytel
polytel.bootstrap_worker()
out = {}

with polytel.span("outer", attributes={"kind": "test"}, n=1, ratio=0.25, ok=True, obj={"a": [1, 2]}) as outer:
    with polytel.span("middle") as middle:
        with polytel.span("inner") as inner:
            out["current_is_inner"] = polytel.current_span() is inner
            polytel.info("log in inner")
        middle.set_attribute("late", "yes")
    out["current_is_outer"] = polytel.current_span() is outer
out["current_after"] = polytel.current_span() is None
out["ids"] = {s.name: [s.trace_id, s.span_id, s.parent_span_id] for s in (outer, middle, inner)}

@polytel.span("decorated.sync", layer="svc")
def compute(x):
    return x * 2
out["compute"] = [compute(1), compute(2), compute.__name__]

@polytel.span("task")
async def task(n):
    polytel.current_span().set_attribute("n", n)
    with polytel.span("child-%d" % n):
        await asyncio.sleep(0.01 * (3 - n))  # the two tasks interleave
        await asyncio.sleep(0)
    return n

async def main():
    with polytel.span("gather-root"):
        return await asyncio.gather(task(1), task(2))
out["gather"] = asyncio.run(main())

try:
    with polytel.span("fails", step="parse"):
        raise ValueError("bad input")
except ValueError:
    out["reraised"] = True

class CustomError(Exception):
    pass

@polytel.span("fails.async")
async def afail():
    raise CustomError()
try:
    asyncio.run(afail())
except CustomError:
    out["reraised_async"] = True

@polytel.span("gen")
def gen():
    yield 1
    yield 2
out["gen"] = list(gen())
g = gen()
next(g)
g.close()  # stopped early: not an error

with polytel.span("status") as s:
    s.set_status("ok")

wide = {"k%d" % i: i for i in range(40)}
with polytel.span("wide", **wide) as s:
    polytel.info("wide log", **wide)
    for i in range(40, 60):
        s.set_attribute("k%d" % i, str(i))
# An explicit start time (the OpenTelemetry API's start_time): set before entering, sent as given.
st = polytel.span("explicit-start")
out["start_unset"] = st.start_ns
st.start_ns = out["start"] = time.time_ns() - 5_000_000
with st:
    out["start_inside"] = st.start_ns
# The context manager protocol by hand: bound __enter__/__exit__ and the unbound calls nest like `with`.
with polytel.span("by-hand-parent") as hp:
    bh = polytel.span("by-hand")
    enter = bh.__enter__
    out["bound"] = [enter.__self__ is bh, enter is bh.__enter__, enter() is bh]
    del enter
    out["by_hand_current"] = polytel.current_span() is bh
    polytel.Span.__enter__(polytel.span("by-hand-child"))
    polytel.Span.__exit__(polytel.current_span(), None, None, None)
    bh.__exit__(None, None, None)
    out["by_hand_after"] = polytel.current_span() is hp
out["rc"] = polytel.shutdown(timeout_ms=5000)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def spans():
    receiver, service = Receiver().start(), "py-spans"
    try:
        w = run_worker(WORKER, worker_env(receiver, service, TELEMETRY_ENABLED="true")).check()
        r = w.result()
        assert r["rc"] == 0
        got = of_service(receiver.received()["spans"], service)
        receiver.assert_no_errors()
        r["logs"] = of_service(receiver.received()["logs"], service)
        yield r, got
    finally:
        receiver.stop()


def named(got, name):
    found = [s for s in got if s["name"] == name]
    assert len(found) == 1, (name, [s["name"] for s in got])
    return found[0]


def test_nested_parent_links(spans):
    r, got = spans
    outer, middle, inner = named(got, "outer"), named(got, "middle"), named(got, "inner")
    assert outer["parent_span_id"] == ""
    assert middle["parent_span_id"] == outer["span_id"]
    assert inner["parent_span_id"] == middle["span_id"]
    assert outer["trace_id"] == middle["trace_id"] == inner["trace_id"]
    # The ids Python saw are the ids exported.
    assert r["ids"]["inner"] == [inner["trace_id"], inner["span_id"], middle["span_id"]]
    assert outer["start_ns"] <= middle["start_ns"] <= inner["start_ns"] <= inner["end_ns"] <= middle["end_ns"]
    assert middle["end_ns"] <= outer["end_ns"]
    assert r["current_is_inner"] and r["current_is_outer"] and r["current_after"]


def test_logs_link_to_the_current_span(spans):
    r, got = spans
    inner = named(got, "inner")
    (log,) = [lg for lg in r["logs"] if lg["body"] == "log in inner"]
    assert (log["trace_id"], log["span_id"]) == (inner["trace_id"], inner["span_id"])


def test_attributes_typed(spans):
    _, got = spans
    # attributes= names what would be a keyword of span() (kind); other objects keep their str().
    assert named(got, "outer")["attributes"] == {"kind": "test", "n": 1, "ratio": 0.25, "ok": True, "obj": "{'a': [1, 2]}"}
    assert named(got, "middle")["attributes"] == {"late": "yes"}
    assert named(got, "inner")["attributes"] == {}


def test_sync_decorator(spans):
    r, got = spans
    assert r["compute"] == [2, 4, "compute"]
    calls = [s for s in got if s["name"] == "decorated.sync"]
    assert len(calls) == 2
    assert all(s["attributes"] == {"layer": "svc"} and s["parent_span_id"] == "" for s in calls)
    assert calls[0]["span_id"] != calls[1]["span_id"]


def test_async_tasks_get_their_own_parents(spans):
    r, got = spans
    assert r["gather"] == [1, 2]
    root = named(got, "gather-root")
    tasks = {s["attributes"]["n"]: s for s in got if s["name"] == "task"}
    assert sorted(tasks) == [1, 2]
    for n in (1, 2):
        assert tasks[n]["parent_span_id"] == root["span_id"]
        child = named(got, "child-%d" % n)
        assert child["parent_span_id"] == tasks[n]["span_id"], n
        assert child["trace_id"] == root["trace_id"]


def test_exception_sets_error_and_still_ends(spans):
    r, got = spans
    assert r["reraised"] and r["reraised_async"]
    fails = named(got, "fails")
    assert fails["status_code"] == 2
    assert fails["status_message"] == "bad input"
    # The exception is an event (semantic conventions), not attributes of the span.
    assert fails["attributes"] == {"step": "parse"}
    (ev,) = fails["events"]
    assert ev["name"] == "exception"
    assert (ev["attributes"]["exception.type"], ev["attributes"]["exception.message"]) == ("ValueError", "bad input")
    assert ev["attributes"]["exception.stacktrace"].startswith("Traceback (most recent call last):\n")
    assert ev["attributes"]["exception.stacktrace"].endswith("ValueError: bad input\n")
    assert fails["start_ns"] <= ev["time_ns"] <= fails["end_ns"]
    assert fails["end_ns"] >= fails["start_ns"] > 0
    afail = named(got, "fails.async")
    assert afail["status_code"] == 2
    assert afail["events"][0]["attributes"]["exception.type"] == "__main__.CustomError"
    assert "in afail\n" in afail["events"][0]["attributes"]["exception.stacktrace"]
    assert afail["status_message"] == "__main__.CustomError"  # empty message: the type says it


def test_generator_and_status(spans):
    r, got = spans
    assert r["gen"] == [1, 2]
    gens = [s for s in got if s["name"] == "gen"]
    assert [(s["status_code"], s["attributes"]) for s in gens] == [(0, {}), (0, {})]
    assert named(got, "status")["status_code"] == 1
    assert named(got, "outer")["status_code"] == 0


def test_total_span_count(spans):
    _, got = spans
    # outer, middle, inner, 2 decorated.sync, gather-root, 2 task, 2 child, fails, fails.async, 2 gen, status, wide,
    # explicit-start, by-hand-parent, by-hand, by-hand-child
    assert len(got) == 20


def test_explicit_start_time(spans):
    r, got = spans
    sp = named(got, "explicit-start")
    assert r["start_unset"] is None
    assert sp["start_ns"] == r["start"] == r["start_inside"]
    assert sp["end_ns"] >= r["start"] + 5_000_000


def test_protocol_by_hand(spans):
    r, got = spans
    assert r["bound"] == [True, True, True]
    assert r["by_hand_current"] and r["by_hand_after"]
    parent, bh, child = named(got, "by-hand-parent"), named(got, "by-hand"), named(got, "by-hand-child")
    assert bh["parent_span_id"] == parent["span_id"]
    assert child["parent_span_id"] == bh["span_id"]
    assert parent["start_ns"] <= bh["start_ns"] <= child["start_ns"] <= child["end_ns"] <= bh["end_ns"]


def test_many_attributes(spans):
    r, got = spans
    expected = {"k%d" % i: i for i in range(40)}
    assert named(got, "wide")["attributes"] == dict(expected, **{"k%d" % i: str(i) for i in range(40, 60)})
    (log,) = [lg for lg in r["logs"] if lg["body"] == "wide log"]
    assert log["attributes"] == expected


def test_span_object_rules():
    """In-process: a span object is used once; bad calls raise clearly."""
    import polytel

    sp = polytel.span("once")
    with sp:
        assert sp.active
    assert not sp.active
    with pytest.raises(RuntimeError):
        with sp:
            pass
    with pytest.raises(TypeError):
        polytel.span()
    with pytest.raises(TypeError):
        polytel.span(42)
    with pytest.raises(TypeError):
        polytel.Span("x")
    with pytest.raises(ValueError):
        polytel.span("s").set_status("maybe")
    assert repr(polytel.span("r")).startswith("<polytel.Span 'r'")
    with pytest.raises(TypeError, match="doesn't apply to a 'int' object"):
        polytel.Span.__enter__(1)
    with pytest.raises(TypeError, match="takes no arguments"):
        polytel.span("a").__enter__(1)
    with pytest.raises(ValueError, match=r"span.start_ns is Unix nanoseconds \(a non-negative int\), not -1"):
        polytel.span("b").start_ns = -1
    with pytest.raises(ValueError, match="not 1.5"):
        polytel.span("b").start_ns = 1.5
    with pytest.raises(RuntimeError, match="start_ns set on a span that has ended"):
        sp.start_ns = 1


def test_with_keeps_no_reference():
    """The bound __enter__/__exit__ live in the span: a `with` leaves its reference count as it found it."""
    import sys

    import polytel

    sp = polytel.span("rc")
    before = sys.getrefcount(sp)
    with sp:
        assert polytel.current_span() is sp
    assert sys.getrefcount(sp) == before
    held = sp.__exit__  # a bound method outliving the block keeps the span alive, and works later
    del sp
    assert held.__self__.name == "rc" and held.__self__.active is False
    assert repr(polytel.Span.__enter__) == "<method '__enter__' of 'polytel.Span' objects>"
