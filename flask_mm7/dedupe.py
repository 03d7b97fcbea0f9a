"""Remember which MM7 transactions were acknowledged, so a relay's retry is not delivered twice.

Relays retry when they miss our reply (a timeout, a dropped connection), so one TransactionID
can arrive twice. A :class:`DedupeStore` records, per key (operation, TransactionID, sender):

* a *claim* while the first request is in the handler (a retry then gets a retryable Fault);
* the final answer once it is sent with HTTP 200 (a retry gets the same status again, and the
  handler is not called);
* nothing after a Fault, so the relay's retry reaches the handler.

Two stores ship: :class:`MemoryStore` (one process, bounded LRU with a TTL) and
:class:`SQLiteStore` (one table, shared by every worker process on the host). Knows nothing of
MIME, SOAP, WSGI or Flask.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
import typing as t
import weakref

#: the key is free: call the handler, then :meth:`DedupeStore.complete` or ``release``
NEW = "new"
#: another request holds the key and has not answered yet
BUSY = "busy"
#: the key was answered with ``status_code`` / ``status_text``
DONE = "done"

SQLITE_PREFIX = "sqlite:///"


class Claim(t.NamedTuple):
    """The outcome of :meth:`DedupeStore.claim`."""

    #: :data:`NEW`, :data:`BUSY` or :data:`DONE`
    state: str
    #: identifies this claim in ``complete`` / ``release`` (for NEW) or the holder's claim
    token: str
    #: the content digest recorded with the key (the first request's)
    digest: str
    #: the status answered (DONE only)
    status_code: int | None = None
    #: the StatusText answered (DONE only)
    status_text: str | None = None


@t.runtime_checkable
class DedupeStore(t.Protocol):
    """What the receiver needs from a store; implement it to use Redis, a SQL database...

    ``claim`` must be atomic across every process sharing the store: of two concurrent claims
    of one key, exactly one may get :data:`NEW`.
    """

    def claim(self, key: str, digest: str) -> Claim:
        """Claim ``key`` for a request whose SOAP part hashes to ``digest``."""

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        """Record the final answer of the claim ``token`` (ignored if the claim was lost)."""

    def release(self, key: str, token: str) -> None:
        """Forget the claim ``token`` (the request was answered with a Fault)."""


def make_key(operation: str, transaction_id: str, sender: str | None) -> str:
    """A fixed-length key for (operation, TransactionID, sender)."""
    raw = json.dumps([operation, transaction_id, sender or ""])  # unambiguous, ASCII
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def digest(data: bytes) -> str:
    """The content hash stored with a key, to notice the same TransactionID with other content."""
    return hashlib.sha256(data).hexdigest()


def check_spec(spec: t.Any) -> None:
    """Fail early on a ``dedupe`` setting that :func:`make_store` would refuse."""
    if spec is None or isinstance(spec, DedupeStore):
        return
    if isinstance(spec, str):
        if spec == "memory":
            return
        path = spec[len(SQLITE_PREFIX) :]
        if spec.startswith(SQLITE_PREFIX) and path and path != ":memory:":
            return
    raise ValueError(
        "dedupe must be None, 'memory', 'sqlite:///path/to.db' (four slashes for an absolute"
        f" path) or a DedupeStore, not {spec!r}"
    )


def make_store(
    spec: t.Any, *, ttl: float, max_entries: int, claim_timeout: float
) -> DedupeStore | None:
    """The store a ``dedupe`` setting names (None for None)."""
    check_spec(spec)
    if spec is None:
        return None
    if spec == "memory":
        return MemoryStore(ttl=ttl, max_entries=max_entries, claim_timeout=claim_timeout)
    if isinstance(spec, str):
        return SQLiteStore(spec[len(SQLITE_PREFIX) :], ttl=ttl, claim_timeout=claim_timeout)
    return t.cast(DedupeStore, spec)


class MemoryStore:
    """Keys in this process's memory: at most ``max_entries``, each kept ``ttl`` seconds.

    Every gunicorn worker has its own: use :class:`SQLiteStore` when several processes serve
    the endpoint. Thread-safe.
    """

    def __init__(
        self,
        *,
        ttl: float = 86400,
        max_entries: int = 100_000,
        claim_timeout: float = 300,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.claim_timeout = claim_timeout
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [token, digest, done, status_code, status_text, updated]; oldest first
        self._entries: collections.OrderedDict[str, list[t.Any]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _stale(self, entry: list[t.Any], now: float) -> bool:
        return bool(now - entry[5] >= (self.ttl if entry[2] else self.claim_timeout))

    def claim(self, key: str, digest: str) -> Claim:
        with self._lock:
            now = self._clock()
            while self._entries:  # drop expired entries from the old end
                oldest = next(iter(self._entries.values()))
                if not self._stale(oldest, now):
                    break
                self._entries.popitem(last=False)
            entry = self._entries.get(key)
            if entry is not None and not self._stale(entry, now):
                self._entries.move_to_end(key)
                return Claim(DONE if entry[2] else BUSY, entry[0], entry[1], entry[3], entry[4])
            token = secrets.token_hex(8)
            self._entries[key] = [token, digest, False, None, None, now]
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return Claim(NEW, token, digest)

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == token:
                entry[2:6] = [True, status_code, status_text, self._clock()]
                self._entries.move_to_end(key)

    def release(self, key: str, token: str) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == token:
                del self._entries[key]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS mm7_dedupe (
    key TEXT PRIMARY KEY NOT NULL,
    token TEXT NOT NULL,
    digest TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    status_code INTEGER,
    status_text TEXT,
    updated REAL NOT NULL
)
"""


