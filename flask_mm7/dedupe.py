"""Remember which MM7 transactions were acknowledged, so a relay's retry is not delivered twice.

Relays retry when they miss our reply (a timeout, a dropped connection), so one message can
arrive twice. A retry is the same message: the same key (operation, TransactionID, sender) and
the same content fingerprint (:func:`fingerprint`, over the decoded content, so a relay that
re-frames a retry with a new MIME boundary or transfer encoding is still recognised). A
:class:`DedupeStore` keeps one record per (key, fingerprint):

* a *claim* while the first request is in the handler (a retry then gets a retryable Fault);
* the final answer once it is sent with HTTP 200 (a retry gets the same status again, and the
  handler is not called);
* nothing after a Fault, so the relay's retry reaches the handler.

The same key with other content is another message: it gets its own record, and the store
says so (:attr:`Claim.reused`) so that the receiver can log it.

Two stores ship here: :class:`MemoryStore` (one process, bounded LRU with a TTL) and
:class:`SQLiteStore` (one table, shared by every worker process on the host; a claim is a
short lease renewed while its handler runs (:class:`LeaseHolder`), so the claim of a killed
worker is free again within seconds). Two more are shared by several hosts, each in its own
module imported only when its URL is used: :mod:`flask_mm7._dedupe_redis` (``redis://``) and
:mod:`flask_mm7._dedupe_sql` (any SQLAlchemy URL). Knows nothing of MIME framing, SOAP, WSGI or
Flask.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
import typing as t
import weakref

from ._config import DEFAULTS

#: the key is free: call the handler, then :meth:`DedupeStore.complete` or ``release``
NEW = "new"
#: another request holds the key and has not answered yet
BUSY = "busy"
#: the key was answered with ``status_code`` / ``status_text``
DONE = "done"

SQLITE_PREFIX = "sqlite:///"

#: bytes read at a time when hashing an attachment spooled to disk
BLOCK_SIZE = 256 * 1024

logger = logging.getLogger(__name__)


class Claim(t.NamedTuple):
    """The outcome of :meth:`DedupeStore.claim`."""

    #: :data:`NEW`, :data:`BUSY` or :data:`DONE`
    state: str
    #: identifies this claim in ``complete`` / ``release`` (for NEW) or the holder's claim
    token: str
    #: the content fingerprint of the record (the one claimed, for a store that keeps one
    #: record per key and fingerprint)
    digest: str
    #: the status answered (DONE only)
    status_code: int | None = None
    #: the StatusText answered (DONE only)
    status_text: str | None = None
    #: NEW only: the key already has a record with another fingerprint (the same
    #: TransactionID and sender used for another message)
    reused: bool = False


@t.runtime_checkable
class DedupeStore(t.Protocol):
    """What the receiver needs from a store; implement it to use Redis, a SQL database...

    A record is identified by (key, digest): the same key with another digest is another
    message and must get :data:`NEW` (set :attr:`Claim.reused` if you can tell). ``claim``
    must be atomic across every process sharing the store: of two concurrent claims of one
    (key, digest), exactly one may get :data:`NEW`. A claim whose holder died should be free
    again soon (a lease), one whose holder lives until it completes or releases it.
    """

    def claim(self, key: str, digest: str) -> Claim:
        """Claim ``key`` for a request whose content fingerprint is ``digest``."""

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        """Record the final answer of the claim ``token`` (ignored if the claim was lost).

        ``status_text`` is any ``str``, lone surrogates included."""

    def release(self, key: str, token: str) -> None:
        """Forget the claim ``token`` (the request was answered with a Fault)."""


class Content(t.Protocol):
    """A decoded MIME part, as :func:`fingerprint` reads it (an ``Attachment``)."""

    size: int

    @property
    def mimetype(self) -> str: ...

    @property
    def stream(self) -> t.IO[bytes]: ...

    def getvalue(self) -> bytes: ...


def make_key(operation: str, transaction_id: str, sender: str | None) -> str:
    """A fixed-length key for (operation, TransactionID, sender)."""
    raw = json.dumps([operation, transaction_id, sender or ""])  # unambiguous, ASCII
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def fingerprint(soap: bytes, parts: t.Iterable[Content]) -> str:
    """The content fingerprint of a message: its SOAP part's bytes, then each attachment's
    media type and decoded bytes, in order.

    Transfer-decoded content only: the same message re-framed (another boundary, base64
    instead of binary) has the same fingerprint. Spooled attachments are read in blocks and
    their stream position is restored.
    """
    outer = hashlib.sha256(hashlib.sha256(soap).digest())
    for part in parts:
        # each part hashed on its own, so that no byte can move across a part's edge
        inner = hashlib.sha256()
        if part.size <= BLOCK_SIZE:
            inner.update(part.getvalue())  # in memory: no copy; spooled: one small read
        else:
            stream = part.stream
            position = stream.tell()
            stream.seek(0)
            try:
                for block in iter(functools.partial(stream.read, BLOCK_SIZE), b""):
                    inner.update(block)
            finally:
                stream.seek(position)
        outer.update(part.mimetype.encode("ascii", "backslashreplace") + b"\0")
        outer.update(inner.digest())
    return outer.hexdigest()


#: URL schemes of a Redis server (:class:`flask_mm7._dedupe_redis.RedisStore`)
REDIS_SCHEMES = ("redis", "rediss", "unix")
#: ``dialect[+driver]://``: any other URL is a SQLAlchemy database URL
_URL = re.compile(r"([A-Za-z][A-Za-z0-9]*)(\+[A-Za-z0-9_]+)?://")


def _kind(spec: str) -> str | None:
    """Which store a ``dedupe`` string names: memory, sqlite, redis, sql or None (invalid)."""
    if spec == "memory":
        return "memory"
    if spec.startswith(SQLITE_PREFIX):
        path = spec[len(SQLITE_PREFIX) :]
        return "sqlite" if path and path != ":memory:" else None
    match = _URL.match(spec)
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme in REDIS_SCHEMES:
        return None if match.group(2) else "redis"
    if scheme == "sqlite" and not match.group(2):
        return None  # sqlite:// alone is an in-memory database, one per connection
    return "sql"


#: the module each store of a shared server needs, and the extra that installs it
_EXTRAS = {"redis": ("redis", "redis"), "sql": ("sqlalchemy", "sql")}


def check_spec(spec: t.Any) -> None:
    """Fail early on a ``dedupe`` setting that :func:`make_store` would refuse."""
    if spec is None or isinstance(spec, DedupeStore):
        return
    kind = _kind(spec) if isinstance(spec, str) else None
    if kind is None:
        raise ValueError(
            "dedupe must be None, 'memory', 'sqlite:///path/to.db' (four slashes for an"
            " absolute path), a Redis URL (redis://, rediss://, unix://), a SQLAlchemy database"
            f" URL (postgresql+psycopg://...) or a DedupeStore, not {spec!r}"
        )
    if kind in _EXTRAS:
        module, extra = _EXTRAS[kind]
        if importlib.util.find_spec(module) is None:
            raise ValueError(
                f"dedupe {kind} store needs {module}: pip install 'flask-mm7[{extra}]'"
            )


def make_store(
    spec: t.Any, *, ttl: float, max_entries: int, claim_timeout: float, lease: float = 10
) -> DedupeStore | None:
    """The store a ``dedupe`` setting names (None for None).

    ``redis://``, ``rediss://`` and ``unix://`` URLs make a
    :class:`~flask_mm7._dedupe_redis.RedisStore`, any other ``dialect+driver://`` URL a
    :class:`~flask_mm7._dedupe_sql.SQLStore` (their modules are imported only then).
    """
    check_spec(spec)
    if spec is None:
        return None
    if not isinstance(spec, str):
        return t.cast(DedupeStore, spec)
    kind = _kind(spec)
    if kind == "memory":
        return MemoryStore(ttl=ttl, max_entries=max_entries, claim_timeout=claim_timeout)
    if kind == "sqlite":
        return SQLiteStore(
            spec[len(SQLITE_PREFIX) :], ttl=ttl, claim_timeout=claim_timeout, lease=lease
        )
    if kind == "redis":
        from ._dedupe_redis import RedisStore

        return RedisStore(spec, ttl=ttl, claim_timeout=claim_timeout, lease=lease)
    from ._dedupe_sql import SQLStore

    return SQLStore(spec, ttl=ttl, claim_timeout=claim_timeout, lease=lease)


class MemoryStore:
    """Records in this process's memory: at most ``max_entries``, each kept ``ttl`` seconds.

    Every gunicorn worker has its own: use :class:`SQLiteStore` when several processes serve
    the endpoint. A claim's holder is a thread of this process, so it lives as long as the
    store: a claim is kept until it is completed or released, or ``claim_timeout`` seconds
    (a handler stuck that long). Thread-safe.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULTS.dedupe_ttl,
        max_entries: int = DEFAULTS.dedupe_max_entries,
        claim_timeout: float = DEFAULTS.dedupe_claim_timeout,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.claim_timeout = claim_timeout
        self._clock = clock
        self._lock = threading.Lock()
        # (key, digest) -> [token, done, status_code, status_text, updated]; oldest first
        self._entries: collections.OrderedDict[tuple[str, str], list[t.Any]] = (
            collections.OrderedDict()
        )
        # key -> the digests recorded under it (nearly always one)
        self._digests: dict[str, set[str]] = {}
        # token -> its record's (key, digest)
        self._tokens: dict[str, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _stale(self, entry: list[t.Any], now: float) -> bool:
        return bool(now - entry[4] >= (self.ttl if entry[1] else self.claim_timeout))

    def _drop(self, ident: tuple[str, str]) -> None:
        entry = self._entries.pop(ident)
        self._tokens.pop(entry[0], None)
        digests = self._digests[ident[0]]
        digests.discard(ident[1])
        if not digests:
            del self._digests[ident[0]]

    def claim(self, key: str, digest: str) -> Claim:
        with self._lock:
            now = self._clock()
            while self._entries:  # drop expired entries from the old end
                ident, oldest = next(iter(self._entries.items()))
                if not self._stale(oldest, now):
                    break
                self._drop(ident)
            ident = (key, digest)
            entry = self._entries.get(ident)
            if entry is not None and not self._stale(entry, now):
                self._entries.move_to_end(ident)
                return Claim(DONE if entry[1] else BUSY, entry[0], digest, entry[2], entry[3])
            if entry is not None:
                self._drop(ident)
            digests = self._digests.setdefault(key, set())
            reused = any(not self._stale(self._entries[(key, d)], now) for d in digests)
            token = secrets.token_hex(8)
            self._entries[ident] = [token, False, None, None, now]
            digests.add(digest)
            self._tokens[token] = ident
            while len(self._entries) > self.max_entries:
                self._drop(next(iter(self._entries)))
            return Claim(NEW, token, digest, reused=reused)

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        with self._lock:
            ident = self._tokens.get(token)
            if ident is not None and ident[0] == key:
                self._entries[ident][1:5] = [True, status_code, status_text, self._clock()]
                self._entries.move_to_end(ident)

    def release(self, key: str, token: str) -> None:
        with self._lock:
            ident = self._tokens.get(token)
            if ident is not None and ident[0] == key:
                self._drop(ident)


_TABLE = "mm7_dedupe"
_COLUMNS = ("key", "digest", "token", "done", "status_code", "status_text", "holder", "started")
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    token TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    status_code INTEGER,
    status_text TEXT,
    holder TEXT,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (key, digest)
)
"""


def _host_id() -> str:
    """This host and PID namespace: two processes with the same id see each other's PIDs."""
    try:  # containers sharing a database file have their own PID namespaces
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}/{namespace}"


