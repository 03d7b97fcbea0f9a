"""The claim rules every dedupe store keeps (the one-host memory and SQLite stores and the
shared ones), and the stores shared by several hosts: Redis (redis-py) and SQL (SQLAlchemy
Core), each against a real server that the tests start on 127.0.0.1 (``tests/servers.py``),
plus SQLite through SQLAlchemy. The rules: one record per key and content, an atomic claim,
complete and release only by the claim's holder, a dead holder's claim free within seconds.
The shared stores' tests are skipped without the servers or the extras."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import typing as t
import uuid
from unittest.mock import ANY

import pytest
from helpers import Clock, mm7_body, parse_reply, wait_for
from servers import postgres_server, redis_server
from werkzeug.test import Client

from flask_mm7 import MM7Middleware, dedupe
from flask_mm7.dedupe import (
    BUSY,
    DONE,
    NEW,
    Claim,
    MemoryStore,
    SQLiteStore,
    check_spec,
    make_store,
)

KINDS = ["redis", "postgresql", "sqlite+pysqlite"]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture(scope="module")
def redis_url() -> t.Iterator[str]:
    pytest.importorskip("redis", reason="needs pip install 'flask-mm7[redis]'")
    with redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def postgres_url() -> t.Iterator[str]:
    pytest.importorskip("sqlalchemy", reason="needs pip install 'flask-mm7[sql]'")
    pytest.importorskip("psycopg", reason="needs pip install 'flask-mm7[sql]'")
    with postgres_server() as url:
        yield url


@contextlib.contextmanager
def _stores(
    kind: str, request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> t.Iterator[t.Callable[..., t.Any]]:
    """Makes stores of ``kind``; those made in one test share their records (as the
    receivers of several hosts do; the memory store is one host: every call gives the same
    store), each test starts from none."""
    made: list[t.Any] = []
    name = "t" + uuid.uuid4().hex[:12]
    if kind == "memory":

        def make(**options: t.Any) -> t.Any:
            options.pop("lease", None)  # claims die with the process: no lease
            if not made:
                made.append(MemoryStore(**options))
            return made[0]
    elif kind == "sqlite":

        def make(**options: t.Any) -> t.Any:
            made.append(SQLiteStore(str(tmp_path / "one-host.db"), **options))
            return made[-1]
    elif kind == "redis":
        from flask_mm7._dedupe_redis import RedisStore

        url = request.getfixturevalue("redis_url")

        def make(**options: t.Any) -> t.Any:
            made.append(RedisStore(url, prefix=name + ":", **options))
            return made[-1]
    else:
        pytest.importorskip("sqlalchemy", reason="needs pip install 'flask-mm7[sql]'")
        from flask_mm7._dedupe_sql import SQLStore

        if kind == "postgresql":
            url = request.getfixturevalue("postgres_url")
        else:
            url = f"sqlite+pysqlite:///{tmp_path / 'shared.db'}"

        def make(**options: t.Any) -> t.Any:
            made.append(SQLStore(url, table=name, **options))
            return made[-1]

    yield make
    for store in made:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture(params=KINDS)
def factory(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> t.Iterator[t.Callable[..., t.Any]]:
    """Makes shared stores of one kind (see :func:`_stores`)."""
    with _stores(request.param, request, tmp_path) as make:
        yield make


@pytest.fixture(params=["memory", "sqlite", *KINDS])
def any_factory(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> t.Iterator[t.Callable[..., t.Any]]:
    """Makes stores of any kind, the one-host ones too: the claim rules every store keeps."""
    with _stores(request.param, request, tmp_path) as make:
        yield make


# ------------------------------------------------------------------------- claim rules


def test_store_states(any_factory: t.Callable[..., t.Any]) -> None:
    clock = Clock()
    store = any_factory(ttl=100, claim_timeout=10, clock=clock)
    other = any_factory(ttl=100, claim_timeout=10, clock=clock)  # another host
    assert isinstance(store, dedupe.DedupeStore)
    first = store.claim("k", "d1")
    assert first == Claim(NEW, first.token, "d1")
    assert other.claim("k", "d1")[:3] == (BUSY, first.token, "d1")
    other.complete("k", "stale-token", 2004, "no")  # only the holder's token completes
    assert other.claim("k", "d1").state == BUSY
    store.complete("k", first.token, 1000, "Success")
    assert other.claim("k", "d1") == Claim(DONE, first.token, "d1", 1000, "Success")
    clock.now += 99
    assert other.claim("k", "d1").state == DONE
    clock.now += 1  # the TTL runs from the answer
    renewed = other.claim("k", "d1")
    assert (renewed.state, renewed.reused) == (NEW, False)
    store.release("k", "stale-token")  # only the holder's token releases
    assert store.claim("k", "d1").state == BUSY
    store.release("k", first.token)  # nor does an old claim's
    assert store.claim("k", "d1").state == BUSY
    other.release("k", renewed.token)
    assert store.claim("k", "d1").state == NEW


def test_one_record_per_key_and_content(any_factory: t.Callable[..., t.Any]) -> None:
    clock = Clock()
    store = any_factory(ttl=100, claim_timeout=10, clock=clock)
    one = store.claim("k", "d1")
    two = store.claim("k", "d2")  # the same key with other content is not a retry
    assert (two.state, two.digest, two.reused) == (NEW, "d2", True)
    assert store.claim("k", "d2")[:3] == (BUSY, two.token, "d2")
    store.complete("k", two.token, 2004, "two")
    store.complete("k", one.token, 1000, "one")
    assert store.claim("k", "d1") == Claim(DONE, one.token, "d1", 1000, "one")
    assert store.claim("k", "d2") == Claim(DONE, two.token, "d2", 2004, "two")
    assert store.claim("other", "d1").reused is False
    clock.now += 100  # both answers expired: a third content is nobody's reuse
    assert store.claim("k", "d3").reused is False


def test_a_claim_is_given_up_after_the_claim_timeout(any_factory: t.Callable[..., t.Any]) -> None:
    clock = Clock()
    store = any_factory(ttl=100, claim_timeout=10, lease=1000, clock=clock)
    lost = store.claim("k", "d")
    clock.now += 9.9
    assert store.claim("k", "d").state == BUSY
    clock.now += 0.1
    retaken = store.claim("k", "d")
    assert retaken.state == NEW and retaken.token != lost.token
    store.complete("k", lost.token, 1000, "late")  # the stuck holder's claim is void
    assert store.claim("k", "d").state == BUSY


@pytest.mark.parametrize("text", ["\ud800", "a\udcff\x00b\U0001f600 \"'\\/", ""])
def test_any_status_text_comes_back(any_factory: t.Callable[..., t.Any], text: str) -> None:
    store = any_factory()
    store.complete("k", store.claim("k", "d").token, 1000, text)
    assert any_factory().claim("k", "d") == Claim(DONE, ANY, "d", 1000, text)


def test_concurrent_claims_from_many_hosts_one_wins(factory: t.Callable[..., t.Any]) -> None:
    stores = [factory() for _ in range(4)]
    barrier = threading.Barrier(16)
    states: list[str] = []

    def claim(store: t.Any) -> None:
        barrier.wait(10)
        states.append(store.claim("k", "d").state)

    threads = [threading.Thread(target=claim, args=(stores[i % 4],)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(states) == [BUSY] * 15 + [NEW]


# ------------------------------------------------------------------------- leases


def test_a_claim_is_renewed_while_held_and_runs_out_when_not(
    factory: t.Callable[..., t.Any],
) -> None:
    store = factory(lease=0.3)
    other = factory(lease=0.3)
    claim = store.claim("k", "d")
    deadline = time.monotonic() + 1.5  # five leases
    while time.monotonic() < deadline:
        assert other.claim("k", "d").state == BUSY
        time.sleep(0.05)
    store.complete("k", claim.token, 1000, "ok")
    assert other.claim("k", "d").state == DONE
    store.claim("k2", "d")
    store._stop.set()  # as if the holder froze: no more renewals
    assert other.claim("k2", "d").state == BUSY
    assert wait_for(lambda: other.claim("k2", "d").state == NEW, 3) < 1.0


HOLD_SCRIPT = """
import sys
from flask_mm7 import dedupe
if sys.argv[2] != "here":
    dedupe._HOST = "another-host/1"
