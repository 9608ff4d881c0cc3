"""otlp_receiver — polytel's test OTLP/HTTP receiver: strict decoding with the official protos, normalization, faults, control API, CLI.

In-process:
    sys.path.insert(0, "<repo>/tests/support"); from otlp_receiver import Receiver
    r = Receiver(); r.start(); ... r.endpoint ...; r.wait_for(lambda got: got["spans"]); r.stop()

Out-of-process:
    .venv/bin/python tests/support/otlp_receiver.py --port 0 --port-file FILE [--cors] [--tls]
    then GET /_control/received, POST /_control/reset, POST /_control/faults, POST /_control/stop.

Decoding is deliberately stricter than a production collector: it exists to catch
encoder bugs. Protobuf bodies must not carry unknown fields; OTLP/JSON bodies must
use lowerCamelCase keys, hex ids, integer enums and 64-bit integers as decimal
strings. Anything else is answered 400/415 and listed in received()["errors"].
"""
from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import shutil
import signal as _signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# path -> (signal, request class, response class)
SIGNALS = {
    "/v1/traces": ("traces", trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/logs": ("logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
    "/v1/metrics": ("metrics", metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse),
}
REQUEST_CLASSES = {sig: req for (sig, req, _resp) in SIGNALS.values()}
# Top-level OTLP/JSON key -> signal (the file exporter writes one request per line).
JSON_TOP_KEYS = {"resourceSpans": "traces", "resourceLogs": "logs", "resourceMetrics": "metrics"}
ITEM_KEYS = {"traces": "spans", "logs": "logs", "metrics": "metrics"}


class OtlpDecodeError(ValueError):
    """A body that a strict OTLP receiver must refuse (answered 400)."""


# ---------------------------------------------------------------------------
# OTLP/JSON <-> protobuf JSON mapping
# ---------------------------------------------------------------------------

_INT64_TYPES = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
_UINT64_TYPES = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}
# OTLP/JSON carries these bytes fields as hex instead of proto3-JSON base64.
_HEX_ID_BYTES = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
_HEX_RE = re.compile(r"[0-9a-fA-F]*")
_INT_RE = re.compile(r"-?[0-9]+")
_UINT_RE = re.compile(r"[0-9]+")
_json_field_cache: dict[str, dict[str, FieldDescriptor]] = {}


def _json_fields(desc) -> dict[str, FieldDescriptor]:
    fields = _json_field_cache.get(desc.full_name)
    if fields is None:
        fields = {f.json_name: f for f in desc.fields}
        _json_field_cache[desc.full_name] = fields
    return fields


def _otlp_to_proto3_message(obj: Any, desc, where: str) -> dict:
    if not isinstance(obj, dict):
        raise OtlpDecodeError(f"{where}: expected a JSON object for {desc.name}, got {type(obj).__name__}")
    fields = _json_fields(desc)
    out = {}
    for key, val in obj.items():
        f = fields.get(key)
        if f is None:
            hint = " (OTLP/JSON keys are lowerCamelCase)" if key in desc.fields_by_name else ""
            raise OtlpDecodeError(f"{where}: unknown field {key!r} in {desc.full_name}{hint}")
        loc = f"{where}.{key}"
        if f.is_repeated and val is not None:
            if not isinstance(val, list):
                raise OtlpDecodeError(f"{loc}: expected a JSON array, got {type(val).__name__}")
            out[key] = [_otlp_to_proto3_value(f, x, f"{loc}[{i}]") for i, x in enumerate(val)]
        else:
            out[key] = _otlp_to_proto3_value(f, val, loc)
    return out


def _otlp_to_proto3_value(f: FieldDescriptor, val: Any, loc: str) -> Any:
    if val is None:
        return None
    t = f.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        return _otlp_to_proto3_message(val, f.message_type, loc)
    if t == FieldDescriptor.TYPE_ENUM:
        if type(val) is not int:
            raise OtlpDecodeError(f"{loc}: OTLP/JSON enums are integers, got {val!r}")
        return val
    if t in _INT64_TYPES or t in _UINT64_TYPES:
        pattern = _INT_RE if t in _INT64_TYPES else _UINT_RE
        if not isinstance(val, str) or not pattern.fullmatch(val):
            raise OtlpDecodeError(f"{loc}: 64-bit integers are decimal strings in OTLP/JSON, got {val!r}")
        return val
    if t == FieldDescriptor.TYPE_BYTES and f.json_name in _HEX_ID_BYTES:
        want = _HEX_ID_BYTES[f.json_name]
        if not isinstance(val, str):
            raise OtlpDecodeError(f"{loc}: ids are hex strings in OTLP/JSON, got {val!r}")
        if val == "":
            return val
        if len(val) != 2 * want or not _HEX_RE.fullmatch(val):
            raise OtlpDecodeError(f"{loc}: want {2 * want} hex digits, got {val!r}")
        return base64.b64encode(bytes.fromhex(val)).decode("ascii")
    return val


def _proto3_to_otlp_message(obj: dict, desc) -> dict:
    fields = _json_fields(desc)
    out = {}
    for key, val in obj.items():
        f = fields[key]
        if f.is_repeated:
            out[key] = [_proto3_to_otlp_value(f, x) for x in val]
        else:
            out[key] = _proto3_to_otlp_value(f, val)
    return out


