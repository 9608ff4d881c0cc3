"""Phase behaviour: TELEMETRY_ENABLED unset/true/false/bad; logs before bootstrap arrive exactly once; overrides."""
import json

import pytest
from conftest import last_points, of_service, run_worker, worker_env

DEFER = ("INFO polytel: deferring full telemetry to worker bootstrap (TELEMETRY_ENABLED=true); "
         "events are kept until then")  # fmt: skip
BAD = 'WARN polytel: invalid TELEMETRY_ENABLED="maybe" (expected true/false/1/0/yes/no/on/off); using false'
# The first run with an endpoint set and TELEMETRY_ENABLED not true says why nothing leaves.
OFF = ("INFO polytel: export is off: OTEL_EXPORTER_OTLP_ENDPOINT is set but TELEMETRY_ENABLED is not true; "
       "set TELEMETRY_ENABLED=true to export (console-only logging until then)")  # fmt: skip

WORKER = """
import json, logging, polytel
phase1 = polytel.phase()
polytel.info("before bootstrap via polytel.info", step=1)
log = logging.getLogger("early.bridge")
log.addHandler(polytel.LoggingHandler())
log.propagate = False
log.setLevel(logging.INFO)
log.info("before bootstrap via %s", "logging")
res = polytel.bootstrap_worker()
again = polytel.bootstrap_worker()
polytel.info("after bootstrap via polytel.info")
log.warning("after bootstrap via logging")
rc = polytel.shutdown(timeout_ms=5000)
print("RESULT " + json.dumps({"phase1": phase1, "res": res, "again": again, "rc": rc, "end": polytel.phase()}))
"""

BODIES = ["before bootstrap via polytel.info", "before bootstrap via logging", "after bootstrap via polytel.info",
          "after bootstrap via logging"]  # fmt: skip


def messages(worker):
    """polytel's own console lines without the timestamp: 'LEVEL polytel: text'."""
    return [ln.split(" ", 1)[1] for ln in worker.polytel_lines]


@pytest.mark.parametrize("value", [None, "false", "maybe"])
def test_telemetry_off_stays_console(receiver, service, value):
    w = run_worker(WORKER, worker_env(receiver, service, TELEMETRY_ENABLED=value)).check()
    r = w.result()
    assert r["phase1"] == "console"
    assert r["res"]["status"] == "telemetry disabled"
    assert r["res"]["phase"] == "console"
    assert r["again"]["status"] == "telemetry disabled"
    assert r["res"]["not_exporting"] == "TELEMETRY_ENABLED is not true: console only"
    assert r["rc"] == 0
    msgs = messages(w)
    assert not [m for m in msgs if "deferring" in m or "full telemetry" in m], msgs
    if value == "maybe":
        # One warning for the bad value, naming it and the value kept, though config is read at import and bootstrap.
        assert msgs == [BAD, OFF]
    else:
        assert msgs == [OFF]
    # Console logging works in phase 1: each record printed once, nothing exported.
    for body in BODIES:
        printed = [ln.split(": ", 1)[1] for ln in w.stderr.splitlines() if ": " in ln]
        assert sum(p == body or p.startswith(body + " ") for p in printed) == 1, (body, w.stderr)
    assert receiver.received()["requests"] == []


