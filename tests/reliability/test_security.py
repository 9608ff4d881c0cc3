"""test_security — credentials never printed (headers, URL userinfo and queries, in every line of every error path, C/Python/Ruby), framing headers refused, mTLS, user strings never used as format strings (Python, Ruby, wasm, C dynamic API), console control and bidi characters neutralised, TLS fail-closed in a binding.

TLS for the C library (self-signed fails closed; OTEL_EXPORTER_OTLP_CERTIFICATE trusts it) is covered by
tests/integration/test_faults.py::test_tls_self_signed_fails_closed and ::test_tls_with_custom_ca.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import pytest

from conftest import BUILD, ROOT, clean_env, program, run, run_python, run_ruby
from procs import closed_port

sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
os.environ.setdefault("POLYTEL_BUILD_DIR", BUILD)
from worker_harness import check_exact, run_worker  # noqa: E402

SECRET = "Zq9-s3cr3t-t0ken-4711"
SECRET_PCT = "Zq9-s3cr3t%2Dt0ken-4711"  # percent-encoded form: must not appear either
HANG = 60
FMT = "%s%n%x%p%d%%%.99999f%1$s{}{0}#{x}${x}"


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
        rc = polytel.shutdown(20000)
        print("RESULT " + json.dumps({"rc": rc, **polytel.stats()}))
    """
    # A failed verification ends the request at once; the timeouts only have to outlast a TLS handshake on a
    # loaded machine (hang guards: at 1 s a slow handshake is a timeout, retried, and the trusted run not done).
    env = clean_env({"OTEL_EXPORTER_OTLP_ENDPOINT": r.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "15000"})
    closed = run_python(code, env, HANG).ok().one("RESULT")
    assert closed["exported"] == 0 and closed["dropped"] == closed["recorded"] == 1, closed
    assert r.received()["logs"] == []
    trusted = run_python(code, env, HANG, args=(r.ca_path,)).ok().one("RESULT")
    assert trusted["rc"] == 0 and trusted["exported"] == 1, trusted
    assert [lg["body"] for lg in r.received()["logs"]] == ["over tls"]


# ------------------------------------------------------- credentials in URLs

CRED = "Qx7-cr3d-5ecret-0815"
CRED_FORMS = (CRED, urllib.parse.quote(CRED, safe=""), CRED.replace("-", "%2D"), "cr3d-5ecret", "5ecret")


def no_credential(text: str, where: str) -> None:
    for form in CRED_FORMS:
        for ln in text.splitlines():
            assert form not in ln, f"a credential was printed ({where}): {ln[:300]}"


def credential_env(endpoint: str) -> dict:
    """Every place a credential can hide in the configuration, pointing at `endpoint` where it can."""
    scheme, host = endpoint.split("://", 1)
    return {
        # userinfo, percent-encoded (curl would decode it) and raw: refused, the defaults kept
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"{scheme}://user%3A{CRED}%40{host}",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{scheme}://user:{CRED}@{host}/v1/metrics",
        # API keys in queries: used as given, never printed
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{endpoint}/v1/traces?api_key={CRED}",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{endpoint}/v1/logs?x=1&token={urllib.parse.quote(CRED)}",
        # a header value, a forbidden header carrying it, a malformed entry holding it
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {CRED},Host={CRED},{CRED}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
    }


def printed_lines(r) -> list[str]:
    return (r.stdout + r.stderr).splitlines()


# Every error path a collector or the local disk can take, each through the whole worker lifecycle: start-up
# line, config warnings, export warnings, the shutdown line.
CRED_PATHS = [
    ("refused", None),
    ("401", [{"status": 401, "count": 10**6}]),
    ("503", [{"status": 503, "count": 10**6, "retry_after": "0"}]),
    ("reset", [{"mode": "reset", "count": 10**6}]),
    ("stall", [{"mode": "stall", "count": 10**6}]),
    ("tls", "tls"),
    ("file", "file"),
]