class SQLiteStore:
    """Keys in one SQLite table, safe across threads and processes on one host.

    The claim is one ``BEGIN IMMEDIATE`` transaction around an ``INSERT OR IGNORE`` on the
    primary key, so of two processes claiming a key exactly one wins. The journal is WAL with
    ``synchronous=NORMAL`` (no fsync per answer). Connections are kept in a small pool per
    process, so that closing one does not checkpoint the WAL on every request; a forked worker
    leaves its parent's connections alone and opens its own. The database must be on a local
    disk (SQLite locking is unreliable on NFS). :meth:`close` closes the pooled connections
    (also done when the store is garbage-collected).
    """

    #: seconds between sweeps of expired rows (per process)
    purge_interval = 60.0
    #: idle connections kept for reuse (per process)
    pool_size = 4

    def __init__(
        self,
        path: str,
        *,
        ttl: float = 86400,
        claim_timeout: float = 300,
        timeout: float = 10.0,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.claim_timeout = claim_timeout
        self.timeout = timeout
        self._clock = clock
        self._next_purge = 0.0
        self._lock = threading.Lock()
        self._pool: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._finalizer = weakref.finalize(self, _close_all, self._pool, self._pid)
        db = self._open()
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            db.execute("CREATE INDEX IF NOT EXISTS mm7_dedupe_updated ON mm7_dedupe (updated)")
        finally:
            db.close()

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r}>"

    def close(self) -> None:
        """Close the pooled connections; the store opens new ones if used again."""
        with self._lock:
            if self._pid == os.getpid():
                _close_all(self._pool, self._pid)
            self._pool.clear()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextlib.contextmanager
    def _connect(self) -> t.Iterator[sqlite3.Connection]:
        db: sqlite3.Connection | None = None
        with self._lock:
            if self._pid != os.getpid():  # forked: never touch the parent's connections
                _ABANDONED.extend(self._pool)
                self._pool = []
                self._pid = os.getpid()
                self._finalizer.detach()
                self._finalizer = weakref.finalize(self, _close_all, self._pool, self._pid)
            if self._pool:
                db = self._pool.pop()
        if db is None:
            db = self._open()
        reusable = False
        try:
            yield db
            reusable = not db.in_transaction
        finally:
            if reusable:
                with self._lock:
                    if len(self._pool) < self.pool_size and self._pid == os.getpid():
                        self._pool.append(db)
                        db = None
            if db is not None:
                db.close()

    def claim(self, key: str, digest: str) -> Claim:
        now = self._clock()
        token = secrets.token_hex(8)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                inserted = db.execute(
                    "INSERT OR IGNORE INTO mm7_dedupe (key, token, digest, done, updated)"
                    " VALUES (?, ?, ?, 0, ?)",
                    (key, token, digest, now),
                ).rowcount
                result = Claim(NEW, token, digest)
                if inserted != 1:
                    row = db.execute(
                        "SELECT token, digest, done, status_code, status_text, updated"
                        " FROM mm7_dedupe WHERE key = ?",
                        (key,),
                    ).fetchone()
                    if now - row[5] >= (self.ttl if row[2] else self.claim_timeout):
                        db.execute(
                            "UPDATE mm7_dedupe SET token = ?, digest = ?, done = 0,"
                            " status_code = NULL, status_text = NULL, updated = ? WHERE key = ?",
                            (token, digest, now, key),
                        )
                    else:
                        result = Claim(DONE if row[2] else BUSY, row[0], row[1], row[3], row[4])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if now >= self._next_purge:
                self._next_purge = now + self.purge_interval
                db.execute(
                    "DELETE FROM mm7_dedupe WHERE updated < ? AND done = 1"
                    " OR updated < ? AND done = 0",
                    (now - self.ttl, now - self.claim_timeout),
                )
        return result

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE mm7_dedupe SET done = 1, status_code = ?, status_text = ?, updated = ?"
                " WHERE key = ? AND token = ?",
                (status_code, status_text, self._clock(), key, token),
            )

    def release(self, key: str, token: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM mm7_dedupe WHERE key = ? AND token = ?", (key, token))


#: connections inherited through fork: kept referenced so that garbage collection in the child
#: never closes them (closing a file drops every POSIX lock this process holds on it, those of
#: the child's own connections included)
_ABANDONED: list[sqlite3.Connection] = []


def _close_all(pool: list[sqlite3.Connection], pid: int) -> None:
    if os.getpid() != pid:
        return
    while pool:
        pool.pop().close()
