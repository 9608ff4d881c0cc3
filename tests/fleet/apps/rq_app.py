"""The RQ jobs tests/fleet runs (a real `rq worker -w polytel.integrations.rq.Worker --burst`) and their producer."""
import os

import polytel


def record(n):
    polytel.info("rq job ran", n=n)
    polytel.counter_add("fleet.jobs", 1)
    return n


def boom(n):
    polytel.info("rq job ran", n=n)
    raise ValueError("boom %d" % n)


def enqueue(n, n_boom=0):
    """n jobs (and n_boom raising ones, first) from inside the caller's span; returns (ids, boom_ids)."""
    from redis import Redis
    from rq import Queue

    from polytel.integrations.rq import instrument

    instrument()
    q = Queue("fleet", connection=Redis.from_url(os.environ["FLEET_REDIS_URL"]))
    boom_ids = [q.enqueue(boom, n + i).id for i in range(n_boom)]
    ids = [q.enqueue(record, i).id for i in range(n)]
    return ids, boom_ids