kind, url, name = sys.argv[3:6]
if kind == "redis":
    from flask_mm7._dedupe_redis import RedisStore
    store = RedisStore(url, prefix=name + ":", lease=float(sys.argv[1]))
else:
    from flask_mm7._dedupe_sql import SQLStore
    store = SQLStore(url, table=name, lease=float(sys.argv[1]))
print(store.claim("k", "d").state, flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_a_claim_of_a_killed_holder_frees_within_seconds(
    factory: t.Callable[..., t.Any], where: str
) -> None:
    """SIGKILLed on this host: free at once (its PID is gone); on another host: after its
    lease (0.5 s here)."""
    store = factory(lease=0.5)
    kind, url, name = _where(store)
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, "0.5", where, kind, url, name],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        env=ENV,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == NEW.encode()
            time.sleep(1.2)
            assert store.claim("k", "d").state == BUSY  # renewed by the other process
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            took = wait_for(lambda: store.claim("k", "d").state == NEW, 5)
        finally:
            if holder.poll() is None:
                holder.kill()
    assert took < (0.3 if where == "here" else 1.0)


def _where(store: t.Any) -> tuple[str, str, str]:
    """(kind, URL, name) that let another process open ``store``'s records."""
    if hasattr(store, "prefix"):
        kwargs = store.client.connection_pool.connection_kwargs
        url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
        return "redis", url, store.prefix[:-1]
    return "sql", store.engine.url.render_as_string(hide_password=False), store.table.name


