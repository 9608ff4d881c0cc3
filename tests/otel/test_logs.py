"""Logs: the OTel logs API and opentelemetry-instrumentation-logging (its trace-id injection and its bridge
handler) on polytel; and everything before bootstrap follows polytel's phase rules."""
from conftest import of_service, run_worker, spans_of, worker_env

BRIDGE = r"""
import json, logging
import polytel, polytel.otel
polytel.bootstrap_worker()
polytel.otel.install()
from opentelemetry import _logs, trace
from opentelemetry.instrumentation.logging import LoggingInstrumentor
out = {}
tr = trace.get_tracer("lib.logs")

# 1. polytel's LoggingHandler on the root logger, the instrumentation injecting the trace ids (no handler of its own).
LoggingInstrumentor().instrument(inject_trace_context=True, enable_log_auto_instrumentation=False)
root = logging.getLogger()
root.setLevel(logging.DEBUG)
h = polytel.LoggingHandler()
root.addHandler(h)
with tr.start_as_current_span("with-handler") as sp:
    logging.getLogger("app.orders").info("order %s placed", 42, extra={"order": 42})
    out["handler_span"] = "%016x" % sp.get_span_context().span_id
root.removeHandler(h)
LoggingInstrumentor().uninstrument()

# 2. The instrumentation's own bridge handler (its default), through polytel's LoggerProvider.
LoggingInstrumentor().instrument()
with tr.start_as_current_span("with-bridge") as sp:
    with polytel.span("pt-inner") as inner:
        logging.getLogger("app.bridge").warning("careful", extra={"k": "v"})
        out["bridge_span"] = inner.span_id
LoggingInstrumentor().uninstrument()

# 3. The logs API itself.
lg = _logs.get_logger("lib.direct", "1.0")
try:
    raise RuntimeError("boom")
except RuntimeError as e:
    lg.emit(body="direct", severity_number=_logs.SeverityNumber.ERROR, attributes={"tags": ("a", "b")}, exception=e)
lg.emit(body="fine", severity_number=_logs.SeverityNumber.WARN3)
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_logging_instrumentation_and_logs_api(receiver, service):
    out = run_worker(BRIDGE, worker_env(receiver, service)).check().result()
    spans = {s["name"]: s for s in spans_of(receiver, service, 3)}
    snap = receiver.wait_for(lambda s: len(of_service(s["logs"], service)) >= 4)
    logs = {lg["body"]: lg for lg in of_service(snap["logs"], service)}

    placed = logs["order 42 placed"]
    sp = spans["with-handler"]
    assert (placed["trace_id"], placed["span_id"]) == (sp["trace_id"], sp["span_id"]) and sp["span_id"] == out["handler_span"]
    # opentelemetry-instrumentation-logging's injected fields are polytel's ids (LoggingHandler sends extras).
    assert placed["attributes"]["otelTraceID"] == sp["trace_id"]
    assert placed["attributes"]["otelSpanID"] == sp["span_id"]
    assert placed["attributes"]["otelTraceSampled"] is True
    assert placed["attributes"]["order"] == 42 and placed["scope"] == "app.orders"
    assert placed["severity_number"] == 9

    careful = logs["careful"]
    inner = spans["pt-inner"]
    assert careful["scope"] == "app.bridge" and careful["severity_number"] == 13
    assert (careful["trace_id"], careful["span_id"]) == (inner["trace_id"], inner["span_id"]) == (
        inner["trace_id"], out["bridge_span"])
    assert careful["attributes"]["k"] == "v"

    direct = logs["direct"]
    assert direct["scope"] == "lib.direct" and direct["severity_number"] == 17
    assert direct["attributes"]["tags"] == ["a", "b"]
    assert direct["attributes"]["exception.type"] == "RuntimeError"
    assert direct["attributes"]["exception.message"] == "boom"
    assert direct["attributes"]["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert direct["attributes"]["exception.stacktrace"].endswith("RuntimeError: boom")
    assert direct["trace_id"] == ""
    assert logs["fine"]["severity_number"] == 13  # WARN3 is polytel's WARN


PHASE1 = r"""
import json, os
import polytel, polytel.otel
polytel.otel.install()             # at import time: phase 1
from opentelemetry import _logs, metrics, trace
tr = trace.get_tracer("lib.early")
with tr.start_as_current_span("early-span"):
    _logs.get_logger("lib.early").emit(body="early log", severity_number=_logs.SeverityNumber.INFO)
metrics.get_meter("lib.early").create_counter("early.count").add(3)
out = {"phase_before": polytel.phase()}
if os.environ.get("BOOT"):
    polytel.bootstrap_worker()
    out["phase_after"] = polytel.phase()
polytel.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_before_bootstrap_kept_for_export(receiver, service):
    out = run_worker(PHASE1, worker_env(receiver, service, BOOT="1")).check().result()
    assert out == {"phase_before": "deferred", "phase_after": "full"}
    span = spans_of(receiver, service, 1)[0]
    assert span["name"] == "early-span"
    snap = receiver.wait_for(lambda s: of_service(s["logs"], service) and of_service(s["metrics"], service))
    log = [lg for lg in of_service(snap["logs"], service) if lg["body"] == "early log"][0]
    assert (log["trace_id"], log["span_id"]) == (span["trace_id"], span["span_id"])
    points = [m for m in of_service(snap["metrics"], service) if m["name"] == "early.count"]
    assert points and points[-1]["value"] == 3


def test_before_bootstrap_console_only(service):
    w = run_worker(PHASE1, worker_env(None, service, TELEMETRY_ENABLED=None)).check()
    assert w.result() == {"phase_before": "console"}
    assert [ln for ln in w.stderr.splitlines() if "lib.early: early log" in ln], w.stderr
