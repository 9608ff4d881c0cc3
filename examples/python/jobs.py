"""jobs.py — a small job worker instrumented with polytel: the telemetry `make demo` shows in demo-out/trace.html.

Each job is one trace:
  job                              main thread
    validate                       (job FAIL raises ValueError: error status, exception attributes, a log)
    fetch                          asyncio on the main thread: three downloads run concurrently, each awaits
      download x3 { parse }        the "network" (the waits the trace view hatches)
    transform x2                   a thread pool (threads "transform_0", "transform_1"), the job's context
    store                          job_step, a C program in another process: the trace crosses processes
      store.write x2, store.commit (C threads "writer-0", "writer-1")
Logs at INFO, WARN and ERROR inside the spans (polytel's logging bridge), a counter, a gauge and a histogram.

Usage: python jobs.py [--jobs N] [--fail K] [--job-step PATH]. Configuration comes from the environment
(TELEMETRY_ENABLED=true, POLYTEL_EXPORTER=file, POLYTEL_EXPORT_DIR=..., OTEL_SERVICE_NAME=...); job_step
gets the same environment with OTEL_SERVICE_NAME=<service>-store. Without --job-step (or $POLYTEL_JOB_STEP)
the store step is skipped.
"""
import argparse
import asyncio
import contextvars
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import polytel

log = logging.getLogger("jobs")


async def download(job, k):
    with polytel.span("download", url="https://example.test/items/%d/%d" % (job, k), job_id=job):
        await asyncio.sleep(0.004 + 0.003 * k)  # the network: this task waits, the others run
        if k == 2:
            log.warning("download %d/%d slow: retried once", job, k)
            await asyncio.sleep(0.003)
        with polytel.span("parse", bytes=1000 * (k + 1)):
            time.sleep(0.001)  # CPU work: nothing else runs on the thread meanwhile


async def fetch(job):
    with polytel.span("fetch", parallel=3):
        await asyncio.gather(*(download(job, k) for k in range(3)))


def transform(job, part):
    with polytel.span("transform", job_id=job, part=part):
        log.info("transform %d.%d on %s", job, part, threading_name())
        time.sleep(0.004 + 0.002 * part)
        polytel.histogram_record("transform.duration", 4.0 + 2 * part, unit="ms", part=part)


def threading_name():
    import threading

    return threading.current_thread().name


def run_job(job, fail, job_step, service, pool):
    t0 = time.monotonic()
    with polytel.span("job", job_id=job, queue="default") as sp:
        log.info("job %d received", job)
        try:
            with polytel.span("validate", job_id=job):
                if job == fail:
                    raise ValueError("job %d: field 'amount' is negative" % job)
        except ValueError:
            log.exception("job %d rejected", job)
            sp.set_status("error", "validation failed")
            polytel.counter_add("jobs.done", 1, outcome="rejected")
            return
        asyncio.run(fetch(job))
        # Each task runs in a copy of this context: its spans are children of "job".
        futs = [pool.submit(contextvars.copy_context().run, transform, job, part) for part in range(2)]
        for f in futs:
            f.result()
        if job_step:
            env = dict(os.environ, OTEL_SERVICE_NAME=service + "-store")
            rc = subprocess.run([job_step, sp.trace_id, sp.span_id, str(100 * (job + 1))], env=env).returncode
            if rc != 0:
                log.error("store step failed with exit status %d", rc)
        log.info("job %d done", job)
    polytel.counter_add("jobs.done", 1, outcome="ok")
    polytel.histogram_record("job.duration", (time.monotonic() - t0) * 1000, unit="ms")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--fail", type=int, default=1, help="the job that fails validation (-1: none)")
    ap.add_argument("--job-step", default=os.environ.get("POLYTEL_JOB_STEP"))
    args = ap.parse_args(argv)
    st = polytel.bootstrap_worker()
    log.addHandler(polytel.LoggingHandler())
    log.setLevel(logging.INFO)
    log.propagate = False
    service = st["service"]
    log.info("worker %s started: %d jobs", service, args.jobs)
    with ThreadPoolExecutor(2, thread_name_prefix="transform") as pool:
        for job in range(args.jobs):
            polytel.gauge_set("queue.depth", args.jobs - job, unit="{job}")
            run_job(job, args.fail, args.job_step, service, pool)
    polytel.gauge_set("queue.depth", 0, unit="{job}")
    time.sleep(0.25)  # one more metrics interval: the rates have two points
    return 0 if polytel.shutdown(timeout_ms=5000) == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
