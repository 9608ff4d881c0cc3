"""test_receiver — the test OTLP receiver itself: real HTTP requests built with the official protobuf classes."""
from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from google.protobuf import text_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
sys.path.insert(0, HERE)

import jsonl  # noqa: E402
import tls  # noqa: E402
from otlp_receiver import (  # noqa: E402
    JSON,
    PROTOBUF,
    OtlpDecodeError,
    Receiver,
    descriptor_set,
    protoc_decode,
    to_otlp_json,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
PARENT_ID = "00f067aa0ba902b7"


# -- request builders (official classes) -----------------------------------------

def _kv(attrs, key, value):
    kv = attrs.add()
    kv.key = key
    _set_any(kv.value, value)


def _set_any(av, value):
    if isinstance(value, bool):
        av.bool_value = value
    elif isinstance(value, int):
        av.int_value = value
    elif isinstance(value, float):
        av.double_value = value
    elif isinstance(value, str):
        av.string_value = value
    elif isinstance(value, bytes):
        av.bytes_value = value
    elif isinstance(value, list):
        av.array_value.SetInParent()
        for v in value:
            _set_any(av.array_value.values.add(), v)
    elif isinstance(value, dict):
        av.kvlist_value.SetInParent()
        for k, v in value.items():
            _kv(av.kvlist_value.values, k, v)
    else:
        raise TypeError(value)


def trace_request(spans, service="svc-a", resource_extra=None):
    """spans: list of dicts {name, trace_id, span_id, parent?, start, end, attrs?, status?}."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _kv(rs.resource.attributes, "service.name", service)
    for k, v in (resource_extra or {}).items():
        _kv(rs.resource.attributes, k, v)
    ss = rs.scope_spans.add()
    ss.scope.name = "polytel"
    for s in spans:
        sp = ss.spans.add()
        sp.name = s["name"]
        sp.trace_id = bytes.fromhex(s.get("trace_id", TRACE_ID))
        sp.span_id = bytes.fromhex(s.get("span_id", SPAN_ID))
        sp.parent_span_id = bytes.fromhex(s.get("parent", ""))
        sp.start_time_unix_nano = s.get("start", 1_700_000_000_000_000_000)
        sp.end_time_unix_nano = s.get("end", 1_700_000_000_000_001_000)
        sp.kind = s.get("kind", 1)
        for k, v in s.get("attrs", {}).items():
            _kv(sp.attributes, k, v)
        if "status" in s:
            sp.status.code, sp.status.message = s["status"]
    return req


def log_request(records, service="svc-a", scope="app.db"):
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _kv(rl.resource.attributes, "service.name", service)
    sl = rl.scope_logs.add()
    sl.scope.name = scope
    for r in records:
        lr = sl.log_records.add()
        lr.time_unix_nano = r.get("time", 1_700_000_000_123_456_789)
        lr.severity_number = r.get("severity", 9)
        lr.severity_text = r.get("severity_text", "INFO")
        _set_any(lr.body, r["body"])
        lr.trace_id = bytes.fromhex(r.get("trace_id", ""))
        lr.span_id = bytes.fromhex(r.get("span_id", ""))
        for k, v in r.get("attrs", {}).items():
            _kv(lr.attributes, k, v)
    return req


def metric_request(service="svc-a"):
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _kv(rm.resource.attributes, "service.name", service)
    sm = rm.scope_metrics.add()
    sm.scope.name = "polytel"

    m = sm.metrics.add()
    m.name, m.unit = "requests", "1"
    m.sum.is_monotonic = True
    m.sum.aggregation_temporality = 2
    dp = m.sum.data_points.add()
    dp.as_int, dp.start_time_unix_nano, dp.time_unix_nano = 42, 100, 200
    _kv(dp.attributes, "route", "/x")

    g = sm.metrics.add()
    g.name, g.unit = "temperature", "Cel"
    gp = g.gauge.data_points.add()
    gp.as_double, gp.time_unix_nano = 21.5, 300

    h = sm.metrics.add()
    h.name, h.unit = "latency", "ms"
    h.histogram.aggregation_temporality = 2
    hp = h.histogram.data_points.add()
    hp.count, hp.sum = 3, 17.5
    hp.bucket_counts.extend([1, 2, 0])
    hp.explicit_bounds.extend([5.0, 10.0])
    hp.start_time_unix_nano, hp.time_unix_nano = 100, 200
    return req


def as_json(req) -> bytes:
    return json.dumps(to_otlp_json(req)).encode()


# -- HTTP helpers -----------------------------------------------------------------

def post(url, body, content_type=PROTOBUF, encoding=None, context=None, timeout=5, headers=None):
    """POST and return (status, headers, body) for any status; network errors propagate."""
    h = {"Content-Type": content_type} if content_type is not None else {}
    if encoding:
        h["Content-Encoding"] = encoding
    h.update(headers or {})
    req = urllib.request.Request(url, data=body, headers=h, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def raw_request(port, path, body, content_type=PROTOBUF):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


# -- decoding and normalization -----------------------------------------------------

def test_protobuf_span_arrives_with_exact_ids_and_values(receiver):
    attrs = {"s": "v", "i": -7, "d": 2.5, "b": True, "arr": [1, "two", False], "kv": {"x": 1, "y": ["z"]},
             "raw": b"\x00\xff"}
    req = trace_request([{"name": "db.query", "trace_id": TRACE_ID, "span_id": SPAN_ID, "parent": PARENT_ID,
                          "start": 1_700_000_000_000_000_001, "end": 1_700_000_000_000_000_999, "attrs": attrs,
                          "status": (2, "boom")}], resource_extra={"host.name": "h1"})
    status, headers, body = post(receiver.url("traces"), req.SerializeToString())
    assert status == 200
    assert headers["Content-Type"] == PROTOBUF
    resp = ExportTraceServiceResponse()
    resp.ParseFromString(body)
    assert resp == ExportTraceServiceResponse()

    got = receiver.received()
    assert got["errors"] == []
    (span,) = got["spans"]
    assert {k: span[k] for k in ("service", "resource", "scope", "name", "trace_id", "span_id", "parent_span_id",
                                 "start_ns", "end_ns", "status_code", "status_message", "attributes")} == {
        "service": "svc-a", "resource": {"service.name": "svc-a", "host.name": "h1"}, "scope": "polytel",
        "name": "db.query", "trace_id": TRACE_ID, "span_id": SPAN_ID, "parent_span_id": PARENT_ID,
        "start_ns": 1_700_000_000_000_000_001, "end_ns": 1_700_000_000_000_000_999,
        "status_code": 2, "status_message": "boom",
        "attributes": {"s": "v", "i": -7, "d": 2.5, "b": True, "arr": [1, "two", False],
                       "kv": {"x": 1, "y": ["z"]}, "raw": base64.b64encode(b"\x00\xff").decode()},
    }
    assert span["kind"] == 1
    (rec,) = got["requests"]
    assert rec["path"] == "/v1/traces"
    assert rec["content_type"] == PROTOBUF
    assert rec["content_encoding"] is None
    assert rec["status_returned"] == 200
    assert rec["bytes"] == len(req.SerializeToString())
    assert rec["items"] == 1
    assert rec["headers"]["content-type"] == PROTOBUF


def test_missing_parent_is_empty_string(receiver):
    req = trace_request([{"name": "root"}])
    assert post(receiver.url("traces"), as_json(req), JSON)[0] == 200
    (span,) = receiver.received()["spans"]
    assert span["parent_span_id"] == ""
    assert span["trace_id"] == TRACE_ID


def test_gzip_json_log_arrives_with_body(receiver):
    req = log_request([{"body": "user logged in", "severity": 13, "severity_text": "WARN",
                        "trace_id": TRACE_ID, "span_id": SPAN_ID, "attrs": {"user.id": 7}}], scope="app.auth")
    wire = gzip.compress(as_json(req))
    status, headers, body = post(receiver.url("logs"), wire, JSON, encoding="gzip")
    assert (status, headers["Content-Type"], body) == (200, JSON, b"{}")
    got = receiver.received()
    (log,) = got["logs"]
    assert log == {
        "service": "svc-a", "resource": {"service.name": "svc-a"}, "scope": "app.auth",
        "body": "user logged in", "severity_number": 13, "severity_text": "WARN",
        "attributes": {"user.id": 7}, "trace_id": TRACE_ID, "span_id": SPAN_ID,
        "time_ns": 1_700_000_000_123_456_789, "observed_time_ns": 0, "flags": 0, "dropped_attributes_count": 0,
        "thread_id": None, "thread_name": None,
    }
    (rec,) = got["requests"]
    assert (rec["content_encoding"], rec["bytes"]) == ("gzip", len(wire))


def test_zstd_protobuf_span_arrives(receiver):
    import zstandard

    wire = zstandard.ZstdCompressor(level=1).compress(trace_request([{"name": "zs"}]).SerializeToString())
    assert post(receiver.url("traces"), wire, encoding="zstd")[0] == 200
    got = receiver.received()
    assert [s["name"] for s in got["spans"]] == ["zs"]
    assert got["requests"][0]["content_encoding"] == "zstd"


@pytest.mark.parametrize("status", [400, 415])
def test_refused_encoding_answers_like_a_collector_without_it(status):
    import zstandard

    r = Receiver(refuse_encodings={"zstd": status}).start()
    try:
        wire = zstandard.ZstdCompressor().compress(trace_request([{"name": "zs"}]).SerializeToString())
        st, _headers, resp = post(r.url("traces"), wire, encoding="zstd")
        assert st == status and b"unsupported Content-Encoding: zstd" in resp
        # gzip still works there
        assert post(r.url("traces"), gzip.compress(trace_request([{"name": "gz"}]).SerializeToString()),
                    encoding="gzip")[0] == 200
        got = r.received()
        assert [s["name"] for s in got["spans"]] == ["gz"]
        assert [(e["status"], e["content_encoding"]) for e in got["errors"]] == [(status, "zstd")]
    finally:
        r.stop()
@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_thread_attributes_lifted_out(receiver, content_type):
    """thread.id / thread.name (on every polytel record) become thread_id / thread_name; the rest stays."""
    treq = trace_request([{"name": "s", "attrs": {"k": 1, "thread.id": 3, "thread.name": "worker-1"}}])
    lreq = log_request([{"body": "b", "attrs": {"thread.id": 4}}])
    for signal, req in (("traces", treq), ("logs", lreq)):
        body = req.SerializeToString() if content_type == PROTOBUF else as_json(req)
        assert post(receiver.url(signal), body, content_type)[0] == 200
    got = receiver.received()
    (span,), (log,) = got["spans"], got["logs"]
    assert (span["attributes"], span["thread_id"], span["thread_name"]) == ({"k": 1}, 3, "worker-1")
    assert (log["attributes"], log["thread_id"], log["thread_name"]) == ({}, 4, None)


def test_gzip_protobuf_log_without_ids(receiver):
    req = log_request([{"body": "a"}, {"body": {"structured": [1, 2]}}])
    assert post(receiver.url("logs"), gzip.compress(req.SerializeToString()), encoding="gzip")[0] == 200
    logs = receiver.received()["logs"]
    assert [entry["body"] for entry in logs] == ["a", {"structured": [1, 2]}]
    assert [(entry["trace_id"], entry["span_id"]) for entry in logs] == [("", ""), ("", "")]


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_metric_points_normalized(receiver, content_type):
    req = metric_request()
    body = req.SerializeToString() if content_type == PROTOBUF else as_json(req)
    assert post(receiver.url("metrics"), body, content_type)[0] == 200
    pts = {p["name"]: p for p in receiver.received()["metrics"]}
    assert sorted(pts) == ["latency", "requests", "temperature"]
    c, g, h = pts["requests"], pts["temperature"], pts["latency"]
    assert (c["type"], c["value"], c["is_monotonic"], c["temporality"], c["unit"], c["attributes"]) == \
        ("sum", 42, True, 2, "1", {"route": "/x"})
    assert type(c["value"]) is int
    assert (c["start_ns"], c["time_ns"], c["service"]) == (100, 200, "svc-a")
    assert (g["type"], g["value"], g["is_monotonic"], g["time_ns"]) == ("gauge", 21.5, False, 300)
    assert type(g["value"]) is float
    assert (h["type"], h["count"], h["sum"], h["bucket_counts"], h["explicit_bounds"], h["temporality"]) == \
        ("histogram", 3, 17.5, [1, 2, 0], [5.0, 10.0], 2)
    assert h["value"] is None


def test_arrival_order_kept_across_requests(receiver):
    for i in range(5):
        req = log_request([{"body": f"m{i}a"}, {"body": f"m{i}b"}])
        assert post(receiver.url("logs"), req.SerializeToString())[0] == 200
    assert [entry["body"] for entry in receiver.received()["logs"]] == \
        [f"m{i}{x}" for i in range(5) for x in "ab"]


# -- strictness ----------------------------------------------------------------

def _span_json(**span_overrides):
    d = to_otlp_json(trace_request([{"name": "s"}]))
    d["resourceSpans"][0]["scopeSpans"][0]["spans"][0].update(span_overrides)
    return json.dumps(d).encode()


BAD_JSON = {
    "non_hex_trace_id": (_span_json(traceId="zz" * 16), "hex digits"),
    "short_span_id": (_span_json(spanId="abcd"), "want 16 hex digits"),
    "base64_trace_id": (_span_json(traceId=base64.b64encode(bytes.fromhex(TRACE_ID)).decode()), "hex digits"),
    "snake_case_key": (_span_json(trace_id=TRACE_ID), "lowerCamelCase"),
    "unknown_field": (_span_json(colour="red"), "unknown field 'colour'"),
    "enum_as_name": (_span_json(kind="SPAN_KIND_SERVER"), "enums are integers"),
    "int64_as_number": (_span_json(startTimeUnixNano=5), "decimal strings"),
    "zero_trace_id": (_span_json(traceId="0" * 32), "all zeros"),
    "missing_span_id": (_span_json(spanId=""), "want 8"),
    "nan_literal": (b'{"resourceSpans": NaN}', "invalid JSON literal"),
    "not_json": (b"\x0a\x00", "JSON"),
    "duplicate_key": (b'{"resourceSpans": [], "resourceSpans": []}', "duplicate JSON key"),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON))
def test_bad_json_is_400_and_recorded(receiver, case):
    body, message_part = BAD_JSON[case]
    status, headers, resp = post(receiver.url("traces"), body, JSON)
    assert status == 400
    assert headers["Content-Type"] == JSON
    assert json.loads(resp)["code"] == 3  # google.rpc INVALID_ARGUMENT
    got = receiver.received()
    assert got["spans"] == []
    (err,) = got["errors"]
    assert err["status"] == 400 and err["path"] == "/v1/traces"
    assert message_part in err["message"]
    assert got["requests"][0]["status_returned"] == 400


def _with_unknown_field(b: bytes) -> bytes:
    return b + bytes([15 << 3 | 0, 1])  # field 15, varint 1: not in ExportTraceServiceRequest


BAD_PROTOBUF = {
    "garbage": (b"\xff\xff\xff", None, "protobuf decode failed"),
    "unknown_field": (_with_unknown_field(trace_request([{"name": "s"}]).SerializeToString()), None,
                      "unknown to the official schema"),
    "short_trace_id": (trace_request([{"name": "s", "trace_id": "0102030405"}]).SerializeToString(), None,
                       "traceId: id is 5 bytes, want 16"),
    "bad_gzip": (b"not gzip at all", "gzip", "does not gunzip"),
    "bad_zstd": (b"not zstd at all", "zstd", "does not decompress"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROTOBUF))
def test_bad_protobuf_is_400_with_status_body(receiver, case):
    body, enc, message_part = BAD_PROTOBUF[case]
    status, headers, resp = post(receiver.url("traces"), body, PROTOBUF, encoding=enc)
    assert status == 400
    st = status_pb2.Status()
    st.ParseFromString(resp)
    assert st.code == 3 and message_part in st.message
    got = receiver.received()
    assert got["spans"] == []
    assert [e["status"] for e in got["errors"]] == [400]
    assert message_part in got["errors"][0]["message"]


@pytest.mark.parametrize("content_type,encoding,path,want", [
    ("text/plain", None, "/v1/traces", 415),
    ("application/json; charset=utf-8", None, "/v1/traces", 415),
    (None, None, "/v1/traces", 415),
    (PROTOBUF, "br", "/v1/traces", 415),
    (PROTOBUF, None, "/v1/spans", 404),
])
def test_protocol_errors_recorded(receiver, content_type, encoding, path, want):
    body = trace_request([{"name": "s"}]).SerializeToString()
    status, _, _ = post(receiver.endpoint + path, body, content_type, encoding=encoding)
    assert status == want
    got = receiver.received()
    assert got["spans"] == []
    assert [(e["path"], e["status"]) for e in got["errors"]] == [(path, want)]
    with pytest.raises(AssertionError, match="protocol error"):
        receiver.assert_no_errors()


def test_get_on_signal_path_is_405(receiver):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(receiver.url("traces"), timeout=5)
    assert e.value.code == 405
    e.value.close()
    assert [e["status"] for e in receiver.received()["errors"]] == [405]


# -- faults ----------------------------------------------------------------------

def test_503_twice_then_200_counts_payload_once(receiver):
    receiver.set_faults([{"status": 503, "count": 2, "retry_after": "1"}])
    body = trace_request([{"name": "retried"}]).SerializeToString()
    results = [post(receiver.url("traces"), body) for _ in range(3)]
    assert [r[0] for r in results] == [503, 503, 200]
    assert [r[1]["Retry-After"] for r in results] == ["1", "1", None]
    got = receiver.received()
    assert [s["name"] for s in got["spans"]] == ["retried"]
    assert [(r["status_returned"], r["fault"], r["items"]) for r in got["requests"]] == \
        [(503, "respond", 0), (503, "respond", 0), (200, None, 1)]
    assert got["errors"] == []
    assert receiver.pending_faults() == []


def test_429_retry_after_http_date_verbatim_and_path_filter(receiver):
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    receiver.set_faults([{"status": 429, "retry_after": date, "path": "/v1/logs"}])
    assert post(receiver.url("traces"), trace_request([{"name": "t"}]).SerializeToString())[0] == 200
    status, headers, _ = post(receiver.url("logs"), log_request([{"body": "x"}]).SerializeToString())
    assert (status, headers["Retry-After"]) == (429, date)
    got = receiver.received()
    assert (len(got["spans"]), len(got["logs"])) == (1, 0)


def test_400_fault_counts_nothing(receiver):
    receiver.set_faults([{"status": 400}])
    status, _, resp = post(receiver.url("logs"), as_json(log_request([{"body": "x"}])), JSON)
    assert status == 400
    assert json.loads(resp)["message"] == "injected fault: 400"
    got = receiver.received()
    assert got["logs"] == [] and got["errors"] == []  # a fault is not a client error


def test_delay_then_200_counts(receiver):
    receiver.set_faults([{"delay_ms": 400}])
    body = trace_request([{"name": "slow"}]).SerializeToString()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        post(receiver.url("traces"), body, timeout=0.05)
    got = receiver.wait_for(lambda g: g["requests"], timeout=5)
    (rec,) = got["requests"]
    assert (rec["status_returned"], rec["fault"]) == (200, "respond")
    assert [s["name"] for s in got["spans"]] == ["slow"]


def test_stall_never_answers_and_stop_is_prompt():
    r = Receiver().start()
    try:
        r.set_faults([{"mode": "stall"}])
        s = raw_request(r.port, "/v1/traces", trace_request([{"name": "stuck"}]).SerializeToString())
        s.settimeout(1.0)
        with pytest.raises((TimeoutError, socket.timeout)):
            s.recv(1)
        got = r.wait_for(lambda g: g["requests"], timeout=5)
        assert [(q["fault"], q["status_returned"]) for q in got["requests"]] == [("stall", None)]
        assert got["spans"] == []
        # An idle keep-alive connection must not hold stop() either.
        idle = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
        idle.request("POST", "/v1/logs", log_request([{"body": "x"}]).SerializeToString(),
                     {"Content-Type": PROTOBUF})
        assert idle.getresponse().read() == b""
        stopper = threading.Thread(target=r.stop)
        stopper.start()
        stopper.join(timeout=5)
        assert not stopper.is_alive(), "stop() hung on a stalled connection"
        s.settimeout(5)
        assert s.recv(1) == b""  # the held socket is released by stop()
        s.close()
        idle.close()
    finally:
        r.stop()


def test_reset_mid_body(receiver):
    receiver.set_faults([{"mode": "reset"}])
    body = trace_request([{"name": "x" * 2000}]).SerializeToString()
    s = raw_request(receiver.port, "/v1/traces", body)
    with pytest.raises(ConnectionResetError):
        s.recv(1)
    s.close()
    got = receiver.received()
    (rec,) = got["requests"]
    assert (rec["fault"], rec["status_returned"], rec["bytes"]) == ("reset", None, len(body) // 2)
    assert got["spans"] == []
    assert post(receiver.url("traces"), body)[0] == 200  # next request is served normally
    assert len(receiver.received()["spans"]) == 1


def test_close_without_response(receiver):
    receiver.set_faults([{"mode": "close", "count": 1}])
    body = log_request([{"body": "dropped"}]).SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    conn.request("POST", "/v1/logs", body, {"Content-Type": PROTOBUF})
    with pytest.raises(http.client.RemoteDisconnected):
        conn.getresponse()
    conn.close()
    got = receiver.received()
    assert [(q["fault"], q["status_returned"], q["bytes"]) for q in got["requests"]] == \
        [("close", None, len(body))]
    assert got["logs"] == []


def test_partial_success_protobuf_keeps_the_accepted_items(receiver):
    receiver.set_faults([{"partial": {"rejected": 2, "message": "two bad spans"}, "path": "/v1/traces"}])
    body = trace_request([{"name": f"s{i}"} for i in range(5)]).SerializeToString()
    status, _, resp = post(receiver.url("traces"), body)
    assert status == 200
    msg = ExportTraceServiceResponse()
    msg.ParseFromString(resp)
    assert (msg.partial_success.rejected_spans, msg.partial_success.error_message) == (2, "two bad spans")
    got = receiver.received()
    assert [s["name"] for s in got["spans"]] == ["s0", "s1", "s2"]
    assert got["requests"][0]["items"] == 3


def test_partial_success_json_and_error_message(receiver):
    receiver.set_faults([{"partial": {"rejected": 1, "message": "no body"}, "path": "/v1/logs"},
                         {"status": 400, "message": "http: request body too large"}])
    status, _, resp = post(receiver.url("logs"), as_json(log_request([{"body": "a"}, {"body": "b"}])), JSON)
    assert status == 200
    assert json.loads(resp) == {"partialSuccess": {"rejectedLogRecords": "1", "errorMessage": "no body"}}
    status, _, resp = post(receiver.url("logs"), log_request([{"body": "c"}]).SerializeToString())
    assert status == 400
    st = status_pb2.Status()
    st.ParseFromString(resp)
    assert st.message == "http: request body too large"
    assert [lg["body"] for lg in receiver.received()["logs"]] == ["a"]
    assert receiver.request_count("/v1/logs") == 2 and receiver.request_count("/v1/traces") == 0


def test_hold_records_but_never_answers():
    r = Receiver().start()
    try:
        r.set_faults([{"mode": "hold"}])
        s = raw_request(r.port, "/v1/traces", trace_request([{"name": "arrived"}]).SerializeToString())
        s.settimeout(0.5)
        got = r.wait_for(lambda g: g["spans"], timeout=5)
        assert [q["fault"] for q in got["requests"]] == ["hold"]
        with pytest.raises((TimeoutError, socket.timeout)):
            s.recv(1)  # received, yet the client never hears so
        s.close()
    finally:
        r.stop()


def test_fault_validation(receiver):
    for bad in ({"mode": "explode"}, {"status": 42}, {"count": 0}, {"delay_ms": -1}, {"colour": 1},
                {"path": "/v1/nope"}, {"partial": {"rejected": -1}}, {"partial": {"x": 1}},
                {"status": 503, "partial": {"rejected": 1}}, {"message": 3}):
        with pytest.raises(ValueError):
            receiver.set_faults([bad])
    assert receiver.pending_faults() == []


def test_reset_clears_data_and_faults(receiver):
    receiver.set_faults([{"status": 503, "count": 5}])
    post(receiver.url("traces"), b"junk")
    receiver.reset()
    assert receiver.received() == {"spans": [], "logs": [], "metrics": [], "requests": [], "errors": []}
    assert receiver.pending_faults() == []
    assert post(receiver.url("traces"), trace_request([{"name": "s"}]).SerializeToString())[0] == 200


# -- concurrency, connection handling -------------------------------------------------

def test_concurrent_clients_each_span_exactly_once(receiver):
    def worker(t):
        conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
        for i in range(10):
            sid = f"{t + 1:02x}{i + 1:02x}" + "00" * 6
            body = trace_request([{"name": f"t{t}", "span_id": sid}]).SerializeToString()
            conn.request("POST", "/v1/traces", body, {"Content-Type": PROTOBUF})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
        conn.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = receiver.received()
    ids = [s["span_id"] for s in got["spans"]]
    assert len(ids) == 80 and len(set(ids)) == 80
    assert sorted(ids) == sorted(f"{t + 1:02x}{i + 1:02x}" + "00" * 6 for t in range(8) for i in range(10))
    assert len(got["requests"]) == 80


def test_chunked_body_and_captured_bodies(receiver_factory):
    r = receiver_factory(capture_bodies=True)
    body = log_request([{"body": "chunky"}]).SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", r.port, timeout=5)
    conn.request("POST", "/v1/logs", iter([body[:5], body[5:]]), {"Content-Type": PROTOBUF},
                 encode_chunked=True)
    assert conn.getresponse().status == 200
    conn.close()
    assert post(r.url("logs"), gzip.compress(body), encoding="gzip")[0] == 200
    assert [entry["body"] for entry in r.received()["logs"]] == ["chunky", "chunky"]
    assert [b["body"] for b in r.bodies()] == [body, body]  # gunzipped


def test_wait_for_returns_snapshot_and_times_out_with_summary(receiver):
    post(receiver.url("logs"), log_request([{"body": "here"}]).SerializeToString())
    got = receiver.wait_for(lambda g: len(g["logs"]) == 1, timeout=2)
    assert got["logs"][0]["body"] == "here"
    with pytest.raises(AssertionError, match=r"spans=0 logs=1 metrics=0 requests=1"):
        receiver.wait_for(lambda g: g["spans"], timeout=0.2)


# -- CORS -----------------------------------------------------------------------

def test_cors_preflight_and_headers(receiver_factory):
    r = receiver_factory(cors=True)
    req = urllib.request.Request(r.url("traces"), method="OPTIONS", headers={
        "Origin": "http://127.0.0.1:9", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,content-encoding,x-api-key"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert resp.headers["Access-Control-Allow-Methods"] == "POST"
        assert resp.headers["Access-Control-Allow-Headers"] == "content-type, content-encoding, x-api-key"
    status, headers, _ = post(r.url("traces"), trace_request([{"name": "s"}]).SerializeToString(),
                              headers={"Origin": "http://127.0.0.1:9"})
    assert (status, headers["Access-Control-Allow-Origin"]) == (200, "*")
    assert headers["Access-Control-Expose-Headers"] == "retry-after"
    r.set_faults([{"status": 503, "retry_after": "2"}])
    status, headers, _ = post(r.url("traces"), b"")
    assert (status, headers["Access-Control-Allow-Origin"], headers["Retry-After"]) == (503, "*", "2")
    with urllib.request.urlopen(r.endpoint + "/_control/received", timeout=5) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    got = r.received()
    assert got["errors"] == [] and len(got["spans"]) == 1
    assert len(got["requests"]) == 2  # preflights are not export requests


def test_no_cors_headers_without_flag(receiver):
    status, headers, _ = post(receiver.url("traces"), trace_request([{"name": "s"}]).SerializeToString())
    assert status == 200 and headers["Access-Control-Allow-Origin"] is None
    req = urllib.request.Request(receiver.url("traces"), method="OPTIONS")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405
    e.value.close()
    assert "without --cors" in receiver.received()["errors"][0]["message"]


# -- TLS ------------------------------------------------------------------------

def test_tls_with_generated_ca(receiver_factory):
    r = receiver_factory(tls=True)
    assert r.endpoint.startswith("https://127.0.0.1:")
    body = trace_request([{"name": "secure"}]).SerializeToString()
    ok = tls.client_context(r.ca_path)
    assert post(r.url("traces"), body, context=ok)[0] == 200
    assert post(f"https://localhost:{r.port}/v1/traces", body, context=ok)[0] == 200  # SAN has both
    with pytest.raises(urllib.error.URLError) as e:
        post(r.url("traces"), body, context=ssl.create_default_context())
    assert isinstance(e.value.reason, ssl.SSLCertVerificationError)
    got = r.received()
    assert [s["name"] for s in got["spans"]] == ["secure", "secure"]
    assert got["errors"] == []


def test_mtls_requires_a_client_certificate_from_its_ca(receiver_factory):
    r = receiver_factory(client_auth=True)
    files = r.tls_files
    body = trace_request([{"name": "mutual"}]).SerializeToString()
    with_cert = tls.client_context(r.ca_path)
    with_cert.load_cert_chain(files.client_cert, files.client_key)
    assert post(r.url("traces"), body, context=with_cert)[0] == 200
    combined = tls.client_context(r.ca_path)
    combined.load_cert_chain(files.client_combined)
    assert post(r.url("traces"), body, context=combined)[0] == 200
    rogue = tls.client_context(r.ca_path)
    rogue.load_cert_chain(files.rogue_cert, files.rogue_key)
    for ctx in (tls.client_context(r.ca_path), rogue):
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            post(r.url("traces"), body, context=ctx)
    assert [s["name"] for s in r.received()["spans"]] == ["mutual", "mutual"]
    assert r.wait_handshake_failures(2) == 2


def test_tls_stall_stop_is_prompt():
    r = Receiver(tls=True).start()
    ca_dir = os.path.dirname(r.ca_path)
    r.set_faults([{"mode": "stall"}])
    ctx = tls.client_context(r.ca_path)
    raw = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
              b"Content-Length: 3\r\n\r\nabc")
    r.wait_for(lambda g: g["requests"], timeout=5)
    stopper = threading.Thread(target=r.stop)
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive()
    assert not os.path.exists(ca_dir)  # generated keys removed at stop
    s.close()


# -- out of process (CLI + control API) --------------------------------------------

def _start_cli(tmp_path, *flags):
    port_file = tmp_path / "port"
    log = tmp_path / "receiver.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "otlp_receiver.py"), "--port", "0",
                                 "--port-file", str(port_file), *flags], stderr=err)
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"receiver CLI did not start: {log.read_text()}")
        time.sleep(0.02)
    return proc, int(port_file.read_text())


def _control(base, path, payload=None, context=None):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(base + path, data=data, method="GET" if payload is None else "POST",
                                 headers={"Content-Type": JSON})
    with urllib.request.urlopen(req, timeout=5, context=context) as resp:
        return resp.status, json.loads(resp.read())


def test_cli_control_api(tmp_path):
    proc, port = _start_cli(tmp_path, "--cors")
    base = f"http://127.0.0.1:{port}"
    try:
        assert _control(base, "/_control/faults", [{"status": 503, "count": 1, "retry_after": "1"}])[0] == 200
        body = trace_request([{"name": "oop", "parent": PARENT_ID}]).SerializeToString()
        assert post(base + "/v1/traces", body)[0] == 503
        assert post(base + "/v1/traces", body)[0] == 200
        status, got = _control(base, "/_control/received")
        assert status == 200
        assert [(s["name"], s["trace_id"], s["parent_span_id"]) for s in got["spans"]] == \
            [("oop", TRACE_ID, PARENT_ID)]
        assert [q["status_returned"] for q in got["requests"]] == [503, 200]
        assert got["errors"] == []
        with pytest.raises(urllib.error.HTTPError) as e:
            _control(base, "/_control/faults", [{"mode": "bogus"}])
        assert e.value.code == 400
        e.value.close()
        assert _control(base, "/_control/reset", {})[0] == 200
        assert _control(base, "/_control/received")[1]["spans"] == []
        assert _control(base, "/_control/stop", {})[0] == 200
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_tls_writes_ca_file(tmp_path):
    proc, port = _start_cli(tmp_path, "--tls")
    try:
        ca = (tmp_path / "port.ca").read_text().strip()
        ctx = tls.client_context(ca)
        body = log_request([{"body": "over tls"}]).SerializeToString()
        assert post(f"https://127.0.0.1:{port}/v1/logs", body, context=ctx)[0] == 200
        assert _control(f"https://127.0.0.1:{port}", "/_control/received", context=ctx)[1]["logs"][0]["body"] \
            == "over tls"
        proc.terminate()  # SIGTERM is a clean stop too
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- interop ------------------------------------------------------------------------

@pytest.mark.parametrize("signal,build", [
    ("traces", lambda: trace_request([{"name": "p", "parent": PARENT_ID, "attrs": {"k": [1, 2.5]}}])),
    ("logs", lambda: log_request([{"body": "héllo", "trace_id": TRACE_ID, "span_id": SPAN_ID}])),
    ("metrics", metric_request),
])
def test_protoc_decode_round_trips(signal, build):
    req = build()
    text = protoc_decode(req.SerializeToString(), signal)
    back = type(req)()
    text_format.Parse(text, back)
    assert back == req
    full = req.DESCRIPTOR.full_name
    assert protoc_decode(req.SerializeToString(), full) == text


def test_protoc_decode_sees_the_wire_values():
    text = protoc_decode(trace_request([{"name": "wire-name", "start": 12345}]).SerializeToString(), "traces")
    assert 'name: "wire-name"' in text
    assert "start_time_unix_nano: 12345" in text
    assert 'string_value: "svc-a"' in text
    with pytest.raises(ValueError):
        protoc_decode(b"", "no.such.Message")
    with pytest.raises(RuntimeError, match="failed"):
        protoc_decode(b"\xff\xff", "traces")


def test_descriptor_set_lists_dependencies_first():
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(descriptor_set())
    names = [f.name for f in fds.file]
    assert len(names) == len(set(names))
    for i, f in enumerate(fds.file):
        for dep in f.dependency:
            assert names.index(dep) < i
    assert "opentelemetry/proto/collector/trace/v1/trace_service.proto" in names


def test_reference_sdk_exporter_interop(receiver):
    """The official Python SDK's OTLP/HTTP exporter, a third-party client, is decoded as sent."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.url("traces"), timeout=5)))
    tracer = provider.get_tracer("interop")
    with tracer.start_as_current_span("outer") as outer:
        with tracer.start_as_current_span("inner", attributes={"n": 3}) as inner:
            pass
    provider.shutdown()
    got = receiver.wait_for(lambda g: len(g["spans"]) == 2, timeout=5)
    spans = {s["name"]: s for s in got["spans"]}
    oc, ic = outer.get_span_context(), inner.get_span_context()
    assert spans["outer"]["trace_id"] == f"{oc.trace_id:032x}"
    assert spans["outer"]["span_id"] == f"{oc.span_id:016x}"
    assert spans["outer"]["parent_span_id"] == ""
    assert spans["inner"]["parent_span_id"] == f"{oc.span_id:016x}"
    assert spans["inner"]["span_id"] == f"{ic.span_id:016x}"
    assert spans["inner"]["attributes"] == {"n": 3}
    assert spans["inner"]["service"] == "sdk-svc"
    assert spans["inner"]["scope"] == "interop"
    assert got["errors"] == []


# -- file exporter lines ------------------------------------------------------------

def test_jsonl_load_dir_matches_receiver_normalization(receiver, tmp_path):
    reqs = [("traces", trace_request([{"name": "a", "parent": PARENT_ID}])),
            ("logs", log_request([{"body": "l1", "trace_id": TRACE_ID, "span_id": SPAN_ID}])),
            ("metrics", metric_request()),
            ("traces", trace_request([{"name": "b", "span_id": "1111111111111111"}]))]
    files = {"traces": "traces-000.jsonl", "logs": "logs-000.jsonl", "metrics": "metrics-000.jsonl"}
    for signal, req in reqs:
        with open(tmp_path / files[signal], "a") as f:
            f.write(json.dumps(to_otlp_json(req)) + "\n")
        assert post(receiver.url(signal), req.SerializeToString())[0] == 200
    (tmp_path / "notes.txt").write_text("ignored\n")
    got = jsonl.load_dir(str(tmp_path))
    via_http = receiver.received()
    for key in ("spans", "logs", "metrics"):
        assert got[key] == via_http[key], key
    assert [s["name"] for s in got["spans"]] == ["a", "b"]
    assert len(got["requests"]) == 4 and got["errors"] == []


def test_jsonl_is_strict_and_names_the_line(tmp_path):
    good = json.dumps(to_otlp_json(log_request([{"body": "ok"}])))
    bad = good.replace('"severityNumber": 9', '"severityNumber": "SEVERITY_NUMBER_INFO"')
    assert bad != good
    (tmp_path / "logs.jsonl").write_text(good + "\n\n" + bad + "\n")
    with pytest.raises(OtlpDecodeError, match=r"logs\.jsonl:3.*enums are integers"):
        jsonl.load_dir(str(tmp_path))
    (tmp_path / "logs.jsonl").write_text(good + "\n" + good)  # torn last line
    with pytest.raises(OtlpDecodeError, match=r"logs\.jsonl:2.*no newline"):
        jsonl.load_dir(str(tmp_path))
    (tmp_path / "logs.jsonl").write_text('{"resourceThings": []}\n')
    with pytest.raises(OtlpDecodeError, match="want exactly one of"):
        jsonl.load_dir(str(tmp_path))
    (tmp_path / "logs.jsonl").write_text(good + "\n")
    assert [entry["body"] for entry in jsonl.load_dir(str(tmp_path))["logs"]] == ["ok"]


def test_cors_credentials_echoes_the_origin(receiver_factory):
    r = receiver_factory(cors="credentials")
    req = urllib.request.Request(r.url("traces"), method="OPTIONS", headers={
        "Origin": "http://127.0.0.1:9", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:9"
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    status, headers, _ = post(r.url("traces"), trace_request([{"name": "s"}]).SerializeToString(),
                              headers={"Origin": "http://127.0.0.1:9"})
    assert (status, headers["Access-Control-Allow-Origin"], headers["Access-Control-Allow-Credentials"]) == \
        (200, "http://127.0.0.1:9", "true")
    assert len(r.received()["spans"]) == 1
