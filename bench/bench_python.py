"""bench_python.py — the Python binding beside its anchors, one run, one table (never asserts timings).

Measures recording cost: full telemetry (phase 2) with POLYTEL_EXPORTER=none and POLYTEL_CONSOLE=off,
so nothing is printed or sent; the OpenTelemetry SDK gets the same deal (BatchSpanProcessor with an
exporter that drops everything). Run with a Python that has polytel installed (make bench-python).
Env: BENCH_N (iterations, default 200000), BENCH_REPEAT (best of, default 5), BENCH_JSON (output path).

The span rows are also measured with the binding of before the trace-context work (issue 14: the commit
PY_BASELINE, built once into BUILD_DIR/bench-py-baseline/), alternating with today's in one run.
Usage: bench_python.py [BUILD_DIR]
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
# main just before the span model and the Python trace context (issue 14) were merged.
PY_BASELINE = os.environ.get("BENCH_PY_BASELINE", "fae660ee6d37b57ad25c31001e94a9fb61c784b4")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

# The span rows, the same source run with either binding (one process per round).
SPAN_ROWS = r"""
import gc, json, os, sys, time
os.environ.update(POLYTEL_EXPORTER="none", POLYTEL_CONSOLE="off", TELEMETRY_ENABLED="true")
import polytel
polytel.bootstrap_worker(telemetry_enabled=True, exporter="none", console="off")
span, n, repeat = polytel.span, int(sys.argv[1]), int(sys.argv[2])
def b_span(n):
    for _ in range(n):
        with span("work"):
            pass
def b_span_attrs(n):
    for i in range(n):
        with span("work", route="/a", n=i):
            pass
best = {}
for fn in (b_span, b_span_attrs):
    fn(100)
for _ in range(repeat):
    for name, fn in (("span", b_span), ("span_attrs", b_span_attrs)):
        gc.collect()
        t0 = time.thread_time_ns()  # CPU time of this thread: a busy machine's preemption is not counted
        fn(n)
        dt = (time.thread_time_ns() - t0) / n
        best[name] = min(best.get(name, dt), dt)
best["file"] = polytel.__file__
print(json.dumps(best))
"""


def baseline_site(build_dir):
    """PY_BASELINE's binding, pip-installed into its own directory (built once, then reused)."""
    site = os.path.join(build_dir, "bench-py-baseline", PY_BASELINE[:12], "site")
    if os.path.isfile(os.path.join(site, ".ok")):
        return site
    import io
    import shutil
    import tarfile

    src = os.path.join(build_dir, "bench-py-baseline", PY_BASELINE[:12], "src")
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(site, ignore_errors=True)
    os.makedirs(src)
    print("bench_python: building the baseline binding (%s), once" % PY_BASELINE[:12], file=sys.stderr)
    tar = subprocess.run(["git", "-C", ROOT, "archive", PY_BASELINE, "core", "bindings/python"],
                         capture_output=True, check=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(src)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site,
                    os.path.join(src, "bindings", "python")], check=True)  # fmt: skip
    open(os.path.join(site, ".ok"), "w").close()
    return site


