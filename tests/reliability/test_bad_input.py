"""test_bad_input — the bad-input table of docs/reliability.md, one test per row: malformed env vars, URLs, headers, huge and non-UTF-8 messages, NULLs through the C API, 100k span names, calls before init and after shutdown."""
from __future__ import annotations

import re

import pytest

from conftest import clean_env, program, run, run_python, run_ruby
from otlp_receiver import Receiver

HANG = 60


@pytest.fixture(scope="module")
def shared_receiver():
    r = Receiver().start()
    yield r
    r.stop()


def badinput(mode: str, env: dict, *args, timeout: float = HANG):
    r = run([program("badinput"), mode, *args], clean_env(env), timeout=timeout)
    assert r.returncode == 0, f"badinput {mode} crashed or failed; last call: {last_call(r)}\n{r.describe()}"
    return r, r.one("RESULT")


def last_call(r) -> str:
    calls = [ln[5:] for ln in r.stdout.splitlines() if ln.startswith("CALL ")]
    return calls[-1] if calls else "-"


def accounted(res: dict) -> None:
    assert res.get("stats_rc", 0) == 0
    assert res["recorded"] == res["exported"] + res["dropped"] + res["pending"], res
    assert res["pending"] == 0, res
    assert res["dropped"] == res["dropped_buffer_full"] + res["dropped_export"] + res["dropped_invalid"], res


def warning_lines(stderr: str, var: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if re.search(r"(?<![A-Z_])" + re.escape(var) + r"(?![A-Z_])", ln)]


# --------------------------------------------------------------- environment

OK_EXPORT = "ok"      # export still works against the receiver (the bad value changed nothing that matters)
NO_EXPORT = "none"    # export cannot work (endpoint kept at the default, telemetry off, ...): all counted
# (variable, malformed value, text the one warning line must contain, what happens to export)
ENV_ROWS = [
    ("TELEMETRY_ENABLED", "maybe", 'TELEMETRY_ENABLED="maybe"', NO_EXPORT),
    ("OTEL_SDK_DISABLED", "perhaps", 'OTEL_SDK_DISABLED="perhaps"', OK_EXPORT),
    ("OTEL_SERVICE_NAME", "bad\udcff", "expected valid UTF-8", OK_EXPORT),
    ("OTEL_SERVICE_VERSION", "v\udcfe", "expected valid UTF-8", OK_EXPORT),
    ("OTEL_RESOURCE_ATTRIBUTES", "noeq", '"noeq" (expected key=value)', OK_EXPORT),
    ("OTEL_RESOURCE_ATTRIBUTES", "=v", "empty key", OK_EXPORT),
    ("OTEL_RESOURCE_ATTRIBUTES", "e=%FF", "not valid UTF-8", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "expected an http:// or https:// URL", NO_EXPORT),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:99999", "expected an http:// or https:// URL", NO_EXPORT),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:0", "expected an http:// or https:// URL", NO_EXPORT),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:port", "expected an http:// or https:// URL", NO_EXPORT),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://hôst.example:4318", "expected an http:// or https:// URL", NO_EXPORT),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://127.0.0.1:21", "expected an http:// or https:// URL", NO_EXPORT),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:pw@127.0.0.1:1", "credentials in the URL", NO_EXPORT),
    # A bad per-signal URL keeps the default for that signal: base endpoint + /v1/<signal> (here, the receiver).
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "nope", "expected an http:// or https:// URL", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://[::1", "expected an http:// or https:// URL", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "127.0.0.1:4318/v1/metrics", "expected an http:// or https:// URL",
     OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "entry #1 (expected key=value; value not shown)", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_HEADERS", "=v", "entry #1 (empty key; value not shown)", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_HEADERS", "bad key=v", "not a valid HTTP header name", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_HEADERS", "x=a%0Ab", "control characters; value not shown", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_HEADERS", "k=" + "h" * 70000, "over the 65536-byte limit", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=b", "is not supported", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "a=b", "is not supported", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "a=b", "is not supported", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "grpc is not supported", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml", "expected http/protobuf or http/json", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "br", "expected gzip, zstd or none", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "expected an integer from 1 to 4294967295", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5", "expected an integer from 1 to 4294967295", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "99999999999999999999", "expected an integer", OK_EXPORT),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "cannot read", OK_EXPORT),
    ("OTEL_BSP_SCHEDULE_DELAY", "5s", "expected an integer from 1 to 4294967295", OK_EXPORT),
    ("OTEL_BSP_EXPORT_TIMEOUT", "x", "expected an integer", OK_EXPORT),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "-1", "expected an integer", OK_EXPORT),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "expected an integer", OK_EXPORT),
    ("OTEL_BLRP_SCHEDULE_DELAY", "1.5", "expected an integer", OK_EXPORT),
    ("OTEL_BLRP_EXPORT_TIMEOUT", "", None, OK_EXPORT),  # empty = unset: no warning
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "lots", "expected an integer", OK_EXPORT),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "4096", "is larger than OTEL_BLRP_MAX_QUEUE_SIZE", OK_EXPORT),
    ("OTEL_METRIC_EXPORT_INTERVAL", "1m", "expected an integer", OK_EXPORT),
    ("OTEL_METRIC_EXPORT_TIMEOUT", "never", "expected an integer", OK_EXPORT),
    ("OTEL_TRACES_EXPORTER", "zipkin", "OTEL_TRACES_EXPORTER", OK_EXPORT),
    ("OTEL_LOGS_EXPORTER", "kafka", "OTEL_LOGS_EXPORTER", OK_EXPORT),
    ("OTEL_METRICS_EXPORTER", "prometheus", "OTEL_METRICS_EXPORTER", OK_EXPORT),
    ("POLYTEL_EXPORTER", "kafka", "expected otlp, file or none", OK_EXPORT),
    ("POLYTEL_MAX_MEMORY", "lots", "expected a byte count", OK_EXPORT),
    ("POLYTEL_MAX_MEMORY", "100", "below the 262144-byte minimum", OK_EXPORT),
    ("POLYTEL_CONSOLE", "stdlog", "expected stderr, stdout or off", OK_EXPORT),
    ("POLYTEL_CONSOLE_FORMAT", "xml", "expected text or json", OK_EXPORT),
    ("POLYTEL_LOG_LEVEL", "verbose", "expected trace, debug, info, warn, error, fatal or off", OK_EXPORT),
]


