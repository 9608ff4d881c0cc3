"""bench_python.py — the Python binding beside its anchors, one run, one table (never asserts timings).

Measures recording cost: full telemetry (phase 2) with POLYTEL_EXPORTER=none and POLYTEL_CONSOLE=off,
so nothing is printed or sent; the OpenTelemetry SDK gets the same deal (BatchSpanProcessor with an
exporter that drops everything). Run with a Python that has polytel installed (make bench-python).
Env: BENCH_N (iterations, default 200000), BENCH_REPEAT (best of, default 5), BENCH_JSON (output path).
"""
import contextlib
import gc
import json
import os
import platform
import subprocess
import sys
import time

os.environ.update(POLYTEL_EXPORTER="none", POLYTEL_CONSOLE="off", TELEMETRY_ENABLED="true")
import logging  # noqa: E402

import polytel  # noqa: E402

N = int(os.environ.get("BENCH_N", "200000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))


def measure_all(cases):
    """Best of REPEAT rounds of fn(N) per case, in ns per iteration (the for loop included on both sides).

    Rounds interleave the cases, so a load change on a shared machine hits each side alike.
    """
    best = {}
    for _ in range(REPEAT):
        for name, fn in cases.items():
            if fn is None:
                best[name] = None
                continue
            gc.collect()
            t0 = time.perf_counter_ns()
            fn(N)
            dt = (time.perf_counter_ns() - t0) / N
            best[name] = dt if best.get(name) is None else min(best[name], dt)
    return best


def import_ms(module):
    """`import module` in a fresh interpreter (median of 7), phase 1 included for polytel."""
    code = "import time; t = time.perf_counter(); import %s; print((time.perf_counter() - t) * 1000)" % module
    # Bytecode caches as after a normal install (the first run writes them if needed).
    env = {k: v for k, v in os.environ.items() if k not in ("TELEMETRY_ENABLED", "PYTHONDONTWRITEBYTECODE")}
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    runs = sorted(float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                       check=True).stdout) for _ in range(7))  # fmt: skip
    return runs[3]


def otel_tracer():
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    except ImportError:
        return None, None

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

        def shutdown(self):
            pass

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider, provider.get_tracer("bench")


