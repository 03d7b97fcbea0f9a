"""SQLite dedupe claims are leases: renewed while the handler runs, free again within seconds
when their holder dies (SIGKILL), bounded by the claim timeout when it hangs."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import typing as t

import pytest
from helpers import mm7_body, parse_reply, wait_for
from werkzeug.test import Client

from flask_mm7 import MM7Middleware, dedupe
from flask_mm7.dedupe import BUSY, DONE, NEW, SQLiteStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def held_by_sibling(path: str) -> SQLiteStore:
    """A second store on the same file: another worker's view (its own connections)."""
    return SQLiteStore(path, lease=0.3)


def test_a_claim_is_renewed_while_its_handler_runs(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "l.db")
    store = SQLiteStore(path, lease=0.3)
    other = held_by_sibling(path)
    claim = store.claim("k", "d")
    deadline = time.monotonic() + 1.5  # five leases
    while time.monotonic() < deadline:
        assert other.claim("k", "d").state == BUSY
        time.sleep(0.05)
    store.complete("k", claim.token, 1000, "ok")
    assert other.claim("k", "d").state == DONE
    # nothing held for idle_beats rounds (20 x 0.1 s): the renewal thread ends
    thread = store._heartbeat
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and store._heartbeat is None
    other.claim("k2", "d")  # a new claim starts a new one
    assert store._heartbeat is None and other._heartbeat is not None


def test_a_claim_not_renewed_runs_out_after_its_lease(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "l.db")
    store = SQLiteStore(path, lease=0.3)
    store.claim("k", "d")
    store._stop.set()  # as if the holder froze: no more renewals
    assert held_by_sibling(path).claim("k", "d").state == BUSY
    assert wait_for(lambda: held_by_sibling(path).claim("k", "d").state == NEW, 3) < 1.0


def test_a_live_handler_keeps_its_claim_at_most_claim_timeout(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "l.db")
    store = SQLiteStore(path, lease=0.3, claim_timeout=1.0)
    store.claim("k", "d")
    other = SQLiteStore(path, lease=0.3, claim_timeout=1.0)
    assert other.claim("k", "d").state == BUSY
    took = wait_for(lambda: other.claim("k", "d").state == NEW, 4)
    assert 0.5 < took < 2.5


HOLD_SCRIPT = """
import sys, time
from flask_mm7 import dedupe
if sys.argv[2] != "here":
    dedupe._HOST = "another-host/1"
store = dedupe.SQLiteStore(sys.argv[1], lease=float(sys.argv[3]))
print(store.claim("k", "d").state, flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def python(*args: str) -> t.Iterator[subprocess.Popen[bytes]]:
    """``python -c *args`` with its stdout piped; killed if still running at the end."""
    with subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, env=ENV
    ) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


def hold_and_kill(path: str, where: str, lease: float, hold: float) -> float:
    """A process claims and holds ``hold`` seconds, then is SIGKILLed. The seconds until its
    claim is free again."""
    with python(HOLD_SCRIPT, path, where, str(lease)) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == NEW.encode()
        time.sleep(hold)
        store = SQLiteStore(path, lease=lease)
        assert store.claim("k", "d").state == BUSY  # renewed across processes
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        return wait_for(lambda: store.claim("k", "d").state == NEW, 10 * lease)


def test_a_claim_of_a_killed_process_on_this_host_is_free_at_once(
    tmp_path: pathlib.Path,
) -> None:
    assert hold_and_kill(str(tmp_path / "k.db"), "here", lease=10, hold=0.5) < 0.5


def test_a_claim_of_a_killed_process_elsewhere_is_free_after_its_lease(
    tmp_path: pathlib.Path,
) -> None:
    took = hold_and_kill(str(tmp_path / "k.db"), "elsewhere", lease=0.5, hold=1.5)
    assert took < 1.5


SERVE_SCRIPT = """
import sys, time
from werkzeug.test import Client
from flask_mm7 import MM7Middleware

def receive(msg):
    print("entered", flush=True)
    time.sleep(600)

app = MM7Middleware(dedupe="sqlite:///" + sys.argv[1], on_deliver=receive, allow_anonymous=True)
body = open(sys.argv[2], "rb").read()
Client(app).post("/mm7", data=body, content_type=sys.argv[3])
"""


def test_a_retry_after_the_worker_was_killed_reaches_the_handler(
    tmp_path: pathlib.Path,
) -> None:
    db = str(tmp_path / "w.db")
    body, content_type = mm7_body()
    (tmp_path / "body").write_bytes(body)
    calls: list[t.Any] = []
    app = MM7Middleware(dedupe=f"sqlite:///{db}", on_deliver=calls.append, allow_anonymous=True)
    client = Client(app)
    with python(SERVE_SCRIPT, db, str(tmp_path / "body"), content_type) as worker:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == b"entered"
        assert client.post("/mm7", data=body, content_type=content_type).status_code == 503
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed = time.monotonic()
        retry = client.post("/mm7", data=body, content_type=content_type)
        assert time.monotonic() - killed < 2
    assert retry.status_code == 200 and parse_reply(retry.data)["StatusCode"] == "1000"
    assert len(calls) == 1


def test_a_handler_slower_than_the_lease_is_not_entered_twice(tmp_path: pathlib.Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"), lease=0.3)
    release = threading.Event()
    entered = threading.Event()

    def slow(msg: t.Any) -> None:
        entered.set()
        assert release.wait(10)

    app = MM7Middleware(dedupe=store, on_deliver=slow, allow_anonymous=True)
    body, content_type = mm7_body()
    first = threading.Thread(
        target=Client(app).post, args=("/mm7",), kwargs={"data": body, "content_type": content_type}
    )
    first.start()
    try:
        assert entered.wait(10)
        time.sleep(1.2)  # four leases
        retry = Client(app).post("/mm7", data=body, content_type=content_type)
        assert retry.status_code == 503
    finally:
        release.set()
        first.join(10)
    assert Client(app).post("/mm7", data=body, content_type=content_type).status_code == 200


def test_a_forked_child_does_not_renew_its_parents_claims(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(str(tmp_path / "f.db"), lease=0.3)
    store.claim("k", "d")
    assert len(store._held) == 1
    monkeypatch.setattr(dedupe.os, "getpid", lambda: -1)  # as if we were a forked child
    assert store._renew() is False
    own = store.claim("k2", "d")
    assert list(store._held) == [own.token]  # the parent's claim is not the child's to renew
    inherited = list(dedupe._ABANDONED)
    store.close()
    monkeypatch.undo()
    for connection in inherited:
        dedupe._ABANDONED.remove(connection)
        connection.close()


def test_a_table_from_an_older_version_is_rebuilt(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE mm7_dedupe (key TEXT PRIMARY KEY NOT NULL, token TEXT NOT NULL,"
        " digest TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0, status_code INTEGER,"
        " status_text TEXT, updated REAL NOT NULL)"
    )
    db.close()
    store = SQLiteStore(str(path))
    store.complete("k", store.claim("k", "d").token, 1000, "ok")
    assert store.claim("k", "d").state == DONE
    store.close()