def span_before_after(build_dir, rounds=3):
    """Best of `rounds` alternating runs of SPAN_ROWS with the baseline binding and with today's."""
    try:
        site = baseline_site(build_dir)
    except (subprocess.CalledProcessError, OSError) as e:
        print("bench_python: no baseline binding (%s): the before/after rows are left out" % e, file=sys.stderr)
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    best = {"before": {}, "after": {}}
    for _ in range(rounds):
        for side, extra in (("before", {"PYTHONPATH": site}), ("after", {})):
            out = subprocess.run([sys.executable, "-c", SPAN_ROWS, str(N), "2"], env=dict(env, **extra), cwd="/",
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            got = json.loads(out)
            assert got.pop("file").startswith(site) == (side == "before"), (side, got)
            for k, v in got.items():
                best[side][k] = min(best[side].get(k, v), v)
    return best


def measure_all(cases):
    """Best of REPEAT rounds of fn(N) per case, in ns per iteration (the for loop included on both sides).

    Rounds interleave the cases, so a load change on a shared machine hits each side alike. The time is this
    thread's CPU time (as in SPAN_ROWS): the calling thread's cost, without the preemption a busy machine adds
    to wall time at random (polytel's consumer and the SDK's batch thread run on threads of their own).
    """
    best = {}
    for _ in range(REPEAT):
        for name, fn in cases.items():
            if fn is None:
                best[name] = None
                continue
            gc.collect()
            t0 = time.thread_time_ns()
            fn(N)
            dt = (time.thread_time_ns() - t0) / N
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
    inject, extract, SpanContext = polytel.inject, polytel.extract, polytel.SpanContext
    msg = "request handled"
    headers = {"traceparent": TRACEPARENT}

    def b_dict_copy(n):
        h = headers
        for _ in range(n):
            dict(h)

    def b_inject(n):
        with span("parent"):
            for _ in range(n):
                inject()

    def b_extract(n):
        h = headers
        for _ in range(n):
            extract(h)

    # The same parent argument on both sides: only the sampled flag differs (parentbased_always_on follows it).
    sampled_parent = SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=True)
    unsampled_parent = SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=False)

    def b_span_sampled(n):
        for i in range(n):
            with span("work", parent=sampled_parent, route="/a", n=i):
                pass

    def b_span_unsampled(n):
        for i in range(n):
            with span("work", parent=unsampled_parent, route="/a", n=i):
                pass

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
    for fn in (b_nullcontext, b_span, b_stdlib_null, b_info, b_bridge, b_counter, b_dict_copy, b_inject, b_extract,
               b_span_sampled, b_span_unsampled) + ((b_otel,) if tracer else ()):
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
        "dict_copy": b_dict_copy,
        "inject": b_inject,
        "extract": b_extract,
        "span_sampled": b_span_sampled,
        "span_unsampled": b_span_unsampled,
    })
    if provider:
        provider.shutdown()
    ba = span_before_after(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
    r["import_polytel_ms"] = import_ms("polytel")
    r["import_logging_ms"] = import_ms("logging")
    stats = polytel.stats()
    polytel.shutdown(timeout_ms=2000)

    rows = [
        ('with polytel.span("work")', r["span"], "with contextlib.nullcontext()", r["nullcontext"], 1.1, "<="),
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
        ("polytel.inject() (in a span)", r["inject"], "dict(headers) (1 entry)", r["dict_copy"], None, ""),
        ("polytel.extract(headers)", r["extract"], "dict(headers) (1 entry)", r["dict_copy"], None, ""),
        ("span(parent=unsampled, 2 attrs)", r["span_unsampled"], "span(parent=sampled, 2 attrs)", r["span_sampled"],
         1.0, "<="),
    ]  # fmt: skip
    if ba:
        rows += [
            ('with polytel.span("work") now', ba["after"]["span"], "the same, binding of " + PY_BASELINE[:7],
             ba["before"]["span"], None, ""),
            ('with polytel.span("work", 2 attrs) now', ba["after"]["span_attrs"], "the same, binding of " + PY_BASELINE[:7],
             ba["before"]["span_attrs"], None, ""),
        ]  # fmt: skip
    print()
    print("Python binding — full telemetry, POLYTEL_EXPORTER=none, POLYTEL_CONSOLE=off: recording cost only")
    print("python %s, polytel %s, %d iterations, best of %d, ns of thread CPU time per call (loop included)"
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
        json.dump(dict(r, python=platform.python_version(), n=N, repeat=REPEAT, stats=stats, before_after=ba,
                       py_baseline=PY_BASELINE), f, indent=2)  # fmt: skip
    print("written: %s" % out)


if __name__ == "__main__":
    main()
