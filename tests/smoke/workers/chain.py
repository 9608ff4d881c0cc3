"""chain.py — the Python hop of tests/smoke/test_chain.py: consumes the C producer's jobs and calls Ruby.

Usage: python chain.py QUEUE_IN DIR. For each job line of QUEUE_IN ({"job", "headers"}): a CONSUMER span
"consume job" whose parent is extract(headers) (the C producer's span; its baggage comes along), inside it
a PRODUCER span "enqueue ruby" whose inject() (traceparent and baggage) goes into DIR/ruby.jsonl. Then it
runs the Ruby hop (CHAIN_RUBY, chain.rb) on that queue, waits for it, and appends {"lang": "python",
"stats", "baggage"} to CHAIN_REPORT. OTEL_SERVICE_NAME of the next hop is chain-ruby.
"""
import json
import os
import subprocess
import sys

import polytel

HERE = os.path.dirname(os.path.abspath(__file__))


def main(queue_in, out_dir):
    polytel.bootstrap_worker()
    seen = {}
    out = os.path.join(out_dir, "ruby.jsonl")
    with open(queue_in) as f, open(out, "w") as q:
        for line in f:
            job = json.loads(line)
            ctx = polytel.extract(job["headers"])
            with polytel.span("consume job", parent=ctx, kind="consumer", attributes={"chain.job": job["job"]}):
                seen[job["job"]] = polytel.get_baggage("tenant")
                with polytel.span("enqueue ruby", kind="producer", attributes={"chain.job": job["job"]}):
                    q.write(json.dumps({"job": job["job"], "headers": polytel.inject()}) + "\n")
    env = dict(os.environ, OTEL_SERVICE_NAME="chain-ruby")
    p = subprocess.run([os.environ["CHAIN_RUBY"], os.path.join(HERE, "chain.rb"), out, out_dir], env=env,
                       timeout=240)
    with open(os.environ["CHAIN_REPORT"], "a") as r:
        r.write(json.dumps({"lang": "python", "stats": polytel.stats(), "baggage": seen, "ruby_exit": p.returncode})
                + "\n")
    return 0 if p.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