def test_telemetry_enabled_defers_then_exports_everything_once(receiver, service):
    w = run_worker(WORKER, worker_env(receiver, service, TELEMETRY_ENABLED="true")).check()
    r = w.result()
    assert r["phase1"] == "deferred"
    res = dict(r["res"])
    cfg = res.pop("config")
    base = receiver.endpoint
    assert res == {"phase": "full", "status": "started", "endpoint": base, "service": service,
                   "exporter": "otlp", "protocol": "http/protobuf", "compression": "none",
                   "endpoints": {s: base + "/v1/" + s for s in ("traces", "logs", "metrics")},
                   "export_dir": None, "not_exporting": None, "pid": r["res"]["pid"]}  # fmt: skip
    # config: what the core resolved, every option (the environment's TELEMETRY_ENABLED, the defaults)
    assert cfg["telemetry_enabled"] is True and cfg["timeout_ms"] == 10000 and cfg["sdk_language"] == "python"
    assert cfg["phase"] == "full" and cfg["endpoint"] == base and cfg["exit_timeout_ms"] == 5000
    assert r["again"]["status"] == "already running"
    assert r["again"]["phase"] == "full"
    assert r["again"]["config"] == cfg  # a repeated call shows what runs
    assert r["rc"] == 0
    assert r["end"] == "none"
    assert messages(w) == [
        DEFER,
        'INFO polytel: full telemetry: exporting to %s (http/protobuf) as service "%s"' % (receiver.endpoint, service),
    ]
    logs = of_service(receiver.received()["logs"], service)
    bodies = [lg["body"] for lg in logs]
    for body in BODIES:
        assert bodies.count(body) == 1, (body, bodies)
    assert len(logs) == len(BODIES)
    by_body = {lg["body"]: lg for lg in logs}
    assert by_body["before bootstrap via polytel.info"]["scope"] == "app"
    assert by_body["before bootstrap via polytel.info"]["attributes"] == {"step": 1}
    assert by_body["before bootstrap via logging"]["scope"] == "early.bridge"
    assert by_body["after bootstrap via logging"]["severity_text"] == "WARN"
    assert logs[0]["resource"]["telemetry.sdk.language"] == "python"
    assert logs[0]["resource"]["process.pid"] == r["res"]["pid"]
    receiver.assert_no_errors()


@pytest.mark.parametrize("value", ["1", "YES", "On"])
def test_telemetry_enabled_spellings(receiver, service, value):
    code = "import polytel; print('RESULT \"%s\"' % polytel.phase())"
    assert run_worker(code, worker_env(receiver, service, TELEMETRY_ENABLED=value)).check().result() == "deferred"