_HOST = _host_id()


def _pid_alive(pid: int) -> bool:
    """False only when no process ``pid`` exists (POSIX; elsewhere always True)."""
    if os.name != "posix" or pid <= 0:
        return True  # on Windows os.kill(pid, 0) would terminate the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user
        return True
    return True


def holder_dead(holder: str | None) -> bool:
    """The claim's holder is a process of this host that no longer exists."""
    host, _, pid = (holder or "").rpartition(":")
    return host == _HOST and pid.isdigit() and not _pid_alive(int(pid))


class LeaseHolder:
    """Claims as leases, for a store shared by several processes (or hosts).

    A claim is a lease of ``lease`` seconds that one background thread per process renews
    every ``lease / 3`` seconds while its handler runs, for at most ``claim_timeout`` seconds
    in all: a claim is free again when its lease ran out (the holder was killed, or froze), or
    at once when its holder (:func:`holder_id`) was a process of this host that no longer
    exists (:meth:`free`). A store calls :meth:`_init_leases` in its constructor,
    :meth:`_hold` for each claim it grants and :meth:`_unhold` when it is completed or
    released, and implements :meth:`_renew_claims`. After a fork the child forgets the
    parent's claims (:meth:`_after_fork`, with the hook :meth:`_forked`).
    """

    #: renewal rounds with no claim held after which the renewal thread ends (a new one
    #: starts with the next claim): about a minute with the default lease
    idle_beats = 20

    ttl: float
    lease: float
    claim_timeout: float
    _clock: t.Callable[[], float]

    def _init_leases(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # claims this process holds and renews: token -> (key, digest, time claimed)
        self._held: dict[str, tuple[str, str, float]] = {}
        self._heartbeat: threading.Thread | None = None
        self._idle = 0
        self._stop = threading.Event()

    def free(
        self, done: t.Any, holder: str | None, started: float, updated: float, now: float
    ) -> bool:
        """A record (answered or not, its holder, claimed and last renewed or answered at)
        may be claimed again at ``now``."""
        if done:
            return bool(now - updated >= self.ttl)
        return (
            now - updated >= self.lease
            or now - started >= self.claim_timeout
            or holder_dead(holder)
        )

    def _after_fork(self) -> None:
        """In a forked child, forget the parent's claims (call with ``_lock`` held)."""
        if self._pid == os.getpid():
            return
        self._held.clear()  # the parent's claims are the parent's to renew
        self._heartbeat = None
        self._pid = os.getpid()
        self._forked()

    def _forked(self) -> None:
        """Called in a forked child, ``_lock`` held: leave the parent's connections alone."""

    def _stop_renewing(self) -> None:
        self._stop.set()

    def _hold(self, token: str, key: str, digest: str, now: float) -> None:
        """Renew the claim ``token`` until it is completed or released."""
        with self._lock:
            self._after_fork()
            self._held[token] = (key, digest, now)
            if self._heartbeat is None or self._stop.is_set():
                self._stop = threading.Event()
                self._idle = 0
                self._heartbeat = threading.Thread(
                    target=_heartbeat,
                    args=(weakref.ref(self), self._stop, self.lease / 3),
                    name="flask-mm7-dedupe-lease",
                    daemon=True,
                )
                self._heartbeat.start()

    def _unhold(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)

    def _renew(self) -> bool:
        """Renew every held claim younger than ``claim_timeout``; False when the renewal
        thread should end (none held for ``idle_beats`` rounds)."""
        now = self._clock()
        with self._lock:
            if self._pid != os.getpid():
                return False  # a forked child: this thread object is the parent's
            for token, (_, _, started) in list(self._held.items()):
                if now - started >= self.claim_timeout:
                    del self._held[token]  # a stuck handler: let its claim run out
            held = [(now, key, digest, token) for token, (key, digest, _) in self._held.items()]
            if not held:
                self._idle += 1
                if self._idle < self.idle_beats:
                    return True
                self._heartbeat = None
                return False
            self._idle = 0
        try:
            self._renew_claims(held)
        except Exception:  # busy, locked, unreachable: the next beat tries again within the lease
            logger.warning("MM7 dedupe: could not renew %d claim(s)", len(held), exc_info=True)
        return True

    def _renew_claims(self, held: list[tuple[float, str, str, str]]) -> None:
        """Renew the claims (now, key, digest, token) that are still this process's."""
        raise NotImplementedError


def holder_id() -> str:
    """Who holds a claim made now: this host (and PID namespace) and process."""
    return f"{_HOST}:{os.getpid()}"


class SQLiteStore(LeaseHolder):
    """Records in one SQLite table, safe across threads and processes on one host.

    The claim is one ``BEGIN IMMEDIATE`` transaction on the (key, fingerprint) primary key, so
    of two processes claiming it exactly one wins. A claim is a *lease* of ``lease`` seconds
    that a background thread of the holder renews every ``lease / 3`` seconds while its
    handler runs, for at most ``claim_timeout`` seconds in all. A claim is free again when its
    lease ran out (the holder was killed, or froze), or at once when its holder was a process
    of this host that no longer exists. StatusText is stored JSON-escaped, so any ``str``
    (lone surrogates included) comes back as it was.

    The journal is WAL with ``synchronous=NORMAL`` (no fsync per answer). Connections are kept
    in a small pool per process, so that closing one does not checkpoint the WAL on every
    request; a forked worker leaves its parent's connections and claims alone and opens its
    own. The database must be on a local disk (SQLite locking is unreliable on NFS).
    :meth:`close` closes the pooled connections (also done when the store is
    garbage-collected).
    """

    #: seconds between sweeps of expired rows (per process)
    purge_interval = 60.0
    #: idle connections kept for reuse (per process)
    pool_size = 4

    def __init__(
        self,
        path: str,
        *,
        ttl: float = DEFAULTS.dedupe_ttl,
        claim_timeout: float = DEFAULTS.dedupe_claim_timeout,
        lease: float = DEFAULTS.dedupe_lease,
        timeout: float = 10.0,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.claim_timeout = claim_timeout
        self.lease = lease
        self.timeout = timeout
        self._clock = clock
        self._next_purge = 0.0
        self._init_leases()
        self._pool: list[sqlite3.Connection] = []
        self._finalizer = weakref.finalize(self, _close_all, self._pool, self._pid)
        db = self._open()
        try:
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                columns = [row[1] for row in db.execute(f"PRAGMA table_info({_TABLE})")]
                if columns and not set(_COLUMNS) <= set(columns):
                    # a table from an older flask-mm7: a cache of answers, safe to rebuild
                    db.execute(f"DROP TABLE {_TABLE}")
                db.execute(_SCHEMA)
                db.execute(f"CREATE INDEX IF NOT EXISTS {_TABLE}_updated ON {_TABLE} (updated)")
        finally:
            db.close()

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r}>"

    def close(self) -> None:
        """Stop renewing claims and close the pooled connections; the store opens new ones if
        used again."""
        with self._lock:
            self._stop_renewing()
            if self._pid == os.getpid():
                _close_all(self._pool, self._pid)
            self._pool.clear()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _forked(self) -> None:
        _ABANDONED.extend(self._pool)  # never touch the parent's connections
        self._pool = []
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _close_all, self._pool, self._pid)

    @contextlib.contextmanager
    def _connect(self) -> t.Iterator[sqlite3.Connection]:
        db: sqlite3.Connection | None = None
        with self._lock:
            self._after_fork()
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

    def _free(self, row: t.Sequence[t.Any], now: float) -> bool:
        """The record ``row`` (done, holder, started, updated) may be claimed again."""
        done, holder, started, updated = row
        return self.free(done, holder, started, updated, now)

    def claim(self, key: str, digest: str) -> Claim:
        now = self._clock()
        token = secrets.token_hex(8)
        holder = holder_id()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute(
                    f"SELECT digest, token, done, status_code, status_text, holder, started,"
                    f" updated FROM {_TABLE} WHERE key = ?",
                    (key,),
                ).fetchall()
                mine = next((row for row in rows if row[0] == digest), None)
                if mine is not None and not self._free(mine[2:3] + mine[5:], now):
                    text = None if mine[4] is None else json.loads(mine[4])
                    result = Claim(DONE if mine[2] else BUSY, mine[1], digest, mine[3], text)
                else:
                    reused = any(
                        row[0] != digest and not self._free(row[2:3] + row[5:], now) for row in rows
                    )
                    db.execute(
                        f"INSERT OR REPLACE INTO {_TABLE} (key, digest, token, done, holder,"
                        " started, updated) VALUES (?, ?, ?, 0, ?, ?, ?)",
                        (key, digest, token, holder, now, now),
                    )
                    result = Claim(NEW, token, digest, reused=reused)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if result.state == NEW:
                self._hold(token, key, digest, now)
            if now >= self._next_purge:
                self._next_purge = now + self.purge_interval
                db.execute(
                    f"DELETE FROM {_TABLE} WHERE done = 1 AND updated < ?"
                    " OR done = 0 AND (updated < ? OR started < ?)",
                    (now - self.ttl, now - self.lease, now - self.claim_timeout),
                )
        return result

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        try:
            with self._connect() as db:
                db.execute(
                    f"UPDATE {_TABLE} SET done = 1, status_code = ?, status_text = ?,"
                    " updated = ? WHERE key = ? AND token = ? AND done = 0",
                    (status_code, json.dumps(status_text), self._clock(), key, token),
                )
        finally:
            self._unhold(token)

    def release(self, key: str, token: str) -> None:
        try:
            with self._connect() as db:
                db.execute(
                    f"DELETE FROM {_TABLE} WHERE key = ? AND token = ? AND done = 0", (key, token)
                )
        finally:
            self._unhold(token)

    def _renew_claims(self, held: list[tuple[float, str, str, str]]) -> None:
        with self._connect() as db:  # one claim per request thread: a few rows
            db.executemany(
                f"UPDATE {_TABLE} SET updated = ?"
                " WHERE key = ? AND digest = ? AND token = ? AND done = 0",
                held,
            )


def _heartbeat(ref: weakref.ref[LeaseHolder], stop: threading.Event, interval: float) -> None:
    """The body of a store's renewal thread; holds no reference to the store while asleep."""
    while not stop.wait(interval):
        store = ref()
        if store is None or not store._renew():
            return
        del store


#: connections inherited through fork: kept referenced so that garbage collection in the child
#: never closes them (closing a file drops every POSIX lock this process holds on it, those of
#: the child's own connections included)
_ABANDONED: list[sqlite3.Connection] = []


def _close_all(pool: list[sqlite3.Connection], pid: int) -> None:
    if os.getpid() != pid:
        return
    while pool:
        pool.pop().close()