def main():
    boot = polytel.bootstrap_worker(telemetry_enabled=True, exporter="none", console="off")
    if boot["phase"] != "full":
        sys.exit("bench_python: bootstrap failed: %r" % (boot,))

    null_logger = logging.getLogger("bench.null")
    null_logger.addHandler(logging.NullHandler())
    null_logger.propagate = False
    null_logger.setLevel(logging.INFO)
    bridge_logger = logging.getLogger("bench.bridge")
    bridge_logger.addHandler(polytel.LoggingHandler())
    bridge_logger.propagate = False
    bridge_logger.setLevel(logging.INFO)
    provider, tracer = otel_tracer()
    span, info, nullcontext, counter_add = polytel.span, polytel.info, contextlib.nullcontext, polytel.counter_add
    msg = "request handled"

    def b_nullcontext(n):
        for _ in range(n):
            with nullcontext():
                pass

    def b_span(n):
        for _ in range(n):
            with span("work"):
                pass

    def b_span_attrs(n):
        for i in range(n):
            with span("work", route="/a", n=i):
                pass

    def b_stdlib_null(n):
        log = null_logger.info
        for _ in range(n):
            log(msg)

    def b_info(n):
        for _ in range(n):
            info(msg)

    def b_info_attrs(n):
        for i in range(n):
            info(msg, route="/a", n=i)

    def b_bridge(n):
        log = bridge_logger.info
        for _ in range(n):
            log(msg)

    def b_counter(n):
        for _ in range(n):
            counter_add("jobs")

    def b_otel(n):
        start = tracer.start_as_current_span
        for _ in range(n):
            with start("work"):
                pass

    # Warm every path once (thread registration, caches).
    for fn in (b_nullcontext, b_span, b_stdlib_null, b_info, b_bridge, b_counter) + ((b_otel,) if tracer else ()):
        fn(100)

    r = measure_all({
        "nullcontext": b_nullcontext,
        "span": b_span,
        "span_attrs": b_span_attrs,
        "stdlib_nullhandler": b_stdlib_null,
        "polytel_info": b_info,
        "polytel_info_attrs": b_info_attrs,
        "logging_bridge": b_bridge,
        "counter_add": b_counter,
        "otel_sdk_span": b_otel if tracer else None,
    })
    if provider:
        provider.shutdown()
    r["import_polytel_ms"] = import_ms("polytel")
    r["import_logging_ms"] = import_ms("logging")
    stats = polytel.stats()
    polytel.shutdown(timeout_ms=2000)

    rows = [
        ('with polytel.span("work")', r["span"], "with contextlib.nullcontext()", r["nullcontext"], 3.0, "<="),
        ("polytel.info(msg)", r["polytel_info"], "logging .info(msg) -> NullHandler", r["stdlib_nullhandler"],
         0.1, "<="),
        ("logging .info -> LoggingHandler", r["logging_bridge"], "logging .info(msg) -> NullHandler",
         r["stdlib_nullhandler"], 1.25, "<="),
        ('with polytel.span("work")', r["span"], "OTel SDK span (BatchSpanProcessor)", r["otel_sdk_span"],
         1 / 20, "<="),
        ("polytel.info(msg, 2 attrs)", r["polytel_info_attrs"], "logging .info(msg) -> NullHandler",
         r["stdlib_nullhandler"], None, ""),
        ('with polytel.span("work", 2 attrs)', r["span_attrs"], "with contextlib.nullcontext()", r["nullcontext"],
         None, ""),
        ('polytel.counter_add("jobs")', r["counter_add"], "with contextlib.nullcontext()", r["nullcontext"], None, ""),
    ]  # fmt: skip
    print()
    print("Python binding — full telemetry, POLYTEL_EXPORTER=none, POLYTEL_CONSOLE=off: recording cost only")
    print("python %s, polytel %s, %d iterations, best of %d, ns per call (loop included)"
          % (platform.python_version(), polytel.__version__, N, REPEAT))  # fmt: skip
    print()
    fmt = "%-36s %10s   %-36s %10s %8s   %s"
    print(fmt % ("polytel", "ns/op", "beside", "ns/op", "ratio", "target"))
    print("-" * 120)
    for name, v, base, bv, target, _ in rows:
        if bv is None:
            print(fmt % (name, "%.1f" % v, base, "n/a", "", "(opentelemetry-sdk not installed)"))
            continue
        ratio = v / bv
        mark = "" if target is None else "<=%gx %s" % (target, "met" if ratio <= target else "MISSED")
        if target == 1 / 20:
            mark = ">=20x cheaper %s (%.1fx)" % ("met" if ratio <= target else "MISSED", bv / v)
        print(fmt % (name, "%.1f" % v, base, "%.1f" % bv, "%.3fx" % ratio, mark))
    ratio = r["import_polytel_ms"] / r["import_logging_ms"]
    print(fmt % ("import polytel (phase 1 included)", "%.2f ms" % r["import_polytel_ms"], "import logging",
                 "%.2f ms" % r["import_logging_ms"], "%.2fx" % ratio,
                 "<=5 ms %s" % ("met" if r["import_polytel_ms"] <= 5 else "MISSED")))  # fmt: skip
    print()
    print("recorded %d, dropped %d (buffer full %d)" % (stats["recorded"], stats["dropped"],
                                                        stats["dropped_buffer_full"]))  # fmt: skip

    out = os.environ.get("BENCH_JSON") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "out",
                                                        "bench_python.json")  # fmt: skip
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(dict(r, python=platform.python_version(), n=N, repeat=REPEAT, stats=stats), f, indent=2)
    print("written: %s" % out)


if __name__ == "__main__":
    main()
