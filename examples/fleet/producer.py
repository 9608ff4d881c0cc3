"""The demo's producer (examples/fleet): one span around enqueuing N Celery tasks; prints the trace id."""
import sys

import polytel
from tasks import render


def main(n):
    polytel.bootstrap_worker()
    with polytel.span("nightly reports", reports=n) as root:
        polytel.info("enqueuing reports", count=n)
        for i in range(n):
            render.delay(i)  # a `producer` span `send reports.render`, its traceparent in the task headers
        trace_id = root.trace_id
    polytel.shutdown(timeout_ms=10000)
    print(trace_id, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
