"""Faults under real load: gunicorn on 127.0.0.1, a handler that fails at random, a relay-like
client that retries, and the proof that every message is stored exactly once (§3 #102-104, #111).

``tests/loadapp.py`` stores each DeliverReq in SQLite keyed by TransactionID (idempotent) and
fails 15% of calls before storing, 4% after storing (the lost reply: stored, but the relay sees
a 500 and sends it again), and sleeps in 5%. The client sends N messages from several threads,
retrying each on a 5xx, a timeout or a connection error with a small backoff until it gets
HTTP 200 + StatusCode 1000. The SIGKILL variant also kills a worker every ~0.5 s.

Counts go to stdout and to ``test-output/load-report.txt``. Skipped when gunicorn is missing
(it is in the ``test`` extra).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import http.client
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import threading
import time
import typing as t

import pytest
from gunicorn_server import gunicorn

from flask_mm7.testing import build_deliver, parse_reply

pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install -e '.[test]')")

ROOT = pathlib.Path(__file__).resolve().parent.parent
REPORT = ROOT / "test-output" / "load-report.txt"
MESSAGES = int(os.environ.get("MM7_LOAD_MESSAGES", "1000"))
CLIENT_THREADS = 8
MAX_ATTEMPTS = 40
TIME_BUDGET = 50.0  # seconds for one run's client side


@dataclasses.dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    db: pathlib.Path
    pid_dir: pathlib.Path
    log: pathlib.Path


def _start(tmp_path: pathlib.Path, args: list[str], dedupe: bool = False) -> t.Iterator[Server]:
    db = tmp_path / "store.sqlite3"
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    env = {"LOADAPP_DB": str(db), "LOADAPP_PID_DIR": str(pid_dir), "LOADAPP_SEED": "7"}
    if dedupe:  # most calls sleep, so that kills land in the handler, holding a claim
        env.update(MM7_DEDUPE=f"sqlite:///{tmp_path / 'dedupe.sqlite3'}", LOADAPP_SLEEP="0.6")
    with gunicorn("loadapp:application", tmp_path, env, args) as (port, process, log):
        yield Server(port, process, db, pid_dir, log)


@pytest.fixture
def gthread_server(tmp_path: pathlib.Path) -> t.Iterator[Server]:
    yield from _start(tmp_path, ["--workers", "2", "--worker-class", "gthread", "--threads", "4"])


@pytest.fixture
def sync_server(tmp_path: pathlib.Path) -> t.Iterator[Server]:
    yield from _start(tmp_path, ["--workers", "3", "--worker-class", "sync"])


@pytest.fixture
def sync_dedupe_server(tmp_path: pathlib.Path) -> t.Iterator[Server]:
    yield from _start(tmp_path, ["--workers", "3", "--worker-class", "sync"], dedupe=True)


@dataclasses.dataclass
class Ledger:
    """The relay's view: what it sent and every answer it got."""

    acks: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    attempts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    digests: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    gave_up: list[str] = dataclasses.field(default_factory=list)
    wrong_tid: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def _message(i: int) -> tuple[str, bytes, dict[str, str], tuple[int, str]]:
    import hashlib

    rng = random.Random(i)
    payload = rng.randbytes(rng.randint(100, 20_000))
    tid = f"LOAD-{i:05d}"
    request = build_deliver(transaction_id=tid, attachments=[payload], text=f"message {i}")
    text = f"message {i}".encode()
    digest = hashlib.sha256(payload + text).hexdigest()
    return tid, request.body, request.headers, (len(payload) + len(text), digest)


def _send_one(port: int, i: int, ledger: Ledger, deadline: float) -> None:
    """Deliver message ``i`` like a relay: retry on 5xx/timeout/connection error."""
    tid, body, headers, digest = _message(i)
    with ledger.lock:
        ledger.digests[tid] = digest
        ledger.acks[tid] = []
    for attempt in range(MAX_ATTEMPTS):
        if time.monotonic() > deadline:
            break
        with ledger.lock:
            ledger.attempts[tid] += 1
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("POST", "/mm7", body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            reply = parse_reply(response.status, dict(response.getheaders()), data)
        except (OSError, http.client.HTTPException) as error:
            outcome = f"error:{type(error).__name__}"
            reply = None
        finally:
            connection.close()
        if reply is not None:
            outcome = f"http:{reply.http_status}"
            if reply.http_status == 200:
                with ledger.lock:
                    ledger.outcomes[outcome] += 1
                    ledger.acks[tid].append(reply.status_code or 0)
                    if reply.transaction_id != tid:
                        ledger.wrong_tid.append(tid)
                return  # a 200 is final for a relay, whatever its StatusCode
        with ledger.lock:
            ledger.outcomes[outcome] += 1
        time.sleep(min(0.2, 0.005 * 2**attempt) * (0.5 + random.random()))
    with ledger.lock:
        ledger.gave_up.append(tid)


class _Killer(threading.Thread):
    """SIGKILL a random live worker every ``interval`` seconds, at most ``limit`` times."""

    def __init__(self, server: Server, interval: float, limit: int) -> None:
        super().__init__(daemon=True)
        self.server, self.interval, self.limit = server, interval, limit
        self.killed: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        rng = random.Random(3)
        while not self.stop.wait(self.interval) and len(self.killed) < self.limit:
            alive = []
            for entry in self.server.pid_dir.iterdir():
                pid = int(entry.name)
                try:
                    os.kill(pid, 0)
                    alive.append(pid)
                except OSError:
                    continue
            if alive:
                pid = rng.choice(sorted(alive))
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)