@pytest.mark.parametrize("var,value,expect,export", ENV_ROWS,
                         ids=[f"{r[0]}={r[1][:24]!r}" for r in ENV_ROWS])
def test_malformed_env_var(shared_receiver, var, value, expect, export):
    svc = f"env-{abs(hash((var, value))) % 10**8}"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": shared_receiver.endpoint, "OTEL_SERVICE_NAME": svc, var: value}
    if var == "OTEL_SERVICE_NAME":
        env["OTEL_SERVICE_NAME"] = value
    # Where export cannot work, a short shutdown: the row is about the warning and the accounting.
    r, res = badinput("env", env)
    lines = warning_lines(r.stderr, var)
    if expect is None:
        assert lines == [], lines
    else:
        assert len(lines) == 1, f"want one line naming {var}, got {lines}\n{r.stderr[-3000:]}"
        assert expect in lines[0], lines[0]
        assert "WARN" in lines[0] or "ERROR" in lines[0], lines[0]
        if var.endswith("HEADERS") and "=" in value:
            secret = value.split("=", 1)[1]
            assert len(secret) < 3 or secret not in r.stderr + r.stdout, "a header value was printed"
    assert "\udcff" not in r.stderr
    accounted(res)
    assert res["recorded"] in (0, 20), res  # 10 logs + 10 spans, or nothing when telemetry stayed off
    if export == OK_EXPORT:
        assert res["exported"] == res["recorded"] == 20 and res["dropped"] == 0, res
    elif export == NO_EXPORT:
        assert res["exported"] == 0 and res["dropped"] == res["recorded"], res


def test_unwritable_export_dir(tmp_path):
    # POLYTEL_EXPORT_DIR under a regular file: the file exporter cannot create it. Warnings name the path; every
    # batch is dropped and counted; shutdown reports POLYTEL_EDROPPED.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    bad = blocker / "out"
    r, res = badinput("env", {"POLYTEL_EXPORTER": "file", "POLYTEL_EXPORT_DIR": str(bad)})
    accounted(res)
    assert res["exported"] == 0 and res["dropped"] == res["dropped_export"] == res["recorded"] == 20, res
    assert res["rcs"][-1] == -9, res
    assert any("cannot create" in ln and str(bad) in ln for ln in r.stderr.splitlines()), r.stderr
    assert not bad.exists()


# -------------------------------------------------------------- C API misuse

