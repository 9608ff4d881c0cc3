"""test_span_model — the span model of the C core end to end against the test receiver (strict decoding with
the official protos): kinds, events, links, arrays, scopes, tracestate, flags, limits and their dropped counts,
in protobuf and JSON, and the sampler's exact decisions with their sampled_out accounting."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from worker_harness import BUILD, worker_env  # noqa: F401 (puts tests/receiver on sys.path)
from pytest_fixtures import receiver  # noqa: F401

PROGRAM = os.path.join(BUILD, "tests", "span_model")
LIMITS = {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": 4, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": 6,
          "OTEL_SPAN_EVENT_COUNT_LIMIT": 2, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": 1,
          "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT": 0}


def run(env: dict, *args) -> tuple[list[dict], dict]:
    """Runs the program; returns the lines it printed before its stats, and its stats."""
    assert os.access(PROGRAM, os.X_OK), f"{PROGRAM} not built: run `make build`"
    p = subprocess.run([PROGRAM, *map(str, args)], env=worker_env(env), capture_output=True, text=True,
                       timeout=120)  # a hang guard only
    assert p.returncode == 0, p.stderr
    lines = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    return lines[:-1], lines[-1]


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_span_model_on_the_wire(receiver, protocol):
    printed, st = run({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                       **LIMITS})
    check_model(receiver.received(), printed, st)


def check_model(got: dict, printed: list[dict], st: dict) -> None:
    ctx = {c["ctx"]: c for c in printed}
    spans = {s["name"]: s for s in got["spans"]}
    assert sorted(spans) == ["enqueue 1", "enqueue 2", "process", "request", "thread span"]
    # The accounting: 5 spans and 3 logs recorded and exported, the unsampled span apart.
    assert (st["shutdown_rc"], st["spans_recorded"], st["logs_recorded"], st["sampled_out"]) == (0, 5, 3, 1), st
    assert st["recorded"] == st["exported"] == 8 and st["dropped"] == st["pending"] == st["unconfirmed"] == 0

    req, e1, e2, proc, th = (spans[n] for n in ("request", "enqueue 1", "enqueue 2", "process", "thread span"))
    assert (req["kind"], e1["kind"], proc["kind"], th["kind"]) == (2, 4, 5, 1)  # SERVER, PRODUCER, CONSUMER, INTERNAL
    # Scopes: named ones with their version, a thread span in polytel's own.
    assert (e1["scope"], e1["scope_version"]) == ("queue", "1.2") == (req["scope"], req["scope_version"])
    assert (proc["scope"], proc["scope_version"]) == ("worker", "")
    assert th["scope"] == "polytel"
    # Flags: sampled, and whether the parent was remote (0x100 known, 0x200 remote).
    assert (req["flags"], e1["flags"], proc["flags"], th["flags"]) == (0x101, 0x101, 0x301, 0x101)
    # The consumer is the child of the job whose traceparent it read, in the producer's trace.
    assert proc["trace_id"] == ctx["job2"]["trace_id"] == req["trace_id"]
    assert proc["parent_span_id"] == ctx["job2"]["span_id"] and proc["span_id"] == ctx["consumer"]["span_id"]
    assert proc["trace_state"] == "congo=t61rcWkgMzE"
    assert (proc["status_code"], proc["status_message"]) == (2, "bad input")

    # Arrays as OTLP arrays; strings cut to 4 characters; 6 attributes kept of 7 (the empty key dropped).
    assert proc["attributes"] == {"tags": ["a", "bé"], "ids": [7, -8], "ratios": [0.25, 1e100],
                                  "oks": [True, False], "long": "abcd", "n1": 1}
    assert proc["dropped_attributes_count"] == 2
    # Events: the newest 2 of 3 kept, the exception per the semantic conventions.
    assert [e["name"] for e in proc["events"]] == ["second", "exception"]
    assert proc["dropped_events_count"] == 1
    exc = proc["events"][1]["attributes"]
    assert exc == {"exception.type": "Valu", "exception.message": "bad ", "exception.stacktrace": "Trac"}
    assert all(e["time_ns"] >= proc["start_ns"] for e in proc["events"])
    # Links: both jobs, their flags, the first with its tracestate and 1 of its 2 attributes.
    l1, l2 = proc["links"]
    assert (l1["trace_id"], l1["span_id"]) == (ctx["job1"]["trace_id"], ctx["job1"]["span_id"])
    assert (l2["span_id"], l2["flags"], l2["trace_state"]) == (ctx["job2"]["span_id"], 0x101, "")
    assert (l1["trace_state"], l1["flags"], l1["attributes"], l1["dropped_attributes_count"]) == \
        ("vendor=one", 0x101, {"i": 1}, 1)
    assert proc["dropped_links_count"] == 0

    logs = {lg["body"]: lg for lg in got["logs"]}
    lc = logs["in the consumer"]
    assert (lc["trace_id"], lc["span_id"], lc["flags"]) == (proc["trace_id"], proc["span_id"], 1)
    assert lc["attributes"] == {} and lc["dropped_attributes_count"] == 1  # OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT=0
    # A log in an unsampled span is exported with its ids and the unsampled flag; the span is not.
    lu = logs["in the unsampled span"]
    assert (lu["trace_id"], lu["span_id"], lu["flags"]) == \
        (ctx["unsampled"]["trace_id"], ctx["unsampled"]["span_id"], 0)
    assert ctx["unsampled"]["flags"] & 1 == 0 and "not recorded" not in spans
    lt = logs["in the thread span"]
    assert (lt["trace_id"], lt["span_id"], lt["flags"]) == (th["trace_id"], th["span_id"], 1)


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_traceidratio_exact_set(receiver, protocol):
    """1000 roots at ratio 0.5: exported exactly the trace ids the spec's rule samples, the rest sampled_out."""
    printed, st = run({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                       "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, "--roots", 1000)
    started = [p["root"] for p in printed]
    assert len(started) == len(set(started)) == 1000
    # The TraceIdRatioBased rule, computed here on its own: the id's low 8 bytes, big-endian, below 2^64 * 0.5.
    want = {t for t in started if int(t[16:], 16) < 2**63}
    assert all((p["flags"] & 1) == (p["root"] in want) for p in printed)
    got = {s["trace_id"] for s in receiver.received()["spans"]}
    assert got == want
    assert st["spans_recorded"] + st["sampled_out"] == 1000
    assert st["sampled_out"] == 1000 - len(want) and 0 < len(want) < 1000
    assert st["shutdown_rc"] == 0 and st["recorded"] == st["exported"] == len(want) and st["dropped"] == 0