_REPORTS: dict[str, str] = {}


def _run(server: Server, name: str, killer: _Killer | None = None) -> None:
    ledger = Ledger()
    started = time.monotonic()
    deadline = started + TIME_BUDGET
    if killer is not None:
        killer.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = [
                pool.submit(_send_one, server.port, i, ledger, deadline) for i in range(MESSAGES)
            ]
            for future in futures:
                future.result(timeout=TIME_BUDGET + 30)
    finally:
        if killer is not None:
            killer.stop.set()
            killer.join(timeout=5)
    elapsed = time.monotonic() - started

    db = sqlite3.connect(server.db, timeout=30)
    try:
        stored = {
            row[0]: (row[1], row[2])
            for row in db.execute("SELECT transaction_id, size, digest FROM messages")
        }
        events = collections.Counter(kind for (kind,) in db.execute("SELECT kind FROM events"))
        rows = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    finally:
        db.close()

    attempts = sum(ledger.attempts.values())
    lines = [
        f"[{name}] {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"messages sent (distinct TransactionIDs): {len(ledger.acks)}",
        f"HTTP attempts: {attempts}",
        f"retries: {attempts - len(ledger.acks)}",
        f"client outcomes: {dict(sorted(ledger.outcomes.items()))}",
        f"handler calls: {events['call']}",
        f"handler failures before storing: {events['fail_before']}",
        f"handler failures after storing (lost replies): {events['fail_after']}",
        f"handler sleeps: {events['sleep']}",
        f"duplicate deliveries absorbed by the UNIQUE key: {events['duplicate']}",
        f"rows stored: {rows}",
        f"workers SIGKILLed: {len(killer.killed) if killer is not None else 0}",
        f"gave up: {len(ledger.gave_up)}",
        f"elapsed: {elapsed:.1f} s",
    ]
    report = "\n".join(lines)
    print("\n" + report)
    _REPORTS[name] = report
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n\n".join(_REPORTS.values()) + "\n")

    assert not ledger.gave_up, f"{len(ledger.gave_up)} messages never acknowledged"
    assert not ledger.wrong_tid, ledger.wrong_tid[:5]
    # every TransactionID acknowledged with 1000 exactly once in the relay's ledger
    assert all(acks == [1000] for acks in ledger.acks.values()), [
        (tid, acks) for tid, acks in ledger.acks.items() if acks != [1000]
    ][:5]
    # the store holds every message exactly once, with the content that was sent
    assert rows == len(stored) == MESSAGES
    assert stored == ledger.digests
    # the faults really happened, and the retries covered them
    assert events["fail_before"] > 0 and events["fail_after"] > 0
    assert events["duplicate"] >= events["fail_after"] - (len(killer.killed) if killer else 0) - 5
    assert attempts > MESSAGES


def test_random_handler_failures_under_load(gthread_server: Server) -> None:
    """#102/#111: 2 gthread workers x 4 threads, 8 relay threads: 0 lost, 0 doubled."""
    _run(gthread_server, "gthread 2x4, random handler failures")


def test_worker_sigkill_under_load(sync_server: Server) -> None:
    """#103: 3 sync workers, one SIGKILLed every ~0.5 s (up to 8): 0 lost, 0 doubled."""
    killer = _Killer(sync_server, interval=0.5, limit=8)
    _run(sync_server, "sync x3, random failures + worker SIGKILL", killer)
    assert killer.killed, "no worker was killed"


def test_worker_sigkill_under_load_with_dedupe(sync_dedupe_server: Server) -> None:
    """The same with a SQLite dedupe store: a killed worker's claim does not hold up the
    relay's retries (they would get 503 until the relay gives up)."""
    killer = _Killer(sync_dedupe_server, interval=0.5, limit=8)
    _run(sync_dedupe_server, "sync x3, dedupe, random failures + worker SIGKILL", killer)
    assert killer.killed, "no worker was killed"
