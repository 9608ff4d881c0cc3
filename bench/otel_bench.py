"""otel_bench.py — the same OpenTelemetry-instrumented code on four back ends, side by side in one run (a table;
never asserts a timing): the OpenTelemetry SDK (batch processors + OTLP/HTTP exporters to a local receiver),
polytel's providers (polytel.otel, exporting to the same receiver), the API's no-op default, and
contextlib.nullcontext (the floor of a `with` block). Each back end runs in its own interpreter: the API lets a
process have one global provider and one runtime context.
Env: BENCH_N (iterations, default 50000), BENCH_REPEAT (best of, default 5).
"""
import contextlib
import gc
import json
import os
import subprocess
import sys
import time

N = int(os.environ.get("BENCH_N", "50000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
CHUNK = 2048  # the SDK's default batch queue (max_queue_size): a chunk fits, so neither back end drops
HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("sdk", "polytel", "noop", "null")
CASES = ("span", "counter", "log_handler", "log_api")
TITLES = {
    "span": '`with tracer.start_as_current_span("x"): pass`',
    "counter": "`counter.add(1, {\"k\": \"v\"})`",
    "log_handler": "`logger.info(\"m\")` through the logging bridge (a logging.Handler)",
    "log_api": "logs API `Logger.emit(body=..., severity_number=INFO)`",
}


def measure(cases, between=lambda: None):
    """Best of REPEAT rounds per case, ns per iteration; rounds interleave the cases (load hits each alike). A
    round runs in chunks of CHUNK; between chunks `between()` (not counted) lets the back end export what it
    holds, so every row measures recording and queueing, not a full buffer's cheaper drop path."""
    best = {}
    for fn in cases.values():
        fn(min(N, CHUNK))  # warm-up
    between()
    for _ in range(REPEAT):
        for name, fn in cases.items():
            gc.collect()
            total = 0
            for done in range(0, N, CHUNK):
                n = min(CHUNK, N - done)
                t0 = time.perf_counter_ns()
                fn(n)
                total += time.perf_counter_ns() - t0
                between()
            dt = total / N
            best[name] = dt if name not in best else min(best[name], dt)
    return best


def loops(tracer, counter, logger, api_logger):
    import logging

    from opentelemetry._logs import SeverityNumber

    attrs = {"k": "v"}
    info = SeverityNumber.INFO
    cases = {}
    if tracer is not None:
        def span(n):
            for _ in range(n):
                with tracer.start_as_current_span("x"):
                    pass
        cases["span"] = span
    if counter is not None:
        def count(n):
            for _ in range(n):
                counter.add(1, attrs)
        cases["counter"] = count
    if logger is not None:
        logger.setLevel(logging.INFO)

        def log(n):
            for _ in range(n):
                logger.info("m")
        cases["log_handler"] = log
    if api_logger is not None:
        def emit(n):
            for _ in range(n):
                api_logger.emit(body="m", severity_number=info)
        cases["log_api"] = emit
    return cases


def child_sdk(endpoint):
    import logging

    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
    mp = MeterProvider([PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint + "/v1/metrics"))])
    lp = LoggerProvider()
    lp.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint + "/v1/logs")))
    logger = logging.getLogger("bench.sdk")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=lp))
    res = measure(loops(tp.get_tracer("bench"), mp.get_meter("bench").create_counter("bench.count"), logger,
                        lp.get_logger("bench")), lambda: (tp.force_flush(), lp.force_flush()))  # fmt: skip
    tp.shutdown(), mp.shutdown(), lp.shutdown()
    return res