def _proto3_to_otlp_value(f: FieldDescriptor, val: Any) -> Any:
    if f.type == FieldDescriptor.TYPE_MESSAGE:
        return _proto3_to_otlp_message(val, f.message_type)
    if f.type == FieldDescriptor.TYPE_BYTES and f.json_name in _HEX_ID_BYTES:
        return base64.b64decode(val).hex()
    return val


def to_otlp_json(message) -> dict:
    """An Export*ServiceRequest as an OTLP/JSON object (hex ids, integer enums, int64 as strings)."""
    d = json_format.MessageToDict(message, use_integers_for_enums=True, preserving_proto_field_name=False)
    return _proto3_to_otlp_message(d, message.DESCRIPTOR)


def _reject_constant(name):
    raise OtlpDecodeError(f"invalid JSON literal {name} (OTLP/JSON writes non-finite doubles as strings)")


def _no_duplicate_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise OtlpDecodeError(f"duplicate JSON key {k!r}")
        out[k] = v
    return out


def parse_otlp_json(obj: Any, signal: str, where: str = "$"):
    """Strictly parse an already-loaded OTLP/JSON object into the official request message."""
    cls = REQUEST_CLASSES[signal]
    proto3 = _otlp_to_proto3_message(obj, cls.DESCRIPTOR, where)
    msg = cls()
    try:
        json_format.ParseDict(proto3, msg)  # ignore_unknown_fields=False
    except json_format.ParseError as e:
        raise OtlpDecodeError(f"{where}: {e}") from None
    check_ids(signal, msg)
    return msg


def load_json_text(text: str | bytes) -> Any:
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise OtlpDecodeError(f"JSON body is not UTF-8: {e}") from None
    except json.JSONDecodeError as e:
        raise OtlpDecodeError(f"invalid JSON: {e}") from None


def _check_len(b: bytes, allowed: tuple[int, ...], where: str) -> None:
    if len(b) not in allowed:
        raise OtlpDecodeError(f"{where}: id is {len(b)} bytes, want {' or '.join(map(str, allowed))}")


def _check_required_id(b: bytes, n: int, where: str) -> None:
    _check_len(b, (n,), where)
    if not any(b):
        raise OtlpDecodeError(f"{where}: id is all zeros (invalid)")


def check_ids(signal: str, msg) -> None:
    """Id lengths as the OpenTelemetry Collector enforces them, plus: a span must have non-zero ids."""
    if signal == "traces":
        for i, rs in enumerate(msg.resource_spans):
            for j, ss in enumerate(rs.scope_spans):
                for k, sp in enumerate(ss.spans):
                    w = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                    _check_required_id(sp.trace_id, 16, w + ".traceId")
                    _check_required_id(sp.span_id, 8, w + ".spanId")
                    _check_len(sp.parent_span_id, (0, 8), w + ".parentSpanId")
                    for m, ln in enumerate(sp.links):
                        _check_required_id(ln.trace_id, 16, f"{w}.links[{m}].traceId")
                        _check_required_id(ln.span_id, 8, f"{w}.links[{m}].spanId")
    elif signal == "logs":
        for i, rl in enumerate(msg.resource_logs):
            for j, sl in enumerate(rl.scope_logs):
                for k, lr in enumerate(sl.log_records):
                    w = f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"
                    _check_len(lr.trace_id, (0, 16), w + ".traceId")
                    _check_len(lr.span_id, (0, 8), w + ".spanId")
    elif signal == "metrics":
        for i, rm in enumerate(msg.resource_metrics):
            for j, sm in enumerate(rm.scope_metrics):
                for k, m in enumerate(sm.metrics):
                    kind = m.WhichOneof("data")
                    if kind is None or kind == "summary":
                        continue
                    for p, dp in enumerate(getattr(m, kind).data_points):
                        for e, ex in enumerate(dp.exemplars):
                            w = f"resourceMetrics[{i}].scopeMetrics[{j}].metrics[{k}].dataPoints[{p}].exemplars[{e}]"
                            _check_len(ex.trace_id, (0, 16), w + ".traceId")
                            _check_len(ex.span_id, (0, 8), w + ".spanId")


def unzstd(body: bytes) -> bytes:
    """One or more whole zstd frames (RFC 8878), with or without a content size. Raises OtlpDecodeError."""
    import zstandard  # PyPI zstandard: libzstd's own decoder

    out, rest = [], body
    try:
        while rest:
            d = zstandard.ZstdDecompressor().decompressobj()
            out.append(d.decompress(rest))
            if not d.eof:
                raise OtlpDecodeError("Content-Encoding: zstd but the body ends inside a frame")
            rest = d.unused_data
    except zstandard.ZstdError as e:
        raise OtlpDecodeError(f"Content-Encoding: zstd but the body does not decompress: {e}") from None
    if not body:
        raise OtlpDecodeError("Content-Encoding: zstd but the body is empty")
    return b"".join(out)