# Regressions: each of these crashed (found by this suite, fixed in 468d014); each also runs alone below.
FIXED_CRASHES = {
    # The second polytel_log() from a callsite took the cached fast path and recorded a NULL target; the
    # consumer's strlen(NULL) killed the loop thread (only with the console above the record's level).
    "polytel_log(NULL target)": "NULL target recorded by the fast path; strlen(NULL) in consumer.c decode",
    # The *_static metric functions dereferenced a NULL descriptor.
    "polytel_counter_add_static(NULL)": "NULL descriptor dereferenced (polytel_counter_add_static)",
    "polytel_gauge_set_static(NULL)": "NULL descriptor dereferenced (polytel_gauge_set_static)",
    "polytel_histogram_record_static(NULL)": "NULL descriptor dereferenced (metrics registration)",
    # A descriptor whose kind is not a polytel_metric_kind_t was snapshotted as a histogram without buckets:
    # heap-buffer-overflow read in polytel__metrics_snapshot.
    "static descriptor of an unknown kind": "unknown metric kind read as a histogram (metrics.c snapshot)",
}


def test_null_pointers_through_the_c_api(shared_receiver):
    # Every public function with NULLs, in phase none, in full, and after shutdown (console at warn: the
    # recording fast path is taken).
    r, res = badinput("nullapi", {"OTEL_EXPORTER_OTLP_ENDPOINT": shared_receiver.endpoint})
    accounted(res)
    # NULL names, unmatched ends and the like are counted, never exported as garbage.
    assert res["dropped_invalid"] > 0 and res["dropped_export"] == 0 and res["dropped_buffer_full"] == 0, res
    einval = -1
    assert einval in res["rcs"]  # polytel_span_start(NULL, NULL), polytel_stats(NULL): POLYTEL_EINVAL
    assert len(warning_lines(r.stderr, "polytel_span_end()")) == 1, "warned once, not per call"
    assert len([ln for ln in r.stdout.splitlines() if ln.startswith("CALL ")]) >= 3 * 30


@pytest.mark.parametrize("call", sorted(FIXED_CRASHES))
def test_fixed_null_api_crashes_alone(shared_receiver, call):
    r = run([program("badinput"), "nullapi"],
            clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": shared_receiver.endpoint, "BADINPUT_ONLY": call}), timeout=HANG)
    assert r.returncode == 0, f"{call}: {FIXED_CRASHES[call]}\n{r.stderr[-1500:]}"
    accounted(r.one("RESULT"))


def test_calls_before_init_and_after_shutdown(shared_receiver):
    r, res = badinput("lifecycle", {"OTEL_EXPORTER_OTLP_ENDPOINT": shared_receiver.endpoint, "POLYTEL_LOG_LEVEL": "info"})
    accounted(res)
    # Before init the first call runs phase 1 implicitly (here deferred: recorded, nothing can be sent yet);
    # flush says so (POLYTEL_ESTATE) and shutdown reports the 4 deferred events as dropped (POLYTEL_EDROPPED).
    # After shutdown the phase is "none": the console still prints, nothing is recorded (so nothing is lost
    # or counted), flush/shutdown return 0. A second shutdown is a no-op (0).
    ESTATE, EDROPPED = -4, -9
    rcs = res["rcs"]
    assert rcs[:5] == [0, 0, ESTATE, 0, EDROPPED], rcs   # span_start, span_finish, flush, stats, shutdown
    assert rcs[5:7] == [0, 0], rcs                       # phase 2, its shutdown (everything delivered)
    assert rcs[7:13] == [0, 0, 0, 0, 0, 0], rcs          # after shutdown, and shutdown twice
    assert (res["recorded"], res["exported"], res["dropped"]) == (5, 1, 4), res
    assert res["dropped_export"] == 4, res
    assert r.stderr.count("lifecycle 1") == 2, "the console works before init and after shutdown"
    got = shared_receiver.wait_for(lambda g: any(lg["body"] == "during 1" for lg in g["logs"]))
    assert [lg["body"] for lg in got["logs"] if lg["service"] == "badinput"].count("during 1") == 1


def test_one_mib_and_non_utf8_messages(receiver):
    r, res = badinput("bigmsg", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "POLYTEL_LOG_LEVEL": "info"})
    accounted(res)
    assert res["recorded"] == res["exported"] == 5 and res["dropped"] == 0, res
    assert res["truncated"] >= 1, "a message cut to fit is counted as truncated"
    got = receiver.received()
    receiver.assert_no_errors()  # every body was valid UTF-8 protobuf: the receiver decodes strictly
    bodies = [lg["body"] for lg in got["logs"]]
    assert len(bodies) == 5
    big = [b for b in bodies if b.startswith("B")]
    assert len(big) == 1 and 1000 < len(big[0]) <= 1 << 20 and set(big[0][1:]) == {"a"}
    fmt = [b for b in bodies if b.startswith("fmt:B")]
    assert len(fmt) == 1 and set(fmt[0][5:]) == {"a"}
    bad = [b for b in bodies if b.startswith("bad ")]
    assert bad == ["bad \ufffd\ufffd utf8 \ufffd( \ufffd\ufffd\ufffd end"] or (
        len(bad) == 1 and bad[0].endswith(" end") and "\ufffd" in bad[0]), bad
    assert any(b.startswith("fmt:bad ") and "\ufffd" in b for b in bodies)
    # The console line of the 1 MiB message is one line, cut with a marker, not 1 MiB of stderr.
    assert max(len(ln) for ln in r.stderr.splitlines()) < 64 * 1024


