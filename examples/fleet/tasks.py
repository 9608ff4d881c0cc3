"""The demo's Celery app (examples/fleet): a task that hands each report to the Ruby Sidekiq worker.

    celery -A tasks worker --pool prefork --concurrency 1      (DEMO_REDIS_URL names the shared Redis)

Each task runs in a prefork child inside the integration's `consumer` span; it pushes a Sidekiq job (Sidekiq's job
format, LPUSH queue:default) inside a `producer` span whose traceparent goes into the job, so the Ruby worker's
span continues the same trace.
"""
import json
import os
import secrets
import time

import redis
from celery import Celery

import polytel
from polytel.integrations.celery import instrument

app = Celery("demo_fleet", broker=os.environ["DEMO_REDIS_URL"])
app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False)
instrument(app)

SIDEKIQ_CLASS = "ReportJob"


@app.task(name="reports.render")
def render(report_id):
    polytel.info("rendering report", report_id=report_id)
    job = {"class": SIDEKIQ_CLASS, "args": [report_id], "queue": "default", "retry": False,
           "jid": secrets.token_hex(12), "created_at": time.time(), "enqueued_at": time.time()}
    attrs = {"messaging.system": "sidekiq", "messaging.operation": "publish", "messaging.destination.name": "default",
             "messaging.message.id": job["jid"], "messaging.sidekiq.job_class": SIDEKIQ_CLASS}
    with polytel.span(SIDEKIQ_CLASS + " publish", kind="producer", attributes=attrs):
        polytel.inject(job)  # traceparent (and tracestate) as top-level keys, where polytel/sidekiq reads them
        r = redis.Redis.from_url(os.environ["DEMO_REDIS_URL"])
        r.sadd("queues", "default")
        r.lpush("queue:default", json.dumps(job))
    polytel.counter_add("demo.reports.rendered", 1)
    return report_id
