"""Deduplication of retried transactions: the stores, and the receiver's use of them through
both adapters."""

from __future__ import annotations

import gc
import logging
import os
import pathlib
import subprocess
import sys
import threading
import time
import typing as t

import pytest
from conftest import Harness
from flask import Flask
from helpers import Clock, deliver_inner, envelope, handles_in, mm7_body, parse_reply
from sec_helpers import fault
from werkzeug.test import Client

from flask_mm7 import MM7, MM7Error, MM7Middleware
from flask_mm7._config import Settings
from flask_mm7.dedupe import (
    BUSY,
    DONE,
    NEW,
    Claim,
    DedupeStore,
    MemoryStore,
    SQLiteStore,
    fingerprint,
    make_key,
    make_store,
)

KINDS = ["middleware", "extension"]


@pytest.fixture(params=["memory", "sqlite"])
def spec(request: pytest.FixtureRequest, tmp_path: t.Any) -> str:
    return "memory" if request.param == "memory" else f"sqlite:///{tmp_path}/dedupe.db"


def deliver(
    harness: Harness,
    transaction_id: str = "TID-1",
    sender: str = "12125550123",
    subject: str = "",
    operation: str = "DeliverReq",
) -> t.Any:
    inner = deliver_inner(sender=f"<mm7:Number>{sender}</mm7:Number>", extra=subject)
    if operation != "DeliverReq":
        inner = (
            "<mm7:MessageID>M1</mm7:MessageID><mm7:Recipient><mm7:Number>1</mm7:Number>"
            f"</mm7:Recipient><mm7:Sender><mm7:Number>{sender}</mm7:Number></mm7:Sender>"
            "<mm7:TimeStamp>2014-04-14T16:15:23Z</mm7:TimeStamp><mm7:MMStatus>Retrieved"
            "</mm7:MMStatus>"
        )
    soap = envelope(inner, transaction_id=transaction_id, operation=operation)
    body, content_type = mm7_body(soap=soap)
    return harness.post(body, content_type)


def status(response: t.Any) -> tuple[int, str | None, str | None]:
    reply = parse_reply(response.data)
    return response.status_code, reply["StatusCode"], reply["TransactionID"]


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("kind", KINDS)
def test_retry_of_an_acknowledged_message_is_not_delivered_twice(kind: str, spec: str) -> None:
    harness = Harness(kind, dedupe=spec)
    harness.behaviour = lambda msg: (1000, "Stored")
    first = deliver(harness)
    second = deliver(harness)
    assert status(first) == status(second) == (200, "1000", "TID-1")
    assert parse_reply(second.data)["StatusText"] == "Stored"
    assert len(harness.calls) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_refusal_is_remembered_too(kind: str, spec: str) -> None:
    harness = Harness(kind, dedupe=spec)

    def refuse(msg: t.Any) -> None:
        raise MM7Error(2004, "content refused")

    harness.behaviour = refuse
    deliver(harness)
    second = deliver(harness)
    assert status(second) == (200, "2004", "TID-1")
    assert parse_reply(second.data)["StatusText"] == "content refused"
    assert len(harness.calls) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "failure",
    [RuntimeError("db down"), MM7Error(4006), MM7Error(3000)],
    ids=["exception", "4006", "3000"],
)
def test_faults_are_not_remembered(kind: str, spec: str, failure: Exception) -> None:
    harness = Harness(kind, dedupe=spec)
    outcomes: list[t.Any] = [failure, None]

    def flaky(msg: t.Any) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    harness.behaviour = flaky
    first = deliver(harness)
    assert first.status_code == 500
    second = deliver(harness)
    assert status(second) == (200, "1000", "TID-1")
    third = deliver(harness)
    assert status(third) == (200, "1000", "TID-1")
    assert len(harness.calls) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_retry_while_the_first_is_in_the_handler_gets_a_retryable_fault(
    kind: str, spec: str
) -> None:
    harness = Harness(kind, dedupe=spec, retry_after=7)
    entered, release = threading.Event(), threading.Event()

    def slow(msg: t.Any) -> None:
        entered.set()
        assert release.wait(10)

    harness.behaviour = slow
    results: list[t.Any] = []
    first = threading.Thread(target=lambda: results.append(deliver(harness)))
    first.start()
    try:
        assert entered.wait(10)
        retry = deliver(harness)
        assert retry.status_code == 503
        assert retry.headers["Retry-After"] == "7"
        assert fault(retry) == ("Server", "4006")
        assert parse_reply(retry.data)["TransactionID"] == "TID-1"
    finally:
        release.set()
        first.join(10)
    assert status(results[0]) == (200, "1000", "TID-1")
    assert status(deliver(harness)) == (200, "1000", "TID-1")
    assert len(harness.calls) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_copies_call_the_handler_once(kind: str, spec: str) -> None:
    harness = Harness(kind, dedupe=spec)
    gate = threading.Barrier(8)
    release = threading.Event()
    harness.behaviour = lambda msg: release.wait(10) and None
    codes: list[int] = []

    def send() -> None:
        gate.wait(10)
        codes.append(deliver(harness).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    # the handler returns only after the seven other copies were answered
    deadline = time.monotonic() + 10
    while len(codes) < 7 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for thread in threads:
        thread.join(10)
    assert sorted(codes) == [200] + [503] * 7
    assert len(harness.calls) == 1


def reused_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "with other content" in r.getMessage()]