def test_every_cut_message_is_counted_and_marked(receiver):
    r, res = badinput("bigmsg", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "POLYTEL_LOG_LEVEL": "info"})
    bodies = [lg["body"] for lg in receiver.received()["logs"]]
    cut = [b for b in bodies if b.startswith(("B", "fmt:B")) and len(b) < (1 << 20)]
    assert len(cut) == 2
    assert res["truncated"] == 2, f"{len(cut)} messages arrived cut, stats.truncated = {res['truncated']}"
    long_lines = [ln for ln in r.stderr.splitlines() if "aaaaaaaa" in ln]
    assert len(long_lines) == 2 and all("[truncated" in ln for ln in long_lines), [ln[-60:] for ln in long_lines]


def test_100k_distinct_span_names(receiver, figures):
    r, res = badinput("spans", {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                "OTEL_BSP_MAX_QUEUE_SIZE": "100000", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048"},
                      100000, timeout=180)
    accounted(res)
    got = receiver.wait_for(lambda g: len(g["spans"]) >= res["exported"], timeout=60)
    names = {s["name"] for s in got["spans"]}
    assert len(got["spans"]) == res["exported"]
    assert res["exported"] + res["dropped"] == res["recorded"] == 100000, res
    assert len(names) == res["exported"], "every delivered span kept its own name"
    figures["span_names_100k"] = {"recorded": res["recorded"], "exported": res["exported"],
                                  "dropped": res["dropped"], "seconds": round(r.elapsed, 2)}


def test_thread_spans_across_block_boundaries(receiver):
    # Regression (found by the fork storm, fixed in 0d14e0d): a span begin that filled its block to the limit
    # left lim < pos, and the next event was written past the block.
    r = run([program("badinput"), "threadspans"],
            clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
                       "OTEL_BLRP_MAX_QUEUE_SIZE": "100000"}), timeout=HANG)
    assert r.returncode == 0, f"crashed (signal {-r.returncode})\n{r.stderr[-1500:]}"
    res = r.one("RESULT")
    assert res["recorded"] == res["exported"] == 200000, res
    got = receiver.wait_for(lambda g: len(g["logs"]) + len(g["spans"]) >= 200000, timeout=60)
    assert len({lg["body"] for lg in got["logs"]}) == 100000 and len(got["spans"]) == 100000


# ------------------------------------------------------------------ bindings

def test_binding_bad_messages_python(receiver):
    r = run_python(r"""
        import json, polytel
        polytel.bootstrap_worker()
        polytel.info("x" * (1 << 20))
        polytel.info(b"bytes \xff\xfe".decode("utf-8", "surrogateescape"))
        polytel.info("nul\x00inside")
        polytel.info(None)
        polytel.info(12345)
        rc = polytel.shutdown(10000)
        print("RESULT " + json.dumps({"rc": rc, **polytel.stats()}))
    """, clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "py-bad"}), HANG).ok()
    res = r.one("RESULT")
    accounted(res)
    assert res["recorded"] == res["exported"] + res["dropped"]
    bodies = [lg["body"] for lg in receiver.received()["logs"]]
    receiver.assert_no_errors()
    assert "12345" in bodies and "None" in bodies
    assert any(b.startswith("xxxx") for b in bodies)


def test_binding_bad_messages_ruby(receiver):
    r = run_ruby(r"""
        require "json"
        require "polytel"
        Polytel.bootstrap_worker
        Polytel.info("x" * (1 << 20))
        Polytel.info("bytes \xff\xfe".b)
        Polytel.info("latin1 \xe9".force_encoding("ISO-8859-1"))
        Polytel.info("nul\0inside")
        Polytel.info(nil)
        Polytel.info(12345)
        ok = Polytel.shutdown(10_000)
        puts "RESULT " + JSON.dump({ "ok" => ok }.merge(Polytel.stats.transform_keys(&:to_s)))
    """, clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "rb-bad"}), HANG).ok()
    res = r.one("RESULT")
    accounted(res)
    bodies = [lg["body"] for lg in receiver.received()["logs"]]
    receiver.assert_no_errors()
    assert "12345" in bodies
    assert any(b.startswith("xxxx") for b in bodies)
    assert any(b.startswith("latin1 ") for b in bodies)
