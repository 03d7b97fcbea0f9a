"""The WSGI app ``test_load.py`` runs under gunicorn: an idempotent store that fails at random.

Its DeliverReq handler stores each message in SQLite keyed by TransactionID (UNIQUE, so a retry
of a stored message succeeds without a second row) and misbehaves on purpose:

* ``LOADAPP_FAIL_BEFORE`` (share of calls) raise RuntimeError before storing;
* ``LOADAPP_FAIL_AFTER`` store, commit, then raise: the classic lost reply;
* ``LOADAPP_SLEEP`` sleep 10-80 ms first.

Every outcome is recorded in an ``events`` table (``ok`` when the handler returns 1000) so the
tests can count handler calls across worker processes. Configured by environment variables
(gunicorn passes its own on): the library's own ``MM7_*`` settings (``MM7_DEDUPE``,
``MM7_BASIC_AUTH``, ``MM7_ALLOWED_IPS``...), ``LOADAPP_PROXY_FIX=1`` to wrap the app in
Werkzeug's ``ProxyFix(x_for=1)`` as behind nginx, and ``LOADAPP_LOG_DIR`` to log the
``flask_mm7`` logger at INFO into one file per worker, each record starting with ``@@ TAG``
where TAG is the request's ``X-Load-Tag`` header, so a test can count the log lines each
request caused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import sqlite3
import threading
import time
import typing as t

from werkzeug.middleware.proxy_fix import ProxyFix

from flask_mm7 import MM7Middleware
from flask_mm7._config import Settings

DB = os.environ.get("LOADAPP_DB", "loadapp.sqlite3")
FAIL_BEFORE = float(os.environ.get("LOADAPP_FAIL_BEFORE", "0.15"))
FAIL_AFTER = float(os.environ.get("LOADAPP_FAIL_AFTER", "0.04"))
SLEEP = float(os.environ.get("LOADAPP_SLEEP", "0.05"))
PID_DIR = os.environ.get("LOADAPP_PID_DIR")
LOG_DIR = os.environ.get("LOADAPP_LOG_DIR")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    transaction_id TEXT PRIMARY KEY,
    sender TEXT,
    size INTEGER NOT NULL,
    digest TEXT NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (kind TEXT NOT NULL, transaction_id TEXT, pid INTEGER);
"""

_local = threading.local()
_rng = random.Random(int(os.environ.get("LOADAPP_SEED", "7")) * 100_003 + os.getpid())
_rng_lock = threading.Lock()
_request = threading.local()  # the X-Load-Tag of the request this thread is serving


def connect(path: str = DB) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def _db() -> sqlite3.Connection:
    connection: sqlite3.Connection | None = getattr(_local, "db", None)
    if connection is None:
        connection = _local.db = connect()
    return connection


def _event(kind: str, transaction_id: str) -> None:
    _db().execute("INSERT INTO events VALUES (?, ?, ?)", (kind, transaction_id, os.getpid()))


def _roll() -> float:
    with _rng_lock:
        return _rng.random()


def receive(msg: t.Any) -> tuple[int, str]:
    tid = msg.transaction_id
    _event("call", tid)
    roll = _roll()
    if roll < FAIL_BEFORE:
        _event("fail_before", tid)
        raise RuntimeError("simulated failure before storing")
    if roll < FAIL_BEFORE + SLEEP:
        _event("sleep", tid)
        time.sleep(0.01 + 0.07 * _roll())
    digest = hashlib.sha256()
    size = 0
    for attachment in msg.attachments:
        data = attachment.read()
        digest.update(data)
        size += len(data)
    cursor = _db().execute(
        "INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?)",
        (tid, str(msg.sender), size, digest.hexdigest(), os.getpid()),
    )
    if cursor.rowcount == 0:
        _event("duplicate", tid)  # a retry of a stored message: success, no second row
    if _roll() < FAIL_AFTER:
        _event("fail_after", tid)
        raise RuntimeError("simulated failure after storing: the reply is lost")
    _event("ok", tid)
    return 1000, "Stored"


class _TagFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.tag = getattr(_request, "tag", "-")
        return True


def _log_to_files() -> None:
    if not LOG_DIR:
        return
    handler = logging.FileHandler(os.path.join(LOG_DIR, f"{os.getpid()}.log"))
    handler.addFilter(_TagFilter())
    handler.setFormatter(logging.Formatter("@@ %(tag)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("flask_mm7")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _tagged(app: t.Any) -> t.Any:
    def tagged(environ: dict[str, t.Any], start_response: t.Any) -> t.Any:
        _request.tag = environ.get("HTTP_X_LOAD_TAG", "-")
        try:
            return app(environ, start_response)
        finally:
            _request.tag = "-"

    return tagged


def _setup() -> None:
    connection = connect()
    try:
        connection.executescript(SCHEMA)
    finally:
        connection.close()
    if PID_DIR:
        with open(os.path.join(PID_DIR, str(os.getpid())), "w") as f:
            f.write(str(os.getpid()))


_setup()
_log_to_files()
_settings = Settings.from_mapping(os.environ, spool_threshold=4096)
application: t.Any = _tagged(MM7Middleware(None, settings=_settings, on_deliver=receive))
if os.environ.get("LOADAPP_PROXY_FIX") == "1":
    application = ProxyFix(application, x_for=1)
