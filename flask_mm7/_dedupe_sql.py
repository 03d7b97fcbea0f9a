"""A dedupe store in a SQL database shared by every receiver host, on SQLAlchemy Core
(``pip install 'flask-mm7[sql]'``: SQLAlchemy and psycopg; any other driver SQLAlchemy knows
works too, e.g. ``mysql+pymysql://``).

One table, created if missing, the same on every database: a row per (key, content
fingerprint), which is its primary key. A claim is an INSERT, which the unique key lets only
one process win; taking over a claim whose lease ran out (or whose holder died) is an UPDATE
conditional on the token seen, which again only one process wins; completion, release and
renewal are conditional on the holder's token too. Each step is its own short transaction, so
any isolation level works (READ COMMITTED, MySQL's REPEATABLE READ).
"""

from __future__ import annotations

import json
import secrets
import time
import typing as t

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .dedupe import BUSY, DONE, NEW, Claim, LeaseHolder, holder_id

#: how often a claim races another process's before it gives up (each lost race means the
#: other process claimed or answered: the next look finds its record)
_ATTEMPTS = 5


def make_table(metadata: sa.MetaData, name: str = "mm7_dedupe_records") -> sa.Table:
    """The store's table: portable types only (seconds since the epoch as DOUBLE)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("msg_key", sa.String(64), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("done", sa.Boolean, nullable=False, default=False),
        sa.Column("status_code", sa.Integer),
        # JSON-escaped, so ASCII: any str (lone surrogates included) on any column charset
        sa.Column("status_text", sa.Text),
        sa.Column("holder", sa.String(255)),
        sa.Column("started", sa.Double, nullable=False),
        sa.Column("updated", sa.Double, nullable=False, index=True),
    )


class SQLStore(LeaseHolder):
    """Records in one table of a SQL database, shared by every process of every host.

    ``url`` is a SQLAlchemy database URL (``postgresql+psycopg://user:pw@db/mm7``) or an
    ``Engine``. The table (``table``, created if missing) holds one row per (key, content
    fingerprint). Claims are leases renewed while the handler runs (see
    :class:`~flask_mm7.dedupe.LeaseHolder`); the clocks of the hosts sharing a database must
    agree to well within the lease (NTP does). Expired rows are deleted every
    ``purge_interval`` seconds by whichever process claims next.
    """

    #: seconds between sweeps of expired rows (per process)
    purge_interval = 60.0

    def __init__(
        self,
        url: str | sa.engine.Engine,
        *,
        ttl: float = 86400,
        claim_timeout: float = 300,
        lease: float = 10,
        table: str = "mm7_dedupe_records",
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.claim_timeout = claim_timeout
        self.lease = lease
        self._clock = clock
        self._next_purge = 0.0
        self._init_leases()
        if isinstance(url, str):
            # pre-ping: a connection the database dropped while idle is replaced, not a Fault
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        else:
            self.engine = url
        self.table = make_table(sa.MetaData(), table)
        self.table.create(self.engine, checkfirst=True)

    def __repr__(self) -> str:
        return f"<SQLStore {self.engine.url!r}>"

    def close(self) -> None:
        """Stop renewing claims and close the pooled connections."""
        with self._lock:
            self._stop_renewing()
        self.engine.dispose()

    def _forked(self) -> None:
        # the parent's pooled connections are the parent's: the child opens its own
        self.engine.dispose(close=False)

    def _check_fork(self) -> None:
        with self._lock:
            self._after_fork()

    def claim(self, key: str, digest: str) -> Claim:
        self._check_fork()
        records = self.table
        token = secrets.token_hex(8)
        holder = holder_id()
        columns = [records.c[n] for n in ("digest", "token", "done", "status_code", "status_text")]
        columns += [records.c[n] for n in ("holder", "started", "updated")]
        for _ in range(_ATTEMPTS):
            now = self._clock()
            with self.engine.begin() as db:
                rows = db.execute(sa.select(*columns).where(records.c.msg_key == key)).all()
            mine = next((row for row in rows if row.digest == digest), None)
            if mine is not None and not self._free(mine, now):
                text = None if mine.status_text is None else json.loads(mine.status_text)
                state = DONE if mine.done else BUSY
                return Claim(state, mine.token, digest, mine.status_code, text)
            reused = any(row.digest != digest and not self._free(row, now) for row in rows)
            fresh = {"token": token, "done": False, "status_code": None, "status_text": None}
            fresh.update(holder=holder, started=now, updated=now)
            try:
                with self.engine.begin() as db:
                    if mine is None:
                        db.execute(records.insert().values(msg_key=key, digest=digest, **fresh))
                    else:
                        won = db.execute(
                            records.update()
                            .where(records.c.msg_key == key, records.c.digest == digest)
                            .where(records.c.token == mine.token, records.c.done == mine.done)
                            .values(**fresh)
                        )
                        if won.rowcount != 1:
                            continue  # another process took it over first: look again
            except IntegrityError:
                continue  # another process inserted it first: look again
            self._hold(token, key, digest, now)
            self._purge(now)
            return Claim(NEW, token, digest, reused=reused)
        raise RuntimeError(f"dedupe claim lost {_ATTEMPTS} races in a row")

    def _free(self, row: t.Any, now: float) -> bool:
        return self.free(row.done, row.holder, row.started, row.updated, now)

    def _purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + self.purge_interval
        c = self.table.c
        with self.engine.begin() as db:
            db.execute(
                self.table.delete().where(
                    sa.or_(
                        sa.and_(c.done.is_(True), c.updated < now - self.ttl),
                        sa.and_(
                            c.done.is_(False),
                            sa.or_(
                                c.updated < now - self.lease,
                                c.started < now - self.claim_timeout,
                            ),
                        ),
                    )
                )
            )

    def complete(self, key: str, token: str, status_code: int, status_text: str) -> None:
        c = self.table.c
        try:
            with self.engine.begin() as db:
                db.execute(
                    self.table.update()
                    .where(c.msg_key == key, c.token == token, c.done.is_(False))
                    .values(
                        done=True,
                        status_code=int(status_code),
                        status_text=json.dumps(status_text),
                        updated=self._clock(),
                    )
                )
        finally:
            self._unhold(token)

    def release(self, key: str, token: str) -> None:
        c = self.table.c
        try:
            with self.engine.begin() as db:
                db.execute(
                    self.table.delete().where(c.msg_key == key, c.token == token, c.done.is_(False))
                )
        finally:
            self._unhold(token)

    def _renew_claims(self, held: list[tuple[float, str, str, str]]) -> None:
        c = self.table.c
        statement = (
            self.table.update()
            .where(
                c.msg_key == sa.bindparam("k"),
                c.digest == sa.bindparam("d"),
                c.token == sa.bindparam("t"),
                c.done.is_(False),
            )
            .values(updated=sa.bindparam("now"))
        )
        with self.engine.begin() as db:
            db.execute(statement, [{"now": n, "k": k, "d": d, "t": tk} for n, k, d, tk in held])