@pytest.mark.parametrize("kind", KINDS)
def test_same_transaction_id_with_other_content_is_a_new_message(
    kind: str, spec: str, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(kind, dedupe=spec)
    harness.behaviour = lambda msg: (1000, f"stored {msg.subject}")
    caplog.set_level(logging.WARNING, logger="flask_mm7")
    first = deliver(harness, subject="<mm7:Subject>one</mm7:Subject>")
    assert reused_warnings(caplog) == []
    second = deliver(harness, subject="<mm7:Subject>two</mm7:Subject>")
    # never silently acknowledged: the handler took it, and one line says so
    assert [msg.subject for msg in harness.calls] == ["one", "two"]
    assert parse_reply(second.data)["StatusText"] == "stored two"
    [warning] = reused_warnings(caplog)
    assert "DeliverReq" in warning and "TID-1" in warning
    caplog.clear()
    # a retry of either message is a retry of that message, with its own answer
    for subject, first_reply in (("two", second), ("one", first), ("two", second)):
        retry = deliver(harness, subject=f"<mm7:Subject>{subject}</mm7:Subject>")
        assert retry.data == first_reply.data
    assert len(harness.calls) == 2
    assert reused_warnings(caplog) == []


@pytest.mark.parametrize("kind", KINDS)
def test_other_content_while_the_first_is_in_the_handler_reaches_the_handler(
    kind: str, spec: str
) -> None:
    harness = Harness(kind, dedupe=spec)
    entered, release = threading.Event(), threading.Event()

    def slow_first(msg: t.Any) -> None:
        if msg.subject == "one":
            entered.set()
            assert release.wait(10)

    harness.behaviour = slow_first
    results: list[t.Any] = []
    first = threading.Thread(
        target=lambda: results.append(deliver(harness, subject="<mm7:Subject>one</mm7:Subject>"))
    )
    first.start()
    try:
        assert entered.wait(10)
        other = deliver(harness, subject="<mm7:Subject>two</mm7:Subject>")
        assert status(other) == (200, "1000", "TID-1")
        assert fault(deliver(harness, subject="<mm7:Subject>one</mm7:Subject>")) == (
            "Server",
            "4006",
        )
    finally:
        release.set()
        first.join(10)
    assert status(results[0]) == (200, "1000", "TID-1")
    assert [msg.subject for msg in harness.calls] == ["one", "two"]


JPEG = b"\xff\xd8JPEG\r\n--data\xff\xd9" * 50


def content_body(
    *,
    image: bytes = JPEG,
    image_type: str = "image/jpeg",
    base64: bool = False,
    boundary: str = "outer-b",
    inner_boundary: str = "inner-b",
    nested: bool = True,
    subject: str = "",
) -> tuple[bytes, str]:
    import base64 as b64

    headers = [f"Content-Type: {image_type}", "Content-ID: <img>"]
    data = image
    if base64:
        headers.append("Content-Transfer-Encoding: base64")
        data = b64.encodebytes(image)  # 76-character lines
    soap = envelope(deliver_inner(extra=subject))
    parts = [(headers, data), (["Content-Type: text/plain; charset=utf-8"], b"hello")]
    return mm7_body(
        parts, soap=soap, boundary=boundary, inner_boundary=inner_boundary, nested=nested
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_retry_reframed_by_a_relay_is_still_a_retry(kind: str, spec: str) -> None:
    harness = Harness(kind, dedupe=spec)
    first = harness.post(*content_body())
    # new MIME boundaries, base64 instead of binary, no nesting: the same decoded content
    for framing in (
        {"boundary": "relay-7f3a", "inner_boundary": "relay-7f3b"},
        {"base64": True},
        {"base64": True, "boundary": "x", "nested": False},
    ):
        body, content_type = content_body(**framing)  # type: ignore[arg-type]
        assert body != content_body()[0]
        retry = harness.post(body, content_type)
        assert retry.data == first.data
    assert len(harness.calls) == 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "change",
    [
        {"image": JPEG[:-1] + b"\x00"},
        {"image_type": "image/png"},
        {"subject": "<mm7:Subject>x</mm7:Subject>"},
    ],
    ids=["attachment-bytes", "attachment-type", "soap-part"],
)
def test_any_change_of_decoded_content_is_a_new_message(
    kind: str, spec: str, change: dict[str, t.Any]
) -> None:
    harness = Harness(kind, dedupe=spec)
    harness.post(*content_body())
    harness.post(*content_body(**change))
    assert len(harness.calls) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_spooled_attachments_are_fingerprinted_and_left_readable(kind: str, spec: str) -> None:
    # over the in-memory body limit and the spool threshold: parts go to temporary files,
    # and the fingerprint reads them in blocks before the handler does
    big = os.urandom(700_000)
    harness = Harness(kind, dedupe=spec, spool_threshold=4096, max_memory_body_size=4096)
    seen: list[bytes] = []
    harness.behaviour = lambda msg: seen.append(msg.attachments[0].read()) and None
    first = harness.post(*content_body(image=big))
    assert status(first) == (200, "1000", "TID-1")
    assert seen == [big]
    assert harness.post(*content_body(image=big, base64=True)).data == first.data
    harness.post(*content_body(image=big[:-1] + bytes([big[-1] ^ 1])))
    assert len(harness.calls) == 2 and seen[1][-1] != big[-1]


def test_fingerprint_separates_parts_and_their_types() -> None:
    class Part:
        def __init__(self, data: bytes, mimetype: str = "image/jpeg") -> None:
            self.data, self.mimetype, self.size = data, mimetype, len(data)

        def getvalue(self) -> bytes:
            return self.data

        stream = None

    prints = {
        fingerprint(b"soap", []),
        fingerprint(b"soap", [Part(b"")]),
        fingerprint(b"soapab", []),
        fingerprint(b"soap", [Part(b"ab")]),
        fingerprint(b"soap", [Part(b"a"), Part(b"b")]),
        fingerprint(b"soap", [Part(b"b"), Part(b"a")]),
        fingerprint(b"soap", [Part(b"ab", "image/png")]),
        fingerprint(b"soap", [Part(b"ab", "image/jpe"), Part(b"")]),
    }
    assert len(prints) == 8
    assert fingerprint(b"soap", [Part(b"ab")]) == fingerprint(b"soap", [Part(b"ab")])


@pytest.mark.parametrize("kind", KINDS)
def test_a_status_text_with_a_lone_surrogate_is_recorded(kind: str, spec: str) -> None:
    harness = Harness(kind, dedupe=spec)
    harness.behaviour = lambda msg: (2004, "refused \ud800 here")
    first = deliver(harness)
    assert status(first) == (200, "2004", "TID-1")
    retry = deliver(harness)
    assert retry.data == first.data
    assert len(harness.calls) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_key_is_operation_transaction_id_and_sender(kind: str, spec: str) -> None:
    harness = Harness(kind, dedupe=spec)
    deliver(harness)
    deliver(harness, transaction_id="TID-2")
    deliver(harness, sender="447700900123")
    deliver(harness, operation="DeliveryReportReq")
    assert len(harness.calls) == 4
    deliver(harness, operation="DeliveryReportReq")
    deliver(harness, sender="447700900123")
    assert len(harness.calls) == 4


@pytest.mark.parametrize("kind", KINDS)
def test_without_dedupe_every_copy_reaches_the_handler(kind: str) -> None:
    harness = Harness(kind)
    deliver(harness)
    deliver(harness)
    assert len(harness.calls) == 2


def test_dedupe_from_flask_config(tmp_path: t.Any) -> None:
    app = Flask("cfg")
    app.config["MM7_DEDUPE"] = f"sqlite:///{tmp_path}/d.db"
    app.config["MM7_DEDUPE_TTL"] = "3600"
    app.config["MM7_DEDUPE_LEASE"] = "3"
    mm7 = MM7(app)
    calls: list[t.Any] = []
    mm7.on_deliver(calls.append)
    body, content_type = mm7_body()
    client = app.test_client()
    for _ in range(2):
        assert client.post("/mm7", data=body, content_type=content_type).status_code == 200
    assert len(calls) == 1
    middleware = app.extensions["mm7"].middleware
    assert isinstance(middleware.dedupe, SQLiteStore)
    assert middleware.dedupe.ttl == 3600
    assert middleware.dedupe.lease == 3
    assert (tmp_path / "d.db").exists()


class BrokenStore:
    def __init__(self, fail_on: str) -> None:
        self.fail_on = fail_on
        self.inner = MemoryStore()

    def claim(self, key: str, digest: str) -> Claim:
        if self.fail_on == "claim":
            raise OSError("disk I/O error")
        return self.inner.claim(key, digest)

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        if self.fail_on == "complete":
            raise OSError("disk I/O error")
        self.inner.complete(key, token, status_code, status_text)

    def release(self, key: str, token: str) -> None:
        self.inner.release(key, token)


class OneRecordPerKey(BrokenStore):
    """A store written for one record per key: it answers for the first content."""

    def __init__(self) -> None:
        super().__init__("nothing")
        self.first: dict[str, str] = {}

    def claim(self, key: str, digest: str) -> Claim:
        return self.inner.claim(key, self.first.setdefault(key, digest))


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_with_one_record_per_key_never_swallows_other_content(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(kind, dedupe=OneRecordPerKey())
    caplog.set_level(logging.WARNING, logger="flask_mm7")
    deliver(harness, subject="<mm7:Subject>one</mm7:Subject>")
    deliver(harness, subject="<mm7:Subject>one</mm7:Subject>")
    assert reused_warnings(caplog) == []
    second = deliver(harness, subject="<mm7:Subject>two</mm7:Subject>")
    assert status(second) == (200, "1000", "TID-1")
    assert [msg.subject for msg in harness.calls] == ["one", "two"]
    assert len(reused_warnings(caplog)) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_store_failing_to_claim_is_a_retryable_fault(kind: str) -> None:
    harness = Harness(kind, dedupe=BrokenStore("claim"))
    response = deliver(harness)
    assert response.status_code == 500
    assert fault(response) == ("Server", "3000")
    assert harness.calls == []


@pytest.mark.parametrize("kind", KINDS)
def test_store_failing_to_record_still_answers_the_handlers_status(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(kind, dedupe=BrokenStore("complete"))
    assert status(deliver(harness)) == (200, "1000", "TID-1")
    assert "could not be recorded" in caplog.text
    # the claim was released: a retry reaches the handler (idempotent) instead of 503s
    assert status(deliver(harness)) == (200, "1000", "TID-1")
    assert len(harness.calls) == 2


def test_base_exception_in_the_handler_releases_the_claim() -> None:
    store = MemoryStore()

    def interrupted(msg: t.Any) -> None:
        raise KeyboardInterrupt

    middleware = MM7Middleware(dedupe=store, on_deliver=interrupted, allow_anonymous=True)
    body, content_type = mm7_body()
    with pytest.raises(KeyboardInterrupt):
        Client(middleware).post("/mm7", data=body, content_type=content_type)
    assert len(store) == 0


@pytest.mark.parametrize(
    "value",
    ["redis+x://h", "mongodb", "sqlite:///", "sqlite:///:memory:", "sqlite://x.db", "MEMORY", 42],
)
def test_invalid_dedupe_setting_fails_at_setup(value: t.Any) -> None:
    with pytest.raises(ValueError, match="dedupe must be"):
        Settings(dedupe=value)
    with pytest.raises(ValueError):
        MM7(dedupe=value)


@pytest.mark.parametrize("value", ["", "none", "Off", None])
def test_dedupe_off_forms(value: t.Any) -> None:
    assert Settings(dedupe=value).dedupe is None
    assert Settings.from_mapping({"MM7_DEDUPE": value}).dedupe is None


def test_a_store_object_is_accepted() -> None:
    store = MemoryStore()
    assert isinstance(store, DedupeStore)
    assert make_store(store, ttl=1, max_entries=1, claim_timeout=1) is store
    assert MM7Middleware(dedupe=store, allow_anonymous=True).dedupe is store
    assert make_store(None, ttl=1, max_entries=1, claim_timeout=1) is None


# --------------------------------------------------------------------------- stores


def test_memory_store_is_bounded_lru() -> None:
    clock = Clock()
    store = MemoryStore(max_entries=2, clock=clock)
    for key in ("a", "b"):
        store.complete(key, store.claim(key, "d").token, 1000, "ok")
    assert store.claim("a", "d").state == DONE  # touching "a" makes "b" the oldest
    store.claim("c", "d")
    assert len(store) == 2
    assert store.claim("a", "d").state == DONE
    assert store.claim("b", "d").state == NEW  # evicted


def test_memory_store_drops_expired_entries() -> None:
    clock = Clock()
    store = MemoryStore(ttl=10, claim_timeout=5, clock=clock)
    for key in "abc":
        store.complete(key, store.claim(key, "d").token, 1000, "ok")
    clock.now += 11
    store.claim("z", "d")
    assert len(store) == 1


def test_sqlite_store_purges_expired_rows(tmp_path: t.Any) -> None:
    import sqlite3

    clock = Clock()
    store = SQLiteStore(str(tmp_path / "p.db"), ttl=10, claim_timeout=5, clock=clock)
    for key in "abc":
        store.complete(key, store.claim(key, "d").token, 1000, "ok")
    store.claim("busy", "d")
    clock.now += store.purge_interval + 11
    store.claim("z", "d")
    db = sqlite3.connect(tmp_path / "p.db")
    try:
        assert [row[0] for row in db.execute("SELECT key FROM mm7_dedupe")] == ["z"]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_sqlite_store_pools_connections_and_closes_them(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fd.db"
    store = SQLiteStore(str(path))
    assert handles_in(path) == []  # setup closes its connection
    for i in range(20):
        store.complete(str(i), store.claim(str(i), "d").token, 1000, "ok")
    assert len(store._pool) == 1  # one connection reused, not one per operation
    store.close()
    assert handles_in(path) == []
    store.claim("again", "d")  # usable after close
    del store
    gc.collect()  # the finalizer closes the pool
    assert handles_in(path) == []


def test_sqlite_store_after_fork_opens_its_own_connections(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_mm7 import dedupe

    store = SQLiteStore(str(tmp_path / "f.db"))
    store.claim("k", "d")
    [inherited] = store._pool
    monkeypatch.setattr(dedupe.os, "getpid", lambda: -1)  # as if we were a forked child
    assert store.claim("k", "d").state == BUSY
    assert inherited not in store._pool and inherited in dedupe._ABANDONED
    store.close()
    monkeypatch.undo()
    dedupe._ABANDONED.remove(inherited)
    inherited.close()


def test_sqlite_claim_is_atomic_across_threads(tmp_path: t.Any) -> None:
    store = SQLiteStore(str(tmp_path / "t.db"))
    barrier = threading.Barrier(16)
    states: list[str] = []

    def claim() -> None:
        barrier.wait(10)
        states.append(store.claim("same", "d").state)

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(states) == [BUSY] * 15 + [NEW]


CLAIM_SCRIPT = """
import sys, time
from flask_mm7.dedupe import SQLiteStore
store = SQLiteStore(sys.argv[1])
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
print(store.claim("same", "d").state)
"""


def test_sqlite_claim_is_atomic_across_processes(tmp_path: t.Any) -> None:
    path = str(tmp_path / "p.db")
    SQLiteStore(path)  # create the table first
    start = str(time.time() + 1.5)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM_SCRIPT, path, start],
            stdout=subprocess.PIPE,
            env=env,
        )
        for _ in range(6)
    ]
    states = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        states.append(out.decode().strip())
    assert sorted(states) == [BUSY] * 5 + [NEW]


def test_key_does_not_mix_fields() -> None:
    assert make_key("DeliverReq", "1", "2") != make_key("DeliverReq", "12", "")
    assert make_key("DeliverReq", 'a", "b', "") != make_key("DeliverReq", "a", "b")
    assert make_key("DeliverReq", "\udcff", None) == make_key("DeliverReq", "\udcff", "")
    assert len(make_key("DeliverReq", "x" * 100_000, None)) == 64
