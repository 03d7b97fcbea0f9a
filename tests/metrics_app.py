"""The app ``tests/test_metrics_gunicorn.py`` runs under gunicorn: metrics on and served, a
handler that says which worker process answered."""

from __future__ import annotations

import os
import time

from flask import Flask

from flask_mm7 import MM7

app = Flask(__name__)
app.config.update(MM7_ALLOW_ANONYMOUS=True, MM7_METRICS=True, MM7_METRICS_PATH="/metrics")
mm7 = MM7(app)


@mm7.on_deliver
def deliver(msg: object) -> tuple[int, str]:
    time.sleep(0.05)  # long enough for concurrent requests to reach both workers
    return 1000, f"stored by {os.getpid()}"