@pytest.mark.parametrize("path,faults", CRED_PATHS, ids=[c[0] for c in CRED_PATHS])
def test_credentials_never_printed_c(receiver_factory, tmp_path, path, faults):
    extra: dict = {}
    rec = None
    if path == "refused":
        endpoint = f"http://127.0.0.1:{closed_port()}"
    elif path == "tls":
        endpoint = receiver_factory(tls=True).endpoint  # self-signed: verification fails
    else:
        rec = receiver_factory()
        endpoint = rec.endpoint
        if isinstance(faults, list):
            rec.set_faults(faults)
    if path == "file":
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        extra = {"POLYTEL_EXPORTER": "file", "POLYTEL_EXPORT_DIR": str(blocker / "out")}
    for level, fmt in (("trace", "text"), ("debug", "json")):
        env = clean_env({**credential_env(endpoint), **extra, "POLYTEL_LOG_LEVEL": level,
                         "POLYTEL_CONSOLE_FORMAT": fmt})
        r = run([program("worker_c"), "--threads", 1, "--events", 20, "--shutdown-ms", 1500], env, timeout=HANG)
        assert r.returncode == 0, r.describe()
        lines = printed_lines(r)
        no_credential(r.stdout + r.stderr, f"{path}, {level}/{fmt}")
        # The paths were walked: the start-up line, the refusals, and an export failure were all printed.
        assert any("full telemetry: " in ln for ln in lines), r.describe()
        assert any("credentials in the URL" in ln for ln in lines), r.describe()
        assert any(re.search(r"\bexport|file exporter", ln) and "WARN" in ln for ln in lines), r.describe()
        out = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
        assert out["exported"] == 0 and out["recorded"] > 0, out
    if isinstance(faults, list):
        # The URLs with the API key were used (the receiver strips the query from the path): sent, never printed.
        assert {q["path"] for q in rec.received()["requests"]} >= {"/v1/traces", "/v1/logs"}


def test_credentials_never_printed_python(receiver_factory):
    r = receiver_factory()
    r.set_faults([{"status": 401, "count": 10**6}])
    code = """
        import json, polytel
        polytel.info("before bootstrap")
        polytel.bootstrap_worker()
        polytel.info("hello")
        with polytel.span("s"):
            polytel.warning("inside")
        print("RESULT " + json.dumps({"rc": polytel.shutdown(1500), **polytel.stats()}))
    """
    for endpoint in (r.endpoint, f"http://127.0.0.1:{closed_port()}"):
        for level, fmt in (("trace", "text"), ("debug", "json")):
            env = clean_env({**credential_env(endpoint), "POLYTEL_LOG_LEVEL": level, "POLYTEL_CONSOLE_FORMAT": fmt})
            res = run_python(code, env, HANG).ok()
            no_credential(res.stdout + res.stderr, f"python, {endpoint}, {level}/{fmt}")
            lines = printed_lines(res)
            assert any("full telemetry: " in ln for ln in lines), res.describe()
            assert any("credentials in the URL" in ln for ln in lines), res.describe()
            out = res.one("RESULT")
            assert out["exported"] == 0 and out["recorded"] > 0, out
    # The collector did get the credential-bearing requests (401 each).
    assert {q["path"] for q in r.received()["requests"]} >= {"/v1/traces", "/v1/logs"}


# ------------------------------------------------------------ framing headers

FORBIDDEN = {"Content-Length": "1", "Host": "evil.example", "Transfer-Encoding": "chunked", "Connection": "close",
             "content-encoding": "br", "CONTENT-TYPE": "text/plain", "Expect": "100-continue"}


def test_forbidden_headers_are_refused(receiver):
    # Regression: Content-Length=1 made the collector read 1-byte bodies (and the next request from the rest of
    # the body) while everything was counted as exported; Host would have sent the requests elsewhere.
    hdrs = ",".join(f"{k}={v}" for k, v in FORBIDDEN.items()) + ",x-kept=general"
    out = run_worker({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_HEADERS": hdrs,
                      "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "HOST=evil.example,x-kept=traces",
                      "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "20", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20"},
                     "--threads", 2, "--events", 50)
    got = receiver.received()
    check_exact(got, out, 2, 50)  # every body arrived whole: nothing cut, nothing lost
    assert got["errors"] == [], got["errors"][:3]
    for q in got["requests"]:
        h = {k.lower(): v for k, v in q["headers"].items()}
        assert h["host"] == f"127.0.0.1:{receiver.port}", h
        assert h["content-type"] in ("application/x-protobuf", "application/json"), h
        assert "transfer-encoding" not in h and "content-encoding" not in h and "expect" not in h, h
        assert h["x-kept"] == ("traces" if q["path"] == "/v1/traces" else "general"), (q["path"], h)
    lines = [ln for ln in out["stderr"].splitlines() if "a header polytel and HTTP set themselves" in ln]
    assert len(lines) == len(FORBIDDEN) + 1, out["stderr"]  # one warning each, the traces list's Host too
    for name in FORBIDDEN:
        assert sum(f"({name}:" in ln for ln in lines) == 1, (name, lines)
    for value in ("evil.example", "chunked", "100-continue", "text/plain"):
        assert value not in out["stderr"], "a header value was printed"