# ------------------------------------------------------------------------- the receiver


def test_the_receiver_dedupes_across_hosts(factory: t.Callable[..., t.Any]) -> None:
    calls: list[str] = []
    hosts = [
        MM7Middleware(dedupe=factory(), on_deliver=lambda m: calls.append(m.transaction_id),
                      allow_anonymous=True)
        for _ in range(2)
    ]  # fmt: skip
    body, content_type = mm7_body()
    for app in hosts + hosts:  # the relay's retries reach either host
        reply = Client(app).post("/mm7", data=body, content_type=content_type)
        assert reply.status_code == 200 and parse_reply(reply.data)["StatusCode"] == "1000"
    assert len(calls) == 1


# ------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize(
    ("url", "module", "cls"),
    [
        ("redis://127.0.0.1:1/0", "flask_mm7._dedupe_redis", "RedisStore"),
        ("rediss://127.0.0.1:1/0", "flask_mm7._dedupe_redis", "RedisStore"),
        ("unix:///nonexistent/redis.sock", "flask_mm7._dedupe_redis", "RedisStore"),
        ("sqlite+pysqlite:///{tmp}/x.db", "flask_mm7._dedupe_sql", "SQLStore"),
    ],
)
def test_make_store_dispatches_on_the_url(
    url: str, module: str, cls: str, tmp_path: pathlib.Path
) -> None:
    imported = pytest.importorskip(module)
    store = make_store(url.format(tmp=tmp_path), ttl=5, max_entries=1, claim_timeout=7, lease=3)
    assert type(store) is getattr(imported, cls)
    assert (store.ttl, store.claim_timeout, store.lease) == (5, 7, 3)  # type: ignore[union-attr]
    store.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "url", ["redis+x://h", "sqlite://", "postgres", "://x", "redis:/x", "sqlite:///:memory:"]
)
def test_invalid_urls_fail_at_setup(url: str) -> None:
    with pytest.raises(ValueError, match="dedupe must be"):
        check_spec(url)


NO_EXTRAS = """
import sys
sys.modules["redis"] = sys.modules["sqlalchemy"] = None  # as if not installed
import flask_mm7, flask_mm7._extension
from flask_mm7 import MM7Middleware
from flask_mm7.dedupe import check_spec
MM7Middleware(dedupe="memory", allow_anonymous=True)
for url, extra in [("redis://h/0", "redis"), ("postgresql+psycopg://h/db", "sql")]:
    try:
        check_spec(url)
    except ValueError as error:
        assert f"flask-mm7[{extra}]" in str(error), error
    else:
        raise AssertionError(url)
assert "redis" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
print("ok")
"""


def test_the_core_works_without_the_extras() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_EXTRAS], env=ENV, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


# ------------------------------------------------------------------------- housekeeping


def test_redis_forgets_a_key_on_its_own(redis_url: str) -> None:
    from flask_mm7._dedupe_redis import RedisStore

    store = RedisStore(redis_url, prefix=f"t{uuid.uuid4().hex[:12]}:", ttl=0.6, lease=0.3)
    key = store.prefix + "k"
    claim = store.claim("k", "d")
    assert 0 < store.client.pttl(key) <= 300  # a claim lives as long as its lease
    store.complete("k", claim.token, 1000, "ok")
    assert 300 < store.client.pttl(key) <= 600  # an answer as long as the TTL
    assert wait_for(lambda: not store.client.exists(key), 3) > 0.3
    store.close()


def test_sql_store_purges_expired_rows(postgres_url: str) -> None:
    import sqlalchemy as sa

    from flask_mm7._dedupe_sql import SQLStore

    clock = Clock()
    store = SQLStore(postgres_url, table=f"t{uuid.uuid4().hex[:12]}", ttl=100, clock=clock)
    store.purge_interval = 0
    store.complete("old", store.claim("old", "d").token, 1000, "ok")
    store.claim("stuck", "d")
    store._stop.set()  # the stuck claim is no longer renewed
    clock.now += 101
    store.claim("new", "d")
    with store.engine.connect() as db:
        keys = db.execute(sa.select(store.table.c.msg_key)).scalars().all()
    assert keys == ["new"]
    store.close()
