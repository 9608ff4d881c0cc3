"""The stdlib logging bridge: body, levels, target, exc_info, extra, code.* attributes, span links."""
import pytest
from conftest import of_service, run_worker, worker_env
from otlp_receiver import Receiver

WORKER = """
import json, logging, polytel
polytel.bootstrap_worker()
h = polytel.LoggingHandler()
log = logging.getLogger("shop.orders")
log.addHandler(h)
log.propagate = False
log.setLevel(1)

log.log(5, "below debug")
log.debug("debug %d", 1)
log.info("order %s for %d items", "A-17", 3)
log.log(25, "between info and warning")
log.warning("stock low", extra={"sku": "X-1", "left": 2, "ratio": 0.5, "urgent": True, "tags": ["a", "b"]})
log.error("plain error")
log.critical("critical")
def place_order():
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed for %s", "missing")
place_order()
log.info("100%% sure %s", "{not a format}")
log.info({"a": 1})
with polytel.span("request") as sp:
    log.info("inside a span")
    ids = {"trace_id": sp.trace_id, "span_id": sp.span_id}
other = logging.getLogger("other.lib")
other.addHandler(h)
other.propagate = False
other.setLevel(logging.WARNING)
other.info("filtered by the logger level")
other.warning("from another logger")
h.addFilter(lambda rec: "drop me" not in rec.getMessage())
log.info("drop me")
print("RESULT " + json.dumps({"ids": ids, "rc": polytel.shutdown(timeout_ms=5000)}))
"""


@pytest.fixture(scope="module")
def bridge():
    """One worker run for the whole module; each test checks one aspect of what arrived."""
    receiver, service = Receiver().start(), "py-logging-bridge"
    try:
        yield run(receiver, service)
    finally:
        receiver.stop()


def run(receiver, service):
    w = run_worker(WORKER, worker_env(receiver, service, TELEMETRY_ENABLED="true", POLYTEL_LOG_LEVEL="trace")).check()
    r = w.result()
    assert r["rc"] == 0
    logs = of_service(receiver.received()["logs"], service)
    return w, r, logs, {lg["body"]: lg for lg in logs}


def test_bodies_levels_and_target(bridge):
    _, _, logs, by = bridge
    # Export keeps INFO and above (POLYTEL_LOG_LEVEL is the console's threshold only).
    assert [lg["body"] for lg in logs if lg["scope"] == "shop.orders"] == [
        "order A-17 for 3 items",
        "between info and warning",
        "stock low",
        "plain error",
        "critical",
        "lookup failed for missing",
        "100% sure {not a format}",
        "{'a': 1}",
        "inside a span",
    ]
    levels = {b: (by[b]["severity_number"], by[b]["severity_text"]) for b in by}
    assert levels["order A-17 for 3 items"] == (9, "INFO")
    assert levels["between info and warning"] == (9, "INFO")
    assert levels["stock low"] == (13, "WARN")
    assert levels["plain error"] == (17, "ERROR")
    assert levels["critical"] == (21, "FATAL")
    assert levels["lookup failed for missing"] == (17, "ERROR")
    # The logger's own level still applies; other loggers keep their names as targets.
    assert [(lg["scope"], lg["body"]) for lg in logs if lg["scope"] == "other.lib"] == [
        ("other.lib", "from another logger")
    ]
    assert len(logs) == 10
    assert "drop me" not in by  # handler filters apply


def test_extra_and_code_attributes(bridge):
    _, _, _, by = bridge
    a = by["stock low"]["attributes"]
    assert a["sku"] == "X-1"
    assert a["left"] == 2
    assert a["ratio"] == 0.5
    assert a["urgent"] is True
    assert a["tags"] == ["a", "b"]  # a list of str is an OTLP array
    assert a["code.filepath"] == "<string>"
    assert a["code.function"] == "<module>"
    assert a["code.lineno"] == 14
    assert set(a) == {"sku", "left", "ratio", "urgent", "tags", "code.filepath", "code.function", "code.lineno"}
    assert by["lookup failed for missing"]["attributes"]["code.function"] == "place_order"


def test_exc_info(bridge):
    _, _, _, by = bridge
    a = by["lookup failed for missing"]["attributes"]
    assert a["exception.type"] == "KeyError"
    assert a["exception.message"] == "'missing'"
    st = a["exception.stacktrace"]
    assert st.startswith("Traceback (most recent call last):")
    assert "in place_order" in st
    assert st.rstrip().endswith("KeyError: 'missing'")
    assert "exception.type" not in by["plain error"]["attributes"]


def test_records_link_to_the_current_span(bridge):
    _, r, _, by = bridge
    assert by["inside a span"]["trace_id"] == r["ids"]["trace_id"]
    assert by["inside a span"]["span_id"] == r["ids"]["span_id"]
    assert by["plain error"]["span_id"] in ("", "0" * 16)


def test_console_line_per_record(bridge):
    w, _, _, _ = bridge
    lines = [ln for ln in w.stderr.splitlines() if " shop.orders: " in ln]
    assert len(lines) == 11
    assert any("WARN shop.orders: stock low" in ln and "sku=X-1" in ln for ln in lines), lines
    # Below INFO reaches the console only; its level mapping shows there.
    assert " TRACE shop.orders: below debug" in lines[0]
    assert " DEBUG shop.orders: debug 1" in lines[1]
    assert " FATAL shop.orders: critical" in lines[6]