# --------------------------------------------------------------------- mTLS

def mtls_env(r, **extra) -> dict:
    # The request timeout outlasts a TLS handshake on a loaded machine (a hang guard; a refused handshake ends
    # the request at once).
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": r.endpoint, "OTEL_EXPORTER_OTLP_CERTIFICATE": r.ca_path,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "15000", **extra}


def refused_counted(out: dict) -> None:
    """Nothing exported; everything recorded is dropped (or, once sent, unconfirmed); nothing pending."""
    assert out["exported"] == 0 and out["pending"] == 0, out
    assert out["recorded"] == out["dropped"] + out.get("unconfirmed", 0) > 0, out


def test_mtls_client_certificate_c(receiver_factory):
    # Regression: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE / _CLIENT_KEY did nothing, so a collector that requires
    # client certificates refused every export.
    r = receiver_factory(client_auth=True)
    f = r.tls_files
    good = {"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": f.client_cert, "OTEL_EXPORTER_OTLP_CLIENT_KEY": f.client_key}
    out = run_worker(mtls_env(r, **good), "--threads", 2, "--events", 30)
    check_exact(r.received(), out, 2, 30)
    assert r.handshake_failures == 0
    # One PEM file with both, and no key variable.
    r.reset()
    out = run_worker(mtls_env(r, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=f.client_combined), "--threads", 2,
                     "--events", 30)
    check_exact(r.received(), out, 2, 30)

    # Without a client certificate the collector refuses the handshake: nothing arrives, everything counted.
    r.reset()
    out = run_worker(mtls_env(r), "--threads", 2, "--events", 20, "--shutdown-ms", 1500, timeout=60)
    assert r.received()["requests"] == [] and r.wait_handshake_failures(1) > 0
    refused_counted(out)

    # Per signal: traces present another CA's certificate (refused); logs and metrics the good one.
    r.reset()
    before = r.handshake_failures
    out = run_worker(mtls_env(r, **good, OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE=f.rogue_cert,
                              OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY=f.rogue_key),
                     "--threads", 2, "--events", 20, "--shutdown-ms", 20000, timeout=90)
    got = r.received()
    assert got["spans"] == [] and r.wait_handshake_failures(before + 1) > before
    assert len(got["logs"]) == 2 * 20 and out["exported"] == 2 * 20, out
    assert out["dropped"] + out.get("unconfirmed", 0) == 2 * 2 * 20, out
    assert got["metrics"], "metrics go with the general certificate"


def test_mtls_bad_files_warn_without_content(receiver_factory, tmp_path):
    r = receiver_factory(client_auth=True)
    key_text = open(r.tls_files.client_key).read()
    env = mtls_env(r, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=str(tmp_path / "missing.pem"),
                   OTEL_EXPORTER_OTLP_CLIENT_KEY=key_text)  # the key itself pasted instead of its path
    out = run_worker(env, "--threads", 1, "--events", 10, "--shutdown-ms", 1500, timeout=60)
    lines = out["stderr"].splitlines()
    assert sum("cannot read OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=" in ln and "missing.pem" in ln
               for ln in lines) == 1, out["stderr"]
    assert sum("invalid OTEL_EXPORTER_OTLP_CLIENT_KEY (PEM data" in ln for ln in lines) == 1, out["stderr"]
    body = "".join(key_text.splitlines()[1:-1])
    assert body[:20] not in out["stderr"] and "PRIVATE KEY" not in out["stderr"], "key material was printed"
    assert r.received()["requests"] == []
    refused_counted(out)


def test_mtls_in_python(receiver_factory):
    r = receiver_factory(client_auth=True)
    f = r.tls_files
    code = """
        import json, polytel
        polytel.bootstrap_worker()
        polytel.info("mutual")
        print("RESULT " + json.dumps({"rc": polytel.shutdown(20000), **polytel.stats()}))
    """
    env = clean_env(mtls_env(r, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=f.client_cert,
                             OTEL_EXPORTER_OTLP_CLIENT_KEY=f.client_key))
    out = run_python(code, env, HANG).ok().one("RESULT")
    assert out["rc"] == 0 and out["exported"] == 1, out
    assert [lg["body"] for lg in r.received()["logs"]] == ["mutual"]
    out = run_python(code.replace("20000", "1500"), clean_env(mtls_env(r)), HANG).ok().one("RESULT")
    refused_counted(out)
