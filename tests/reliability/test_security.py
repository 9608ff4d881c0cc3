"""test_security — credentials never printed (failing collectors, every verbosity, C/Python/Ruby), user strings never used as format strings (Python, Ruby, wasm, C dynamic API), console control characters neutralised, TLS fail-closed in a binding.

TLS for the C library (self-signed fails closed; OTEL_EXPORTER_OTLP_CERTIFICATE trusts it) is covered by
tests/integration/test_faults.py::test_tls_self_signed_fails_closed and ::test_tls_with_custom_ca.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess

import pytest

from conftest import ROOT, clean_env, program, run, run_python, run_ruby

SECRET = "Zq9-s3cr3t-t0ken-4711"
SECRET_PCT = "Zq9-s3cr3t%2Dt0ken-4711"  # percent-encoded form: must not appear either
HANG = 60
FMT = "%s%n%x%p%d%%%.99999f%1$s{}{0}#{x}${x}"


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def no_secret(*texts: str) -> None:
    for t in texts:
        assert SECRET not in t and SECRET_PCT not in t and "s3cr3t" not in t, "a header value was printed"


# Collectors that fail in every way a client reports: refused, 401 (body echoes nothing), 503 storm, reset.
FAILURES = [
    ("refused", None),
    ("401", [{"status": 401, "count": 1000}]),
    ("503", [{"status": 503, "count": 1000, "retry_after": "0"}]),
    ("reset", [{"mode": "reset", "count": 1000}]),
]


def headers_env(endpoint: str, level: str, fmt: str) -> dict:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "POLYTEL_LOG_LEVEL": level, "POLYTEL_CONSOLE_FORMAT": fmt,
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {SECRET_PCT},x-api-key={SECRET},bad entry {SECRET}",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}


@pytest.mark.parametrize("failure,faults", FAILURES, ids=[f[0] for f in FAILURES])
def test_header_values_never_printed_c(receiver, failure, faults):
    endpoint = receiver.endpoint if faults else f"http://127.0.0.1:{closed_port()}"
    if faults:
        receiver.set_faults(faults)
    for level, fmt in (("trace", "text"), ("debug", "json")):
        r = run([program("worker_c"), "--threads", 2, "--events", 20, "--shutdown-ms", 1500],
                clean_env(headers_env(endpoint, level, fmt)), timeout=HANG)
        assert r.returncode == 0, r.describe()
        no_secret(r.stdout, r.stderr)
        assert "OTEL_EXPORTER_OTLP_HEADERS entry #3" in r.stderr, "the bad entry is named by position only"
        out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
        # A reset after the whole body went out may have been read: unconfirmed, not dropped.
        assert out["exported"] == 0 and out["dropped"] + out["unconfirmed"] == out["recorded"] > 0, out
    if faults:
        # The collector did get the credential: it is sent, just never printed.
        reqs = receiver.received()["requests"]
        assert reqs and all(q["headers"].get("x-api-key") == SECRET for q in reqs)


def test_header_values_never_printed_bindings(receiver):
    receiver.set_faults([{"status": 401, "count": 1000}])
    env = clean_env(headers_env(receiver.endpoint, "trace", "text"))
    py = run_python(f"""
        import polytel
        r = polytel.bootstrap_worker(headers={{"x-other": "{SECRET}"}})
        print(r)
        polytel.info("hello")
        polytel.shutdown(1500)
        print(polytel.stats())
    """, env, HANG).ok()
    rb = run_ruby(f"""
        require "polytel"
        p Polytel.bootstrap_worker(headers: {{ "x-other" => "{SECRET}" }})
        Polytel.info("hello")
        Polytel.shutdown(1500)
        p Polytel.stats
    """, env, HANG).ok()
    for r in (py, rb):
        no_secret(r.stdout, r.stderr)
    reqs = receiver.received()["requests"]
    assert reqs and any(q["headers"].get("x-other") == SECRET for q in reqs)


# ------------------------------------------------------------ format strings

def bodies_of(receiver, service: str) -> list[str]:
    got = receiver.wait_for(lambda g: sum(lg["service"] == service for lg in g["logs"]) >= 3, timeout=20)
    return [lg["body"] for lg in got["logs"] if lg["service"] == service]


def test_python_messages_are_not_format_strings(receiver):
    r = run_python(r"""
        import logging, sys, polytel
        polytel.bootstrap_worker()
        msg = sys.argv[1]
        polytel.info(msg)
        polytel.log(polytel.WARN, "fmt.target%s%n", msg)
        logging.getLogger("bridge").addHandler(polytel.LoggingHandler())
        logging.getLogger("bridge").setLevel(logging.INFO)
        logging.getLogger("bridge").info(msg)    # no args: the stdlib does not %-format it either
        print("RC", polytel.shutdown(10000))
    """, clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "fmt-py",
                    "POLYTEL_LOG_LEVEL": "info"}), HANG, args=(FMT,)).ok()
    assert "RC 0" in r.stdout, r.describe()
    assert bodies_of(receiver, "fmt-py").count(FMT) == 3
    assert FMT in r.stderr  # the console line shows it verbatim too


def test_ruby_messages_are_not_format_strings(receiver):
    r = run_ruby(r"""
        require "logger"
        require "polytel"
        require "polytel/logger"
        Polytel.bootstrap_worker
        msg = ARGV[0]
        Polytel.info(msg)
        Polytel.log(:warn, "fmt.target%s%n", msg)
        Polytel::Logger.new(nil, target: "bridge").info(msg)
        puts "RC #{Polytel.shutdown(10_000)}"
    """, clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "fmt-rb",
                    "POLYTEL_LOG_LEVEL": "info"}), HANG, args=(FMT,)).ok()
    assert "RC true" in r.stdout, r.describe()
    assert bodies_of(receiver, "fmt-rb").count(FMT) == 3
    assert FMT in r.stderr


WASM_INDEX = os.path.join(ROOT, "bindings", "wasm", "src", "index.js")
WASM_DIST = os.path.join(ROOT, "bindings", "wasm", "dist", "polytel_wasm.mjs")


@pytest.mark.skipif(not shutil.which("node"), reason="node not installed")
def test_wasm_messages_are_not_format_strings(receiver):
    if not os.path.exists(WASM_DIST):
        pytest.fail(f"{WASM_DIST} missing: run `make wasm-build`")
    script = f"""
        import {{ createPolytel }} from {json.dumps(WASM_INDEX)};
        const msg = process.argv.at(-1);
        const pt = await createPolytel({{ useEnv: false, telemetryEnabled: true, serviceName: 'fmt-wasm' }});
        await pt.bootstrapWorker({{ endpoint: {json.dumps(receiver.endpoint)} }});
        pt.info(msg);
        pt.logger('fmt.target%s%n').warn(msg);
        pt.error(msg, {{ k: msg }});
        console.log('RC', await pt.shutdown(10000));
    """
    p = subprocess.run(["node", "--input-type=module", "-e", script, FMT], capture_output=True, text=True,
                       timeout=HANG, env=clean_env())
    assert p.returncode == 0, p.stdout + p.stderr
    bodies = bodies_of(receiver, "fmt-wasm")
    assert bodies.count(FMT) == 3, bodies
    got = receiver.received()["logs"]
    assert any(lg["attributes"].get("k") == FMT for lg in got)
    assert {lg["scope"] for lg in got if lg["service"] == "fmt-wasm"} >= {"fmt.target%s%n"}


def test_c_dynamic_log_is_not_a_format_string(receiver):
    # polytel_log_attrs (the bindings' entry point) never interprets its message: badinput's bigmsg run logs
    # "fmt:%s" through polytel_log (a format, by contract) and raw messages through polytel_log_attrs.
    r = run([program("badinput"), "bigmsg"], clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}),
            timeout=HANG)
    assert r.returncode == 0, r.describe()
    bodies = [lg["body"] for lg in receiver.received()["logs"]]
    assert any(b.startswith("fmt:B") for b in bodies)  # polytel_log formatted its %s
    assert "nul\x00inside" in bodies or "nul\ufffdinside" in bodies or any(b.startswith("nul") for b in bodies)


# ------------------------------------------------------------ console output

def test_console_neutralises_control_characters_in_bindings():
    evil = "a\x1b[31mred\x1b[0m\rover\x07bell\x9b2Jcsi\nforged 2026-01-01T00:00:00Z ERROR polytel: fake"
    env = clean_env({"TELEMETRY_ENABLED": None, "POLYTEL_LOG_LEVEL": "info"})
    py = run_python("import sys, polytel\npolytel.info(sys.argv[1], k=sys.argv[1])", env, HANG, args=(evil,)).ok()
    rb = run_ruby("require 'polytel'\nPolytel.info(ARGV[0], k: ARGV[0])", env, HANG, args=(evil,)).ok()
    for r in (py, rb):
        for bad in ("\x1b", "\r", "\x07", "\x9b"):
            assert bad not in r.stderr, (bad, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if "red" in ln]
        assert len(lines) == 1, r.stderr  # the embedded newline cannot forge a second line
        assert "\\x1b" in lines[0] or "\\u001b" in lines[0]


# ------------------------------------------------------------------ TLS

def test_tls_fail_closed_and_custom_ca_in_python(receiver_factory):
    r = receiver_factory(tls=True)
    code = """
        import json, polytel, sys
        kw = {"certificate": sys.argv[1]} if len(sys.argv) > 1 else {}
        polytel.bootstrap_worker(**kw)
        polytel.info("over tls")
        rc = polytel.shutdown(1500)
        print("RESULT " + json.dumps({"rc": rc, **polytel.stats()}))
    """
    env = clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": r.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"})
    closed = run_python(code, env, HANG).ok().one("RESULT")
    assert closed["exported"] == 0 and closed["dropped"] == closed["recorded"] == 1, closed
    assert r.received()["logs"] == []
    trusted = run_python(code, env, HANG, args=(r.ca_path,)).ok().one("RESULT")
    assert trusted["rc"] == 0 and trusted["exported"] == 1, trusted
    assert [lg["body"] for lg in r.received()["logs"]] == ["over tls"]
