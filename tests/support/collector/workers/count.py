"""count.py — the counting workload of tests/support/programs/worker_c.c (one thread) with the Python binding: per event a
span "outer" { span "inner" { log "event <i> from thread 0" } } and counter worker.events += 1; then shutdown and
one JSON line with the stats. Usage: python count.py EVENTS SHUTDOWN_MS (configuration from the environment)."""
import json
import sys

import polytel

events, shutdown_ms = int(sys.argv[1]), int(sys.argv[2])
polytel.bootstrap_worker()
for i in range(events):
    with polytel.span("outer"):
        with polytel.span("inner"):
            polytel.log(polytel.INFO, "worker", f"event {i} from thread 0")
    polytel.counter_add("worker.events", 1, unit="1")
rc = polytel.shutdown(shutdown_ms)
print(json.dumps({"shutdown_rc": rc, "emitted": [events], **polytel.stats()}), flush=True)
