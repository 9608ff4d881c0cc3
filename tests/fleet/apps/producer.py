"""A producer process: opens one span, enqueues jobs to a worker system inside it, prints that span's ids as JSON.

    python producer.py celery N [--boom K] [--sleep S]   (K raising tasks, n = N..N+K-1, enqueued first)
    python producer.py rq N
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import polytel  # noqa: E402


def main(argv):
    system, n = argv[0], int(argv[1])
    opts = dict(zip(argv[2::2], argv[3::2]))
    polytel.bootstrap_worker()
    span_kw = {"kind": "producer"} if hasattr(polytel, "extract") else {}
    ids, boom_ids = [], []
    with polytel.span("fleet producer", system=system, **span_kw) as root:
        if system == "celery":
            from celery_app import boom, record

            sleep_s = float(opts.get("--sleep", "0"))
            # The raising tasks first: a FIFO queue runs them before the rest.
            boom_ids = [boom.apply_async((n + i,)).id for i in range(int(opts.get("--boom", "0")))]
            for i in range(n):
                ids.append(record.delay(i, sleep_s).id)
        elif system == "rq":
            from rq_app import enqueue

            ids, boom_ids = enqueue(n, int(opts.get("--boom", "0")))
        else:
            raise SystemExit("producer: unknown worker system %r" % system)
        out = {"trace_id": root.trace_id, "span_id": root.span_id, "ids": ids, "boom_ids": boom_ids, "pid": os.getpid()}
    rc = polytel.shutdown(timeout_ms=20000)
    out["shutdown_rc"] = rc
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