def decode_body(signal: str, body: bytes, content_type: str, content_encoding: Optional[str] = None):
    """Decode one HTTP body into the official Export*ServiceRequest, strictly. Raises OtlpDecodeError."""
    if content_encoding == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as e:
            raise OtlpDecodeError(f"Content-Encoding: gzip but the body does not gunzip: {e}") from None
    elif content_encoding == "zstd":
        body = unzstd(body)
    if content_type == PROTOBUF:
        msg = REQUEST_CLASSES[signal]()
        try:
            msg.ParseFromString(body)
        except DecodeError as e:
            raise OtlpDecodeError(f"protobuf decode failed: {e}") from None
        # Unknown fields mean the encoder used a wrong field number or wire type.
        size = msg.ByteSize()
        msg.DiscardUnknownFields()
        if msg.ByteSize() != size:
            raise OtlpDecodeError("protobuf body carries fields unknown to the official schema "
                                  "(wrong field number or wire type)")
        check_ids(signal, msg)
        return msg
    if content_type == JSON:
        return parse_otlp_json(load_json_text(body), signal)
    raise OtlpDecodeError(f"unsupported Content-Type {content_type!r}")


# ---------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------

def any_value(v) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if kind == "bytes_value":
        # JSON-safe and identical in-process and over /_control: base64, as OTLP/JSON writes it.
        return base64.b64encode(v.bytes_value).decode("ascii")
    return getattr(v, kind)


