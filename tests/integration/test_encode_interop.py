"""test_encode_interop — polytel's OTLP encoders against the official definitions.

Runs tests/support/programs/encode_dump (a fixed sample set) and checks its protobuf,
JSON and gzip bodies with third-party decoders: the official Python classes
(opentelemetry-proto), `protoc --decode` (the official descriptors, fed as a
FileDescriptorSet built from the _pb2 modules: no .proto sources are installed
anywhere on this machine), and google.protobuf.json_format.

The binary is taken from $POLYTEL_BUILD_DIR/tests/encode_dump (default: build/),
or compiled here from the encoder sources when no build has it yet.
"""
import base64
import gzip
import json
import math
import os
import re
import shutil
import struct
import subprocess

import pytest
import worker_harness  # noqa: F401 (puts tests/support on sys.path)
import otlp_receiver
from google.protobuf import json_format, text_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLASSES = {"logs": ExportLogsServiceRequest, "traces": ExportTraceServiceRequest,
           "metrics": ExportMetricsServiceRequest}


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(polytel VERSION ([0-9.]+)", f.read()).group(1)


def find_or_build_dump(tmp_path_factory):
    build = os.environ.get("POLYTEL_BUILD_DIR", os.path.join(ROOT, "build"))
    exe = os.path.join(build, "tests", "encode_dump")
    if os.path.exists(exe):
        return exe
    # No build yet: compile the same sources directly (polytel/version.h is checked in under core/include). Every
    # source is checked first, so a file moved in core/ fails here by name, not as a compiler error or a skip.
    d = tmp_path_factory.mktemp("encode_dump_build")
    src = os.path.join(ROOT, "core", "src")
    sources = [os.path.join(ROOT, "tests", "support", "programs", "encode_dump.c")] + [
        os.path.join(src, "export", f) for f in ("encode.c", "encode_pb.c", "encode_json.c", "compress.c")]
    missing = [s for s in sources if not os.path.isfile(s)]
    assert not missing, f"{exe} is not built and the fallback compile's sources are missing: {missing} " \
                        "(moved in core/? see core/sources.txt)"
    cc = os.environ.get("CC", "cc")
    r = subprocess.run([cc, "-std=gnu11", "-O1", "-D_GNU_SOURCE", "-DPOLYTEL_WITH_UV=1", "-I",
                        os.path.join(ROOT, "core", "include"), "-I", src, *sources, "-lisal", "-lzstd", "-lm",
                        "-o", str(d / "encode_dump")], capture_output=True, text=True)
    assert r.returncode == 0, f"{exe} is not built and compiling it from {sources} failed:\n{r.stderr[-4000:]}"
    return str(d / "encode_dump")


@pytest.fixture(scope="module")
def bodies(tmp_path_factory):
    exe = find_or_build_dump(tmp_path_factory)
    out = tmp_path_factory.mktemp("encode_dump_out")
    subprocess.run([exe, str(out)], check=True, timeout=60)
    res = {}
    for stem in CLASSES:
        res[stem] = {ext: (out / f"{stem}.{ext}").read_bytes() for ext in ("pb", "json", "pb.gz")}
    return res


def decode(stem, body):
    m = CLASSES[stem]()
    m.ParseFromString(body)
    return m


def attrs(kvs):
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def descriptor_set_file(tmp_path):
    # The receiver's FileDescriptorSet of the official protos (one builder for both suites).
    p = tmp_path / "otlp.descset"
    p.write_bytes(otlp_receiver.descriptor_set())
    return p


# ------------------------------------------------------------------ protobuf


@pytest.mark.parametrize("stem", list(CLASSES))
def test_pb_is_canonical(bodies, stem):
    """The official serializer re-encodes our bytes identically: field order, defaults, packing all match."""
    raw = bodies[stem]["pb"]
    assert decode(stem, raw).SerializeToString() == raw


@pytest.mark.parametrize("stem", list(CLASSES))
def test_protoc_decode(bodies, stem, tmp_path):
    protoc = shutil.which("protoc")
    assert protoc, "protoc not installed (scripts/deps.sh installs protobuf-compiler)"
    cls = CLASSES[stem]
    descset = descriptor_set_file(tmp_path)
    proc = subprocess.run([protoc, f"--descriptor_set_in={descset}", f"--decode={cls.DESCRIPTOR.full_name}",
                           cls.DESCRIPTOR.file.name], input=bodies[stem]["pb"], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    text = proc.stdout.decode()
    # protoc names the enums and fields itself, from the official descriptors.
    expect = {
        "traces": ["kind: SPAN_KIND_INTERNAL", "code: STATUS_CODE_ERROR", 'message: "timeout \\"db\\""',
                   'name: "polytel"', "start_time_unix_nano: 1700000001000000000", 'name: "GET /users"'],
        "logs": ["severity_number: SEVERITY_NUMBER_INFO", "severity_number: SEVERITY_NUMBER_FATAL",
                 'severity_text: "WARN"', "time_unix_nano: 1700000000000000001", 'name: "app.db"',
                 "int_value: -9223372036854775808"],
        "metrics": ["aggregation_temporality: AGGREGATION_TEMPORALITY_CUMULATIVE", "is_monotonic: true",
                    "as_int: 42", "as_double: 21.5", "count: 4", "explicit_bounds: 10000", "max: 12000"],
    }[stem]
    for needle in expect:
        assert needle in text, f"{needle!r} not in protoc output:\n{text}"
    # protoc's reading, parsed back, is the same message as the Python runtime's reading.
    via_protoc = text_format.Parse(text, cls())
    assert via_protoc.SerializeToString() == bodies[stem]["pb"]
    # And --decode_raw sees no unknown wire types or truncated fields.
    raw = subprocess.run([protoc, "--decode_raw"], input=bodies[stem]["pb"], capture_output=True, timeout=60)
    assert raw.returncode == 0, raw.stderr.decode(errors="replace")


def test_pb_logs_values(bodies):
    m = decode("logs", bodies["logs"]["pb"])
    assert len(m.resource_logs) == 1
    rl = m.resource_logs[0]
    assert attrs(rl.resource.attributes) == {"service.name": "encode-dump", "host.cores": 2, "sample.ratio": 0.25,
                                             "debug": True}
    # One scope per target, in order of first appearance; records in order within a target.
    assert [(s.scope.name, s.scope.version) for s in rl.scope_logs] == [("app.http", ""), ("app.db", ""), ("", "")]
    http, db, none = rl.scope_logs
    assert [r.time_unix_nano for r in http.log_records] == [1700000000000000001, 1700000000000000003,
                                                            1700000000000000010]
    assert [r.time_unix_nano for r in db.log_records] == [1700000000000000002, 1700000000000000005]
    assert [r.time_unix_nano for r in none.log_records] == [1700000000000000004]

    r0 = http.log_records[0]
    assert r0.observed_time_unix_nano == 1700000000000000006
    assert (r0.severity_number, r0.severity_text) == (9, "INFO")
    assert r0.body.string_value == "request done"
    assert attrs(r0.attributes) == {"path": '/a"b\\c', "status": 200, "dur": 1.5, "ok": True}
    assert r0.trace_id.hex() == "0102030405060708090a0b0c0d0e0f10"
    assert r0.span_id.hex() == "aabbccddeeff0011"
    assert r0.flags == 1  # the span's trace flags: sampled
    assert r0.dropped_attributes_count == 2

    r1 = db.log_records[0]
    assert (r1.severity_number, r1.severity_text) == (13, "WARN")
    assert r1.body.string_value == "slow query\n\ttab"
    assert attrs(r1.attributes) == {"q": "SELECT \x01 ünïcødé 日本 🎉", "rows": -42, "big": -2**63, "cached": False}
    assert r1.trace_id == b"" and r1.span_id == b""  # no span: no ids at all

    r2 = http.log_records[1]
    assert (r2.severity_number, r2.severity_text) == (17, "ERROR")
    # Invalid UTF-8 becomes U+FFFD per maximal subpart, exactly as Python's "replace" does.
    bad = b"bad \xff\xfe utf8 \xe2\x82 end \xed\xa0\x80"
    assert r2.body.string_value == bad.decode("utf-8", "replace")
    a2 = attrs(r2.attributes)
    assert math.isnan(a2["nan"]) and a2["inf"] == math.inf and a2["ninf"] == -math.inf
    assert a2["tiny"] == 1e-300 and a2["third"] == 1.0 / 3.0

    r3 = none.log_records[0]
    assert (r3.severity_number, r3.severity_text, r3.body.string_value) == (1, "TRACE", "no target")
    assert r3.observed_time_unix_nano == 0

    r4 = db.log_records[1]
    assert (r4.severity_number, r4.severity_text) == (21, "FATAL")
    assert r4.HasField("body") and r4.body.WhichOneof("value") == "string_value" and r4.body.string_value == ""
    assert [(kv.key, kv.value.string_value) for kv in r4.attributes] == [("k\x7f\x1f", "tab\there\r\nnul\0end"),
                                                                        ("", "empty key")]
    r5 = http.log_records[2]
    assert (r5.severity_number, r5.severity_text) == (10, "INFO")  # INFO2 maps to the INFO range
    assert not r5.HasField("body")


def test_pb_traces_values(bodies):
    m = decode("traces", bodies["traces"]["pb"])
    rs = m.resource_spans[0]
    # One ScopeSpans per scope, in order of first appearance: polytel's own, then "billing" 2.1.
    assert len(m.resource_spans) == 1 and len(rs.scope_spans) == 2
    ss = rs.scope_spans[0]
    assert (ss.scope.name, ss.scope.version) == ("polytel", project_version())
    spans = {s.name: s for s in ss.spans}
    assert [s.name for s in ss.spans] == ["db.query", "cache.get", "GET /users", "tick"]
    root, db, cache, tick = spans["GET /users"], spans["db.query"], spans["cache.get"], spans["tick"]
    for s in ss.spans:
        assert s.kind == 1  # SPAN_KIND_INTERNAL
        assert s.flags == 0x101  # sampled; the parent is known to be local (SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE)
        assert len(s.trace_id) == 16 and len(s.span_id) == 8
        assert (s.dropped_attributes_count, s.dropped_events_count, s.dropped_links_count) == (0, 0, 0)
        assert s.trace_state == "" and list(s.events) == [] and list(s.links) == []
    assert root.trace_id.hex() == db.trace_id.hex() == cache.trace_id.hex() == "0102030405060708090a0b0c0d0e0f10"
    assert tick.trace_id.hex() == "f0e1d2c3b4a5968778695a4b3c2d1e0f"
    assert root.span_id.hex() == "aabbccddeeff0011" and root.parent_span_id == b""
    assert db.span_id.hex() == "0000000000000002" and db.parent_span_id.hex() == "aabbccddeeff0011"
    assert cache.span_id.hex() == "123456789abcdef0" and cache.parent_span_id.hex() == "0000000000000002"
    assert tick.span_id.hex() == "8000000000000001" and tick.parent_span_id == b""
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (1700000001000000000, 1700000001000001000)
    assert (db.start_time_unix_nano, db.end_time_unix_nano) == (1700000001000000100, 1700000001000000900)
    assert tick.start_time_unix_nano == tick.end_time_unix_nano == 1700000002000000000
    assert (root.status.code, root.status.message) == (1, "")
    assert (db.status.code, db.status.message) == (2, 'timeout "db"')
    assert not cache.HasField("status") and not tick.HasField("status")
    assert attrs(root.attributes) == {"http.method": "GET", "http.status_code": 200}
    assert attrs(cache.attributes) == {"key": "user:✓", "size": 9007199254740993, "hit_ratio": 0.875, "hit": True}
    assert list(tick.attributes) == []

    billing = rs.scope_spans[1]
    assert (billing.scope.name, billing.scope.version) == ("billing", "2.1")
    assert [s.name for s in billing.spans] == ["batch"]
    b = billing.spans[0]
    assert b.kind == 5  # SPAN_KIND_CONSUMER
    assert b.flags == 0x301  # sampled, the parent remote
    assert b.trace_state == "congo=t61rcWkgMzE"
    assert (b.dropped_attributes_count, b.dropped_events_count, b.dropped_links_count) == (4, 5, 6)
    arrays = {kv.key: [getattr(v, v.WhichOneof("value")) for v in kv.value.array_value.values]
              for kv in b.attributes}
    assert all(kv.value.WhichOneof("value") == "array_value" for kv in b.attributes)
    assert arrays == {"tags": ["a", "", "\u00e9\ufffd"], "ids": [1, -2, 2**63 - 1], "ratios": [0.5, -1e300],
                      "flags": [True, False, True], "none": []}
    assert [e.name for e in b.events] == ["checkpoint", "exception"]
    assert [e.time_unix_nano for e in b.events] == [1700000003000000100, 1700000003000000200]
    assert list(b.events[0].attributes) == [] and b.events[0].dropped_attributes_count == 0
    assert attrs(b.events[1].attributes) == {"exception.type": "ValueError", "exception.message": "bad",
                                             "exception.stacktrace": "Traceback:\n  line 1"}
    assert b.events[1].dropped_attributes_count == 1
    l0, l1 = b.links
    assert (l0.trace_id.hex(), l0.span_id.hex()) == ("f0e1d2c3b4a5968778695a4b3c2d1e0f", "8000000000000001")
    assert (l0.flags, l0.trace_state, l0.dropped_attributes_count) == (0x301, "rojo=00f067aa0ba902b7", 3)
    assert attrs(l0.attributes) == {"job": "7"}
    assert (l1.span_id.hex(), l1.flags, l1.trace_state, list(l1.attributes)) == ("123456789abcdef0", 0x100, "", [])


def test_pb_metrics_values(bodies):
    m = decode("metrics", bodies["metrics"]["pb"])
    sm = m.resource_metrics[0].scope_metrics
    assert len(sm) == 1 and (sm[0].scope.name, sm[0].scope.version) == ("polytel", project_version())
    ms = {x.name: x for x in sm[0].metrics}
    assert [x.name for x in sm[0].metrics] == ["http.requests", "temperature", "latency", "empty"]

    c = ms["http.requests"]
    assert c.unit == "1" and c.WhichOneof("data") == "sum"
    assert c.sum.is_monotonic and c.sum.aggregation_temporality == 2
    pts = [(attrs(p.attributes), p.WhichOneof("value"), p.as_int, p.start_time_unix_nano, p.time_unix_nano)
           for p in c.sum.data_points]
    assert pts == [({"method": "GET"}, "as_int", 42, 1700000000000000000, 1700000060000000000),
                   ({"method": "POST"}, "as_int", 7, 1700000000000000000, 1700000060000000000)]

    g = ms["temperature"]
    assert g.unit == "Cel" and g.WhichOneof("data") == "gauge"
    (gp,) = g.gauge.data_points
    assert (gp.WhichOneof("value"), gp.as_double, gp.start_time_unix_nano, gp.time_unix_nano) == \
        ("as_double", 21.5, 0, 1700000060000000000)

    h = ms["latency"]
    assert h.unit == "ms" and h.WhichOneof("data") == "histogram" and h.histogram.aggregation_temporality == 2
    (hp,) = h.histogram.data_points
    assert (hp.count, hp.sum, hp.min, hp.max) == (4, 10017.25, -1.0, 12000.0)
    assert list(hp.explicit_bounds) == [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]
    assert list(hp.bucket_counts) == [1, 0, 2] + [0] * 12 + [1]
    assert attrs(hp.attributes) == {"method": "GET"}

    e = ms["empty"]
    assert e.unit == ""
    (ep,) = e.histogram.data_points
    assert ep.count == 0 and list(ep.bucket_counts) == [0] and list(ep.explicit_bounds) == []
    assert not ep.HasField("min") and not ep.HasField("max")


# ---------------------------------------------------------------------- gzip


@pytest.mark.parametrize("stem", list(CLASSES))
def test_gzip_roundtrip(bodies, stem):
    gz = bodies[stem]["pb.gz"]
    assert gz[:3] == b"\x1f\x8b\x08"  # gzip magic + deflate, not a zlib stream
    assert gzip.decompress(gz) == bodies[stem]["pb"]
    assert struct.unpack("<I", gz[-4:])[0] == len(bodies[stem]["pb"])  # ISIZE trailer


# ---------------------------------------------------------------------- JSON

ID_KEYS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
INT64_KEYS = {"timeUnixNano", "observedTimeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "asInt",
              "intValue", "count"}
ENUM_KEYS = {"kind", "severityNumber", "code", "aggregationTemporality"}
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


def strict_loads(raw):
    def no_dupes(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys {keys}"
        return dict(pairs)

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(raw.decode("utf-8", "strict"), object_pairs_hook=no_dupes, parse_constant=no_constants)


def check_otlp_json(node, path="$"):
    """Walks every key: OTLP/JSON's spelling and typing rules."""
    if isinstance(node, list):
        for i, x in enumerate(node):
            check_otlp_json(x, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    for k, v in node.items():
        p = f"{path}.{k}"
        assert CAMEL.match(k), f"{p}: key not lowerCamelCase"
        if k in ID_KEYS:
            assert isinstance(v, str) and re.fullmatch(f"[0-9a-f]{{{ID_KEYS[k]}}}", v), f"{p}: {v!r}"
        elif k in INT64_KEYS:
            assert isinstance(v, str) and re.fullmatch(r"-?[0-9]+", v), f"{p}: 64-bit int must be a decimal string"
        elif k == "bucketCounts":
            assert all(isinstance(x, str) and x.isdigit() for x in v), f"{p}: {v!r}"
        elif k in ENUM_KEYS:
            assert type(v) is int, f"{p}: enum must be an integer, got {v!r}"
        elif k in ("doubleValue", "asDouble", "sum", "min", "max") and not isinstance(v, dict):  # Metric.sum is an object
            assert type(v) in (int, float) or v in ("NaN", "Infinity", "-Infinity"), f"{p}: {v!r}"
        elif k == "explicitBounds":
            assert all(type(x) in (int, float) for x in v), f"{p}: {v!r}"
        elif k in ("boolValue", "isMonotonic"):
            assert type(v) is bool, f"{p}: {v!r}"
        check_otlp_json(v, p)


def ids_to_base64(node):
    """OTLP/JSON's exception: ids are hex, where proto3 JSON would use base64."""
    if isinstance(node, list):
        return [ids_to_base64(x) for x in node]
    if isinstance(node, dict):
        return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in ID_KEYS else ids_to_base64(v)
                for k, v in node.items()}
    return node


@pytest.mark.parametrize("stem", list(CLASSES))
def test_json_strict_and_equals_pb(bodies, stem):
    raw = bodies[stem]["json"]
    assert not raw.endswith(b"\n")
    doc = strict_loads(raw)
    check_otlp_json(doc)
    msg = json_format.ParseDict(ids_to_base64(doc), CLASSES[stem]())
    pb = decode(stem, bodies[stem]["pb"])
    # Field by field (NaN compares unequal to itself, so compare serialized bytes, which are canonical).
    assert msg.SerializeToString() == pb.SerializeToString() == bodies[stem]["pb"]


def test_json_literal_spellings(bodies):
    logs = bodies["logs"]["json"].decode()
    assert '"intValue":"200"' in logs and '"intValue":"-9223372036854775808"' in logs
    assert '"doubleValue":"NaN"' in logs and '"doubleValue":"Infinity"' in logs
    assert '"doubleValue":"-Infinity"' in logs and '"doubleValue":1.5' in logs
    assert '"boolValue":true' in logs and '"boolValue":false' in logs
    assert '"severityNumber":13' in logs and '"timeUnixNano":"1700000000000000001"' in logs
    assert '"traceId":"0102030405060708090a0b0c0d0e0f10"' in logs and '"spanId":"aabbccddeeff0011"' in logs
    # Control characters escaped; the quote and backslash too; no raw control byte anywhere.
    assert r'"stringValue":"/a\"b\\c"' in logs
    assert r'"key":"k' + "\x7f" + r'\u001f"' in logs
    assert r'"stringValue":"tab\there\r\nnul\u0000end"' in logs
    assert r'"stringValue":"SELECT \u0001 ' in logs
    assert not re.search(r"[\x00-\x1f]", logs)
    # Invalid UTF-8 replaced (3 bytes EF BF BD each), valid multi-byte kept as is.
    assert "bad \ufffd\ufffd utf8 \ufffd end \ufffd\ufffd\ufffd" in logs
    assert "ünïcødé 日本 🎉" in logs
    traces = bodies["traces"]["json"].decode()
    assert '"kind":1' in traces and '"code":2' in traces and r'"message":"timeout \"db\""' in traces
    assert '"parentSpanId":"aabbccddeeff0011"' in traces
    assert '"startTimeUnixNano":"1700000001000000000"' in traces
    assert '"intValue":"9007199254740993"' in traces  # beyond 2^53: only a string keeps it exact
    metrics = bodies["metrics"]["json"].decode()
    assert '"asInt":"42"' in metrics and '"asDouble":21.5' in metrics
    assert '"aggregationTemporality":2' in metrics and '"isMonotonic":true' in metrics
    assert '"count":"4"' in metrics and '"bucketCounts":["1","0","2",' in metrics
    assert '"explicitBounds":[0,5,10,25,' in metrics


def test_json_log_scopes_match_pb(bodies):
    doc = strict_loads(bodies["logs"]["json"])
    scopes = [s["scope"].get("name", "") for s in doc["resourceLogs"][0]["scopeLogs"]]
    assert scopes == ["app.http", "app.db", ""]
    assert [r["timeUnixNano"] for r in doc["resourceLogs"][0]["scopeLogs"][1]["logRecords"]] == \
        ["1700000000000000002", "1700000000000000005"]
