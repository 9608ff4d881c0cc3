"""The Celery app tests/fleet runs: a real prefork worker on the harness's redis-server (FLEET_REDIS_URL)."""
import os
import time

from celery import Celery

import polytel
from polytel.integrations.celery import instrument

app = Celery("fleet", broker=os.environ["FLEET_REDIS_URL"])
app.conf.update(
    task_ignore_result=True,
    worker_max_tasks_per_child=int(os.environ.get("FLEET_MAX_TASKS_PER_CHILD", "5")),
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
instrument(app)


def _started(n):
    path = os.environ.get("FLEET_STARTED_FILE")
    if path:  # one O_APPEND write per line: whole lines from concurrent children
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"%d %d %d\n" % (n, os.getpid(), os.getppid()))
        finally:
            os.close(fd)


@app.task(name="fleet.record")
def record(n, sleep_s=0.0):
    _started(n)
    polytel.info("celery task ran", n=n)
    polytel.counter_add("fleet.tasks", 1)
    if sleep_s:
        time.sleep(sleep_s)
    return n


@app.task(name="fleet.boom")
def boom(n):
    _started(n)
    raise ValueError("boom %d" % n)
