"""An MM7 receiver that hands each message to a worker through RQ (Redis Queue).

The handler writes the message to a spool directory (``flask_mm7.handoff``), enqueues its path
for ``tasks.process`` and answers 1000 only after the enqueue succeeded: if Redis or the disk
fails, the handler raises, the relay gets a retryable Fault and sends the message again. The
job id is the spool directory's name (a digest of the message), enqueued with ``unique=True``:
a message that reaches the handler twice (its host died after the enqueue but before its answer
was recorded) is enqueued once. Dedupe uses the same Redis (``MM7_DEDUPE``), so a relay's retry
that reaches another host behind the load balancer is recognised there too.

Run it (see README.md beside this file)::

    REDIS_URL=redis://127.0.0.1:6379/0 QUEUE_SPOOL=/srv/mm7/spool \\
        gunicorn --chdir examples/queue --bind 127.0.0.1:8000 app:app
"""

from __future__ import annotations

import os
import shutil

import redis
from flask import Flask
from rq import Queue
from rq.exceptions import DuplicateJobError

from flask_mm7 import MM7, DeliverRequest, handoff

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
#: where messages wait for the worker: a disk every receiver and worker can read
SPOOL = os.environ.get("QUEUE_SPOOL", "spool")
#: how long a finished job (so its id) is kept: a duplicate is refused within this time
KEEP = 86400

app = Flask(__name__)
app.config["MM7_DEDUPE"] = REDIS_URL  # shared by every host; MM7_* variables override it
app.config.update({k: v for k, v in os.environ.items() if k.startswith("MM7_")})
mm7 = MM7(app)
queue = Queue("mm7", connection=redis.Redis.from_url(REDIS_URL))


@mm7.on_deliver
def deliver(msg: DeliverRequest) -> tuple[int, str]:
    path = handoff.save(msg, SPOOL)  # on disk, flushed, before anything is enqueued
    job_id = f"mm7-{path.name}"
    try:
        queue.enqueue(
            "tasks.process", str(path), job_id=job_id, unique=True,
            result_ttl=KEEP, failure_ttl=KEEP,
        )  # fmt: skip
    except DuplicateJobError:  # handed off before, by a request whose answer was lost
        app.logger.warning("MM7 %s: handed off before; not queued again", msg.transaction_id)
        job = queue.fetch_job(job_id)
        if job is not None and job.is_finished:
            shutil.rmtree(path, ignore_errors=True)  # processed already: this copy is not needed
    return 1000, "Queued"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