def attributes(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _thread_split(kvs) -> tuple[dict, int | None, str | None]:
    """A span's or log's attributes without thread.id / thread.name, and those two (None when absent).

    Every record carries its thread (semantic conventions); suites that compare attribute dicts compare
    what the caller set, and suites about threads read thread_id / thread_name.
    """
    attrs = attributes(kvs)
    return attrs, attrs.pop("thread.id", None), attrs.pop("thread.name", None)


def _resource(r):
    res = attributes(r.resource.attributes)
    svc = res.get("service.name", "")
    return res, svc if isinstance(svc, str) else str(svc)


def normalize(signal: str, msg) -> list[dict]:
    """The flat, contract-shaped items (spans, logs or metric points) of one request, in wire order."""
    out: list[dict] = []
    if signal == "traces":
        for rs in msg.resource_spans:
            res, svc = _resource(rs)
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    attrs, tid, tname = _thread_split(sp.attributes)
                    out.append({
                        "service": svc, "resource": dict(res), "scope": ss.scope.name,
                        "scope_version": ss.scope.version, "name": sp.name,
                        "trace_id": sp.trace_id.hex(), "span_id": sp.span_id.hex(),
                        "parent_span_id": sp.parent_span_id.hex(),
                        "start_ns": sp.start_time_unix_nano, "end_ns": sp.end_time_unix_nano,
                        "status_code": sp.status.code, "status_message": sp.status.message,
                        "attributes": attrs, "thread_id": tid, "thread_name": tname,
                        "kind": sp.kind, "flags": sp.flags,
                        "trace_state": sp.trace_state,
                        "events": [{"name": ev.name, "time_ns": ev.time_unix_nano,
                                    "attributes": attributes(ev.attributes),
                                    "dropped_attributes_count": ev.dropped_attributes_count} for ev in sp.events],
                        "links": [{"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(),
                                   "trace_state": ln.trace_state, "flags": ln.flags,
                                   "attributes": attributes(ln.attributes),
                                   "dropped_attributes_count": ln.dropped_attributes_count} for ln in sp.links],
                        "dropped_attributes_count": sp.dropped_attributes_count,
                        "dropped_events_count": sp.dropped_events_count,
                        "dropped_links_count": sp.dropped_links_count,
                    })
    elif signal == "logs":
        for rl in msg.resource_logs:
            res, svc = _resource(rl)
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    attrs, tid, tname = _thread_split(lr.attributes)
                    out.append({
                        "service": svc, "resource": dict(res), "scope": sl.scope.name,
                        "body": any_value(lr.body), "severity_number": lr.severity_number,
                        "severity_text": lr.severity_text, "attributes": attrs,
                        "thread_id": tid, "thread_name": tname,
                        "trace_id": lr.trace_id.hex(), "span_id": lr.span_id.hex(),
                        "time_ns": lr.time_unix_nano, "observed_time_ns": lr.observed_time_unix_nano,
                        "flags": lr.flags, "dropped_attributes_count": lr.dropped_attributes_count,
                    })
    elif signal == "metrics":
        for rm in msg.resource_metrics:
            res, svc = _resource(rm)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.extend(_metric_points(m, svc, res, sm.scope.name))
    return out


def _metric_points(m, svc: str, res: dict, scope: str) -> list[dict]:
    kind = m.WhichOneof("data")
    if kind is None:
        return []
    data = getattr(m, kind)
    is_monotonic = bool(data.is_monotonic) if kind == "sum" else False
    temporality = data.aggregation_temporality if kind in ("sum", "histogram", "exponential_histogram") else 0
    points = []
    for dp in data.data_points:
        p = {
            "service": svc, "resource": dict(res), "scope": scope, "name": m.name, "description": m.description,
            "unit": m.unit, "type": kind, "is_monotonic": is_monotonic, "temporality": temporality,
            "attributes": attributes(dp.attributes), "value": None, "count": None, "sum": None,
            "bucket_counts": None, "explicit_bounds": None, "min": None, "max": None,
            "start_ns": dp.start_time_unix_nano, "time_ns": dp.time_unix_nano,
        }
        if kind in ("sum", "gauge"):
            which = dp.WhichOneof("value")
            p["value"] = getattr(dp, which) if which else None
        else:
            p["count"] = dp.count
            p["sum"] = dp.sum if (kind == "summary" or dp.HasField("sum")) else None
            if kind == "histogram":
                p["bucket_counts"] = list(dp.bucket_counts)
                p["explicit_bounds"] = list(dp.explicit_bounds)
            if kind == "summary":
                p["quantiles"] = [{"quantile": q.quantile, "value": q.value} for q in dp.quantile_values]
            if kind in ("histogram", "exponential_histogram"):
                p["min"] = dp.min if dp.HasField("min") else None
                p["max"] = dp.max if dp.HasField("max") else None
        points.append(p)
    return points


def empty_received() -> dict:
    return {"spans": [], "logs": [], "metrics": [], "requests": [], "errors": []}


# ---------------------------------------------------------------------------
# protoc interop
# ---------------------------------------------------------------------------

MESSAGE_ALIASES = {sig: cls.DESCRIPTOR.full_name for sig, cls in REQUEST_CLASSES.items()}
_descset_lock = threading.Lock()
_descset_path: Optional[str] = None


def descriptor_set() -> bytes:
    """A FileDescriptorSet of the official OTLP collector protos and their deps, dependencies first."""
    fds = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(fd):
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            add(dep)
        fds.file.add().ParseFromString(fd.serialized_pb)

    for cls in REQUEST_CLASSES.values():
        add(cls.DESCRIPTOR.file)
    return fds.SerializeToString()


def protoc_decode(body: bytes, message: str, protoc: str = "protoc") -> str:
    """`protoc --decode=<message>` of a protobuf body, using the official definitions (text format out).

    `message` is a full name (opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest)
    or one of "traces", "logs", "metrics".
    """
    global _descset_path
    full = MESSAGE_ALIASES.get(message, message)
    try:
        file_name = descriptor_pool.Default().FindMessageTypeByName(full).file.name
    except KeyError:
        raise ValueError(f"protoc_decode: unknown message {message!r}") from None
    exe = shutil.which(protoc)
    if exe is None:
        raise RuntimeError(f"protoc_decode: {protoc!r} not found (scripts/deps.sh installs protobuf-compiler)")
    with _descset_lock:
        if _descset_path is None or not os.path.exists(_descset_path):
            fd, path = tempfile.mkstemp(prefix="polytel-otlp-", suffix=".pb")
            with os.fdopen(fd, "wb") as f:
                f.write(descriptor_set())
            _descset_path = path
        path = _descset_path
    proc = subprocess.run([exe, f"--descriptor_set_in={path}", f"--decode={full}", file_name],
                          input=body, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"protoc --decode={full} failed ({proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode("utf-8")


# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------

FAULT_MODES = ("respond", "stall", "reset", "close", "hold")
# The rejected_* field of each signal's Export*PartialSuccess (OTLP/JSON: lowerCamelCase, int64 as a string).
PARTIAL_FIELDS = {"traces": ("rejected_spans", "rejectedSpans"), "logs": ("rejected_log_records", "rejectedLogRecords"),
                  "metrics": ("rejected_data_points", "rejectedDataPoints")}


@dataclass
class Fault:
    status: Optional[int] = None  # None: answer as if there were no fault (after delay_ms)
    count: int = 1
    retry_after: Optional[str] = None
    delay_ms: int = 0
    mode: str = "respond"
    path: Optional[str] = None  # only requests to this path (e.g. "/v1/logs"); None: any signal
    message: Optional[str] = None  # the google.rpc.Status message of an error answer
    partial: Optional[dict] = None  # a 2xx with partial_success: {"rejected": N, "message": "..."}

    @classmethod
    def parse(cls, d: Any) -> "Fault":
        if isinstance(d, Fault):
            return d
        if not isinstance(d, dict):
            raise ValueError(f"fault must be an object, got {d!r}")
        unknown = set(d) - {"status", "count", "retry_after", "delay_ms", "mode", "path", "message", "partial"}
        if unknown:
            raise ValueError(f"fault: unknown keys {sorted(unknown)}")
        f = cls(status=d.get("status"), count=d.get("count", 1), delay_ms=d.get("delay_ms", 0) or 0,
                mode=d.get("mode", "respond") or "respond", path=d.get("path"), message=d.get("message"),
                partial=d.get("partial"))
        if f.message is not None and not isinstance(f.message, str):
            raise ValueError(f"fault: message must be a string, got {f.message!r}")
        if f.partial is not None:
            if (not isinstance(f.partial, dict) or set(f.partial) - {"rejected", "message"}
                    or type(f.partial.get("rejected", 0)) is not int or f.partial.get("rejected", 0) < 0
                    or not isinstance(f.partial.get("message", ""), str)):
                raise ValueError(f"fault: partial must be {{'rejected': N >= 0, 'message': str}}, got {f.partial!r}")
            if f.status is not None and not 200 <= f.status < 300:
                raise ValueError("fault: partial goes with a 2xx status")
        ra = d.get("retry_after")
        f.retry_after = None if ra is None else str(ra)
        if f.status is not None and (type(f.status) is not int or not 100 <= f.status <= 599):
            raise ValueError(f"fault: bad status {f.status!r}")
        if type(f.count) is not int or f.count < 1:
            raise ValueError(f"fault: count must be a positive integer, got {f.count!r}")
        if type(f.delay_ms) not in (int, float) or f.delay_ms < 0:
            raise ValueError(f"fault: bad delay_ms {f.delay_ms!r}")
        if f.mode not in FAULT_MODES:
            raise ValueError(f"fault: mode must be one of {FAULT_MODES}, got {f.mode!r}")
        if f.path is not None and f.path not in SIGNALS:
            raise ValueError(f"fault: path must be one of {sorted(SIGNALS)}, got {f.path!r}")
        return f

    def as_dict(self) -> dict:
        return {"status": self.status, "count": self.count, "retry_after": self.retry_after,
                "delay_ms": self.delay_ms, "mode": self.mode, "path": self.path, "message": self.message,
                "partial": self.partial}


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "POST"),
    # A browser only lets fetch() read Retry-After if it is exposed.
    ("Access-Control-Expose-Headers", "retry-after"),
)
CORS_ALLOW_HEADERS = "content-type, content-encoding"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def partial_success_body(signal: str, rejected: int, message: str, content_type: Optional[str]) -> tuple[bytes, str]:
    """An Export*ServiceResponse carrying partial_success, in the request's encoding (protobuf by default)."""
    pb_field, json_field = PARTIAL_FIELDS[signal]
    if content_type == JSON:
        ps: dict = {json_field: str(rejected)} if rejected else {}
        if message:
            ps["errorMessage"] = message
        return json.dumps({"partialSuccess": ps}).encode(), JSON
    resp = [cls for (sig, _req, cls) in SIGNALS.values() if sig == signal][0]()
    setattr(resp.partial_success, pb_field, rejected)
    resp.partial_success.error_message = message
    return resp.SerializeToString(), PROTOBUF