def child_polytel(endpoint):
    import logging

    import polytel
    import polytel.otel

    boot = polytel.bootstrap_worker(endpoint=endpoint, service_name="otel-bench", console="off",
                                    telemetry_enabled=True)  # fmt: skip
    if boot["phase"] != "full":
        sys.exit("otel_bench: polytel bootstrap failed: %r" % (boot,))
    polytel.otel.install()
    from opentelemetry import _logs, metrics, trace

    logger = logging.getLogger("bench.polytel")
    logger.propagate = False
    logger.addHandler(polytel.LoggingHandler())
    res = measure(loops(trace.get_tracer("bench"), metrics.get_meter("bench").create_counter("bench.count"), logger,
                        _logs.get_logger("bench")), lambda: polytel.flush(timeout_ms=10000))  # fmt: skip
    polytel.shutdown()
    st = polytel.stats()
    res["_stats"] = {k: st[k] for k in ("recorded", "exported", "dropped") if k in st}
    return res


def child_noop(endpoint):
    import logging

    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._logs import LoggingHandler

    # No provider set: what `trace.get_tracer()` gives every instrumented library by default. The logging
    # bridge is the SDK's handler (the API has none) on the API's default logger provider.
    logger = logging.getLogger("bench.noop")
    logger.propagate = False
    logger.addHandler(LoggingHandler())
    return measure(loops(trace.get_tracer("bench"), metrics.get_meter("bench").create_counter("bench.count"), logger,
                         _logs.get_logger("bench")))  # fmt: skip


def child_null(endpoint):
    null = contextlib.nullcontext()

    class Null:
        def start_as_current_span(self, name):
            return null

    def add(amount, attributes=None):
        pass

    counter = type("C", (), {"add": staticmethod(add)})()
    return measure(loops(Null(), counter, None, None))


def row(name, values, ref):
    cells = []
    for b in BACKENDS:
        v = values.get(b)
        cells.append("—" if v is None else "%.0f ns" % v)
    sdk, pt, noop = values.get("sdk"), values.get("polytel"), values.get("noop")
    vs_sdk = "%.1fx cheaper" % (sdk / pt) if sdk and pt else "—"
    vs_noop = "%.2fx" % (pt / noop) if noop and pt else "—"
    return "| %s | %s | %s | %s |" % (TITLES[name], " | ".join(cells), vs_sdk, vs_noop)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        backend, endpoint = sys.argv[2], os.environ["BENCH_ENDPOINT"]
        print(json.dumps(globals()["child_" + backend](endpoint)))
        return
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "receiver"))
    from otlp_receiver import Receiver

    results = {}
    with Receiver() as rcv:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "POLYTEL_"))}
        env.update(BENCH_ENDPOINT=rcv.endpoint, OTEL_SERVICE_NAME="otel-bench", PYTHONUNBUFFERED="1")
        for b in BACKENDS:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", b], env=env,
                                 capture_output=True, text=True, timeout=1800)  # fmt: skip
            if out.returncode != 0:
                sys.stderr.write(out.stderr)
                sys.exit("otel_bench: the %s run failed" % b)
            results[b] = json.loads(out.stdout.strip().splitlines()[-1])
        received = rcv.counts()
    print("### The OpenTelemetry API on polytel (issue 16)\n")
    print("Per call, best of %d rounds of %d (chunks of %d; between chunks each back end exports what it holds, "
          "not counted), each back end in its own interpreter, one run. "
          "SDK: opentelemetry-sdk, batch processors, OTLP/HTTP exporters; polytel: `polytel.otel.install()`; "
          "both export to the same local receiver. no-op: the API with no provider set (its logging bridge: the "
          "SDK's `LoggingHandler` on the API's default logger provider).\n" % (REPEAT, N, CHUNK))
    print("| code | OTel SDK | polytel | API no-op | nullcontext | polytel vs SDK | polytel / no-op |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for c in CASES:
        print(row(c, {b: results[b].get(c) for b in BACKENDS}, None))
    st = results["polytel"].get("_stats", {})
    print("\nTargets (issue 16): polytel's span >= 10x cheaper than the SDK's, and no costlier than the no-op "
          "(polytel / no-op <= 1.0). The receiver got %s; polytel's own accounting: %s." % (
              ", ".join("%s %d" % kv for kv in sorted(received.items()) if kv[0] in ("spans", "logs", "metrics")),
              ", ".join("%s %d" % kv for kv in sorted(st.items()))))


if __name__ == "__main__":
    main()