def test_bootstrap_overrides_enable_telemetry_and_protocol(receiver, service):
    """Explicit overrides beat the environment: telemetry on without TELEMETRY_ENABLED, JSON, headers, resource."""
    code = """
    import json, polytel
    res = polytel.bootstrap_worker(telemetry_enabled=True, service_name=%r, endpoint=%r, protocol="http/json",
                                   headers={"x-api-key": "s3cret"}, resource_attributes={"deployment.environment": "t,1"},
                                   timeout_ms=3000)
    with polytel.span("work"):
        polytel.info("hello")
    print("RESULT " + json.dumps({"res": res, "rc": polytel.shutdown(timeout_ms=5000)}))
    """ % (service, receiver.endpoint)
    w = run_worker(code, worker_env(None, None, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")).check()
    r = w.result()
    assert r["res"]["status"] == "started"
    assert r["res"]["endpoint"] == receiver.endpoint
    assert r["rc"] == 0
    got = receiver.received()
    assert [s["name"] for s in of_service(got["spans"], service)] == ["work"]
    assert [lg["body"] for lg in of_service(got["logs"], service)] == ["hello"]
    assert got["spans"][0]["resource"]["deployment.environment"] == "t,1"
    reqs = [q for q in got["requests"] if q["path"] in ("/v1/traces", "/v1/logs")]
    assert reqs and all(q["content_type"] == "application/json" for q in reqs)
    assert all(q["headers"].get("x-api-key") == "s3cret" for q in reqs)
    assert "s3cret" not in w.stderr  # header values are never printed


def test_file_exporter_override(tmp_path, service):
    from jsonl import load_dir

    out = tmp_path / "otlp"
    code = """
    import json, polytel
    res = polytel.bootstrap_worker(exporter="file", export_dir=%r)
    polytel.info("to a file", n=3)
    polytel.counter_add("files.written", 2)
    print("RESULT " + json.dumps({"res": res, "rc": polytel.shutdown(timeout_ms=5000)}))
    """ % str(out)
    r = run_worker(code, worker_env(None, service, TELEMETRY_ENABLED="true")).check().result()
    assert r["res"]["status"] == "started"
    assert r["res"]["endpoint"] == str(out)
    assert r["rc"] == 0
    got = load_dir(str(out))
    assert [(lg["body"], lg["attributes"]) for lg in got["logs"]] == [("to a file", {"n": 3})]
    assert [p["value"] for p in last_points(got["metrics"], "files.written").values()] == [2]


def test_bad_arguments_raise_but_repeat_never_does(receiver, service):
    code = """
    import json, polytel
    errors = []
    for kw in ({"protocol": "grpc"}, {"exporter": "kafka"}, {"no_such_option": 1}, {"timeout_ms": -5}):
        try:
            polytel.bootstrap_worker(**kw)
            errors.append(None)
        except (TypeError, ValueError) as e:
            errors.append(type(e).__name__)
    first = polytel.bootstrap_worker()
    statuses = [polytel.bootstrap_worker()["status"] for _ in range(3)]
    print("RESULT " + json.dumps({"errors": errors, "first": first["status"], "statuses": statuses,
                                  "rc": polytel.shutdown(timeout_ms=3000)}))
    """
    r = run_worker(code, worker_env(receiver, service, TELEMETRY_ENABLED="true")).check().result()
    assert r["errors"] == ["ValueError", "ValueError", "TypeError", "ValueError"]
    assert r["first"] == "started"
    assert r["statuses"] == ["already running"] * 3


def test_status_is_what_runs_not_what_was_asked(receiver, service, tmp_path):
    """The status is the core's resolved configuration: corrected values, the running endpoint on a repeat."""
    code = """
    import json, polytel
    first = polytel.bootstrap_worker(endpoint=%r, timeout_ms="2500", compression=True, bsp_schedule_delay_ms=50)
    again = polytel.bootstrap_worker(endpoint="http://127.0.0.1:9", protocol="http/json")
    print("RESULT " + json.dumps({"first": first, "again": again, "rc": polytel.shutdown(timeout_ms=5000)}))
    """ % receiver.endpoint
    r = run_worker(code, worker_env(receiver, service, TELEMETRY_ENABLED="true")).check().result()
    assert r["first"]["status"] == "started" and r["first"]["compression"] == "gzip"
    assert r["first"]["config"]["timeout_ms"] == 2500 and r["first"]["config"]["bsp_schedule_delay_ms"] == 50
    assert r["again"]["status"] == "already running"
    assert r["again"]["endpoint"] == receiver.endpoint and r["again"]["protocol"] == "http/protobuf"
    # a value the core corrects is shown corrected: no scheme, so the default is used
    code = """
    import json, polytel
    print("RESULT " + json.dumps(polytel.bootstrap_worker(endpoint="localhost:4318", exporter="none")))
    """
    res = run_worker(code, worker_env(None, service, TELEMETRY_ENABLED="true")).check().result()
    assert res["config"]["endpoint"] == "http://localhost:4318" and res["endpoint"] is None
    assert res["not_exporting"] == "the exporter is none: recording and counting only"
    # the file exporter's default directory, from the core
    code = "import json, os, polytel\nos.chdir(%r)\nprint('RESULT ' + json.dumps(polytel.bootstrap_worker(exporter='file')))" % str(
        tmp_path)
    res = run_worker(code, worker_env(None, service, TELEMETRY_ENABLED="true", POLYTEL_CONSOLE="off")).check().result()
    assert res["endpoint"] == "./polytel-out" and res["export_dir"] == "./polytel-out"


def test_exit_timeout_bad_value_warns_once(receiver, service):
    w = run_worker("import polytel", worker_env(None, service, POLYTEL_EXIT_TIMEOUT_MS="soon")).check()
    assert messages(w) == [
        'WARN polytel: invalid POLYTEL_EXIT_TIMEOUT_MS="soon" (expected an integer from 0 to 4294967295); using 5000'
    ]


def test_console_off_prints_nothing(receiver, service):
    w = run_worker(WORKER, worker_env(receiver, service, TELEMETRY_ENABLED="true", POLYTEL_CONSOLE="off")).check()
    assert w.stderr == ""
    assert json.loads(json.dumps(w.result()))["res"]["status"] == "started"
    assert len(of_service(receiver.received()["logs"], service)) == len(BODIES)