def status_body(http_status: int, message: str, content_type: Optional[str]) -> tuple[bytes, str]:
    """The google.rpc.Status error body OTLP/HTTP specifies, in the request's encoding."""
    code = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 503: 14}.get(http_status, 2 if http_status >= 500 else 3)
    if content_type == JSON:
        return json.dumps({"code": code, "message": message}).encode(), JSON
    if content_type == PROTOBUF:
        m = message.encode("utf-8")
        # google.rpc.Status: code = 1 (int32), message = 2 (string)
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(m)) + m, PROTOBUF
    return (message + "\n").encode("utf-8"), "text/plain; charset=utf-8"


class _Abort(Exception):
    """Stop handling this request without answering (connection goes away)."""


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must stay bounded with stalled handlers
    allow_reuse_address = True
    receiver: "Receiver"

    def handle_error(self, request, client_address):
        # Clients that hang up, fail TLS verification, or are cut by stop() are not bugs here.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (OSError, ssl.SSLError, ValueError, _Abort)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "polytel-test-receiver/1"
    server: _Server

    # -- connection lifecycle -------------------------------------------------
    def setup(self):
        self.server.receiver._track(self.request, True)
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()  # here, in the handler thread, never in the accept loop
            except (ssl.SSLError, OSError):
                with self.server.receiver._lock:
                    self.server.receiver.handshake_failures += 1
                raise
        super().setup()

    def finish(self):
        try:
            if hasattr(self, "wfile"):
                super().finish()
        except OSError:
            pass
        finally:
            self.server.receiver._track(self.request, False)

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        if self.server.receiver.verbose:
            sys.stderr.write("otlp_receiver: %s - %s\n" % (self.address_string(), format % args))

    def end_headers(self):
        cors = self.server.receiver.cors
        if cors:
            for k, v in CORS_HEADERS:
                if k == "Access-Control-Allow-Origin" and cors == "credentials":
                    # The OpenTelemetry Collector's way (rs/cors with AllowCredentials): the origin echoed,
                    # credentials allowed, which sendBeacon's credentialed requests need.
                    v = self.headers.get("Origin") or "*"
                    self.send_header("Access-Control-Allow-Credentials", "true")
                    self.send_header("Vary", "Origin")
                self.send_header(k, v)
        super().end_headers()

    def _send(self, status: int, body: bytes = b"", content_type: Optional[str] = None, extra=()):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, obj: Any):
        self._send(status, json.dumps(obj).encode(), JSON)

    def _lower_headers(self) -> dict:
        h: dict[str, str] = {}
        for k, v in self.headers.items():
            k = k.lower()
            h[k] = f"{h[k]}, {v}" if k in h else v
        return h

    def _read_body(self, limit: Optional[int] = None) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _HttpError(400, f"bad chunk size line {line!r}") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        elif te:
            raise _HttpError(501, f"unsupported Transfer-Encoding {te!r}")
        cl = self.headers.get("Content-Length")
        if cl is None:
            raise _HttpError(411, "Content-Length required")
        try:
            n = int(cl)
            if n < 0:
                raise ValueError
        except ValueError:
            raise _HttpError(400, f"bad Content-Length {cl!r}") from None
        if limit is not None:
            n = min(n, limit)
        body = self.rfile.read(n)
        if len(body) < n and limit is None:
            raise _Abort("client closed the connection mid-body")
        return body

    # -- methods ----------------------------------------------------------------
    def do_OPTIONS(self):
        rec = self.server.receiver
        if not rec.cors:
            rec._add_error(urlsplit(self.path).path, 405, "OPTIONS (CORS preflight) but the receiver "
                           "runs without --cors", self.headers.get("Content-Type"), None)
            self._send(405, b"", None, [("Allow", "POST")])
            return
        allow = CORS_ALLOW_HEADERS
        asked = self.headers.get("Access-Control-Request-Headers")
        if asked:
            extra = [h.strip().lower() for h in asked.split(",") if h.strip()]
            extra = [h for h in extra if h not in ("content-type", "content-encoding")]
            if extra:
                allow = ", ".join([allow, *extra])
        self._send(204, b"", None, [("Access-Control-Allow-Headers", allow), ("Access-Control-Max-Age", "600")])

    def do_GET(self):
        path = urlsplit(self.path).path
        rec = self.server.receiver
        if path == "/_control/received":
            self._send_json(200, rec.received())
        elif path == "/_control/faults":
            self._send_json(200, rec.pending_faults())
        elif path == "/_control/health":
            self._send_json(200, {"ok": True, "endpoint": rec.endpoint})
        else:
            if path in SIGNALS:
                rec._add_error(path, 405, "GET on an OTLP endpoint (POST only)", None, None)
            self._send(405 if path in SIGNALS else 404, b"", None, [("Allow", "POST")] if path in SIGNALS else ())

    do_HEAD = do_GET

    def do_PUT(self):
        self._method_not_allowed()

    do_DELETE = do_PATCH = do_PUT

    def _method_not_allowed(self):
        path = urlsplit(self.path).path
        self.server.receiver._add_error(path, 405, f"{self.command} not allowed (POST only)", None, None)
        self.close_connection = True
        self._send(405, b"", None, [("Allow", "POST")])

    def do_POST(self):
        path = urlsplit(self.path).path
        try:
            if path.startswith("/_control/"):
                self._control(path)
            else:
                self._export(path)
        except _HttpError as e:
            self.close_connection = True
            self._send(e.status, (e.message + "\n").encode(), "text/plain; charset=utf-8")
        except _Abort:
            self.close_connection = True

    def _control(self, path: str):
        rec = self.server.receiver
        body = self._read_body()
        if path == "/_control/reset":
            rec.reset()
            self._send_json(200, {})
        elif path == "/_control/faults":
            try:
                faults = json.loads(body or b"[]")
                rec.set_faults(faults if isinstance(faults, list) else [faults])
            except (ValueError, TypeError) as e:
                self._send_json(400, {"error": str(e)})
                return
            self._send_json(200, rec.pending_faults())
        elif path == "/_control/stop":
            self.close_connection = True
            self._send_json(200, {})
            threading.Thread(target=rec.stop, name="otlp-receiver-stop", daemon=True).start()
        else:
            self._send_json(404, {"error": f"unknown control path {path}"})

    def _export(self, path: str):
        rec = self.server.receiver
        sig = SIGNALS.get(path)
        ctype = self.headers.get("Content-Type")
        cenc = self.headers.get("Content-Encoding")
        fault = rec._take_fault(path) if sig else None
        record = {
            "path": path, "content_type": ctype, "content_encoding": cenc, "status_returned": None,
            "bytes": 0, "headers": self._lower_headers(), "fault": fault.mode if fault else None,
            "items": 0, "error": None,
        }

        if fault and fault.mode == "stall":
            # Headers read, body never read, never answered: the client's timeout is the only way out.
            rec._record_request(record)
            rec._stop_event.wait()
            raise _Abort("stalled until stop()")
        if fault and fault.mode == "reset":
            cl = self.headers.get("Content-Length", "0")
            part = max(1, int(cl) // 2) if cl.isdigit() and int(cl) > 0 else 0
            record["bytes"] = len(self._read_body(limit=part)) if part else 0
            rec._record_request(record)
            self._rst()
            raise _Abort("reset")

        body = self._read_body()
        record["bytes"] = len(body)

        err: Optional[tuple[int, str]] = None
        msg = None
        if sig is None:
            err = (404, f"unknown path {path!r} (want /v1/traces, /v1/logs or /v1/metrics)")
        elif ctype not in (PROTOBUF, JSON):
            err = (415, f"Content-Type must be exactly {PROTOBUF!r} or {JSON!r}, got {ctype!r}")
        elif cenc in rec.refuse_encodings:
            # Worded as the OpenTelemetry Collector's confighttp words it.
            err = (rec.refuse_encodings[cenc], f"unsupported Content-Encoding: {cenc}")
        elif cenc not in (None, "gzip", "zstd", "identity"):
            err = (415, f"unsupported Content-Encoding {cenc!r}")
        else:
            try:
                msg = decode_body(sig[0], body, ctype, cenc)
            except OtlpDecodeError as e:
                err = (400, str(e))
        if err:
            record["error"] = err[1]
            rec._add_error(path, err[0], err[1], ctype, cenc)
        if rec.capture_bodies:
            rec._capture(path, ctype, cenc, body)

        if fault and fault.mode == "close":
            rec._record_request(record)
            raise _Abort("closed without a response")
        if fault and fault.delay_ms:
            if rec._stop_event.wait(fault.delay_ms / 1000.0):
                rec._record_request(record)
                raise _Abort("stopped during delay")

        extra = []
        if fault and fault.status is not None:
            status = fault.status
            if fault.retry_after is not None:
                extra.append(("Retry-After", fault.retry_after))
        elif err:
            status = err[0]
        else:
            status = 200
        record["status_returned"] = status

        items = normalize(sig[0], msg) if (msg is not None and 200 <= status < 300) else []
        partial = fault.partial if fault else None
        if partial is not None and items:
            # The collector refused these: they did not arrive as far as anyone downstream can tell.
            items = items[:max(0, len(items) - partial.get("rejected", 0))]
        record["items"] = len(items)
        if fault and fault.mode == "hold":
            # Received and kept, but the answer never comes (until stop()): the client cannot know.
            record["status_returned"] = None
            rec._record_request(record, sig[0] if sig else None, items)
            rec._stop_event.wait()
            raise _Abort("held until stop()")
        # Recorded before the answer goes out: a client that saw 200 can assert at once.
        rec._record_request(record, sig[0] if sig else None, items)

        if 200 <= status < 300:
            resp_type = ctype if ctype in (PROTOBUF, JSON) else PROTOBUF
            if partial is not None and sig:
                payload, resp_type = partial_success_body(sig[0], partial.get("rejected", 0),
                                                          partial.get("message", ""), resp_type)
            else:
                payload = b"{}" if resp_type == JSON else sig[2]().SerializeToString()
        else:
            why = err[1] if (err and not (fault and fault.status is not None)) else (
                fault.message if fault and fault.message is not None else f"injected fault: {status}")
            payload, resp_type = status_body(status, why, ctype)
        if status >= 400:
            self.close_connection = self.close_connection or status in (411, 501)
        self._send(status, payload, resp_type, extra)

    def _rst(self):
        sock = self.request
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # Drop the makefile() reference first so close() really closes (and sends RST now).
        try:
            self.rfile.close()
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass


class Receiver:
    """A strict OTLP/HTTP receiver on 127.0.0.1 (random port by default), thread-safe."""

    # cors: False, True (Access-Control-Allow-Origin: *) or "credentials" (the Origin echoed, credentials allowed).
    def __init__(self, host: str = "127.0.0.1", port: int = 0, cors: bool | str = False, tls: bool = False,
                 capture_bodies: bool = False, verbose: bool = False, client_auth: bool = False,
                 refuse_encodings: Optional[dict] = None, reuse_port: bool = False):
        self.host = host
        # SO_REUSEPORT on the listener, so procs.hold_port(port) can bind beside it before stop(): an outage
        # that keeps the port for the receiver started on it next (tests/reliability/test_outage.py).
        self.reuse_port = reuse_port
        # {"zstd": 415}: answer that status to bodies in that Content-Encoding, as a collector without it does.
        self.refuse_encodings = dict(refuse_encodings or {})
        self.port = port
        self.cors = cors
        self.tls = tls or client_auth
        self.client_auth = client_auth  # mTLS: the handshake requires a client certificate from our CA
        self.handshake_failures = 0  # TLS handshakes the server refused (e.g. no client certificate)
        self.capture_bodies = capture_bodies
        self.verbose = verbose
        self.ca_path: Optional[str] = None
        self.tls_files = None
        self._lock = threading.Lock()
        self._data = empty_received()
        self._bodies: list[dict] = []
        self._faults: list[Fault] = []
        self._conns: set = set()
        self._stop_event = threading.Event()
        self._stopped = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> "Receiver":
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), _Handler, bind_and_activate=False)
        try:
            if self.reuse_port:
                server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            server.server_bind()
            server.server_activate()
        except OSError as e:
            server.server_close()
            raise OSError(e.errno, f"test receiver: cannot listen on {self.host}:{self.port}: {e.strerror}") from None
        server.receiver = self
        if self.tls:
            import tls as _tls  # sibling module

            self.tls_files = _tls.make_certs()
            self.ca_path = self.tls_files.ca_cert
            ctx = _tls.server_context(self.tls_files, client_auth=self.client_auth)
            server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"otlp-receiver-{self.port}", daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "127.0.0.1" if self.host in ("127.0.0.1", "0.0.0.0", "") else self.host
        return f"{scheme}://{host}:{self.port}"

    def url(self, signal: str) -> str:
        """The full export URL of a signal ("traces", "logs" or "metrics")."""
        return f"{self.endpoint}/v1/{signal}"

    def stop(self) -> None:
        """Stop serving, and cut every open connection (stalled ones included). Bounded; idempotent."""
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            if self._thread is not None:  # a concurrent stop() is finishing
                self._stopped.wait(5)
            return
        self._stop_event.set()
        server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                # socket.socket.shutdown, not SSLSocket.shutdown: that one tears down SSL state
                # under a handler thread that may be inside read().
                socket.socket.shutdown(c, socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(2)
        if self.tls_files is not None:
            shutil.rmtree(self.tls_files.directory, ignore_errors=True)
        self._stopped.set()

    def wait_handshake_failures(self, n: int, timeout: float = 10) -> int:
        """Waits until at least n TLS handshakes were refused (the client may see the refusal before the
        server's handler thread has counted it); returns the count (a hang guard, never a timing)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = self.handshake_failures
            if got >= n or time.monotonic() >= deadline:
                return got
            time.sleep(0.01)

    def wait_stopped(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- state ------------------------------------------------------------------
    def received(self) -> dict:
        """A snapshot: new lists, shared item dicts (never mutated by the receiver; do not mutate them)."""
        with self._lock:
            return {k: list(v) for k, v in self._data.items()}

    def counts(self) -> dict:
        with self._lock:
            return {k: len(v) for k, v in self._data.items()}

    def request_count(self, path: Optional[str] = None) -> int:
        """Export requests seen (any outcome, faults included), to one path or all."""
        with self._lock:
            return sum(1 for r in self._data["requests"] if path is None or r["path"] == path)

    def bodies(self) -> list[dict]:
        """Raw bodies (gunzipped), with capture_bodies=True: [{"path", "content_type", "body"}]."""
        with self._lock:
            return list(self._bodies)

    def reset(self) -> None:
        """Forget everything received and every pending fault."""
        with self._lock:
            self._data = empty_received()
            self._bodies = []
            self._faults = []

    def set_faults(self, faults: list) -> None:
        """Replace the fault queue; each fault applies to the next `count` matching export requests."""
        parsed = [Fault.parse(f) for f in faults]
        with self._lock:
            self._faults = parsed

    def add_fault(self, **kw) -> None:
        f = Fault.parse(kw)
        with self._lock:
            self._faults.append(f)

    def pending_faults(self) -> list[dict]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def wait_for(self, pred: Callable[[dict], Any], timeout: float = 10.0, interval: float = 0.02) -> dict:
        """Poll received() until pred(received) is truthy and return that snapshot; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.received()
            if pred(snap):
                return snap
            if time.monotonic() >= deadline:
                raise AssertionError(f"wait_for: condition not met within {timeout}s; {self.summary(snap)}")
            time.sleep(interval)

    def summary(self, snap: Optional[dict] = None) -> str:
        snap = snap if snap is not None else self.received()
        reqs = snap["requests"]
        statuses: dict[str, int] = {}
        for r in reqs:
            key = f"{r['path']}={r['status_returned'] if r['fault'] in (None, 'respond') else r['fault']}"
            statuses[key] = statuses.get(key, 0) + 1
        errs = "; ".join(f"{e['path']} {e['status']}: {e['message']}" for e in snap["errors"][-3:])
        return (f"received spans={len(snap['spans'])} logs={len(snap['logs'])} metrics={len(snap['metrics'])} "
                f"requests={len(reqs)} {statuses} errors={len(snap['errors'])}" + (f" [{errs}]" if errs else ""))

    def assert_no_errors(self) -> None:
        errors = self.received()["errors"]
        assert not errors, f"receiver saw {len(errors)} protocol error(s): {errors[:5]}"

    # -- called by handlers --------------------------------------------------------
    def _track(self, conn, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _take_fault(self, path: str) -> Optional[Fault]:
        with self._lock:
            for i, f in enumerate(self._faults):
                if f.path is None or f.path == path:
                    f.count -= 1
                    if f.count == 0:
                        del self._faults[i]
                    return f
        return None

    def _record_request(self, record: dict, signal: Optional[str] = None, items: list = ()) -> None:
        with self._lock:
            self._data["requests"].append(record)
            if signal and items:
                self._data[ITEM_KEYS[signal]].extend(items)

    def _add_error(self, path, status, message, content_type, content_encoding) -> None:
        with self._lock:
            self._data["errors"].append({"path": path, "status": status, "message": message,
                                         "content_type": content_type, "content_encoding": content_encoding})

    def _capture(self, path, ctype, cenc, body) -> None:
        try:
            if cenc == "gzip":
                body = gzip.decompress(body)
            elif cenc == "zstd":
                body = unzstd(body)
        except (OSError, EOFError, zlib.error, OtlpDecodeError):
            pass
        with self._lock:
            self._bodies.append({"path": path, "content_type": ctype, "body": body})


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------

def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="polytel test OTLP/HTTP receiver (strict, with fault injection)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once listening (and the CA path to FILE.ca with --tls)")
    ap.add_argument("--cors", action="store_true", help="answer CORS preflights; CORS headers on every response")
    ap.add_argument("--cors-credentials", action="store_true",
                    help="like --cors, but echo the Origin and allow credentials (as the OpenTelemetry Collector does)")
    ap.add_argument("--tls", action="store_true", help="HTTPS with a CA and server certificate generated now")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--refuse-encoding", action="append", default=[], metavar="ENC[=STATUS]",
                    help="answer bodies in this Content-Encoding with STATUS (default 415), like a collector without it")
    args = ap.parse_args(argv)
    if args.port_file:  # a stale file from an earlier run must not look like "ready"
        for stale in (args.port_file, args.port_file + ".ca"):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass

    cors = "credentials" if args.cors_credentials else args.cors
    refuse = {}
    for item in args.refuse_encoding:
        enc, _, status = item.partition("=")
        refuse[enc] = int(status or 415)
    rec = Receiver(host=args.host, port=args.port, cors=cors, tls=args.tls, verbose=args.verbose,
                   refuse_encodings=refuse).start()
    if args.port_file:
        if args.tls:
            _write_atomic(args.port_file + ".ca", rec.ca_path + "\n")
        _write_atomic(args.port_file, f"{rec.port}\n")  # last: its appearance means "ready"
    sys.stderr.write(f"otlp_receiver: listening on {rec.endpoint}{' (cors)' if args.cors else ''}\n")
    sys.stderr.flush()

    def _on_signal(signum, frame):
        threading.Thread(target=rec.stop, daemon=True).start()

    _signal.signal(_signal.SIGTERM, _on_signal)
    _signal.signal(_signal.SIGINT, _on_signal)
    while not rec.wait_stopped(0.2):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
