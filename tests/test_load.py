"""Faults under real load: gunicorn on 127.0.0.1, a handler that fails at random, a relay-like
client that retries, hostile requests mixed in, and the proof that every message is stored
exactly once and no hostile request is acknowledged (§3 #102-104, #111).

``tests/loadapp.py`` stores each DeliverReq in SQLite keyed by TransactionID (idempotent) and
fails 15% of calls before storing, 4% after storing (the lost reply: stored, but the relay sees
a 500 and sends it again), and sleeps in 5%. HTTP Basic auth is on. The client sends N messages
from several threads, retrying each on a 5xx, a timeout or a connection error with a small
backoff until it gets HTTP 200 + StatusCode 1000; 3% of its attempts hang up right after
sending, as a relay that timed out does (a reply lost in transit), and 4% of its messages label
their SOAP part with a charset that is no text encoding (``base64``, ``undefined``...), which
must be delivered all the same. 8% more requests are hostile (:data:`HOSTILE`), each sent once.

Four runs: gthread 2x4, and sync x3 with a worker SIGKILLed every ~0.5 s; each with
``MM7_DEDUPE`` off and on (an SQLite store shared by the workers; with kills, 60% of calls
sleep so that kills land in the handler while it holds a claim, which must not hold up the
retries). For each run the counts go to
stdout and ``test-output/load-report.txt``; ``test_every_message_stored_once`` asserts the
legitimate traffic's counts, ``test_hostile_requests_are_refused`` each hostile kind's.

"Doubled" counts the messages the handler returned 1000 for more than once. With dedupe on that
happens only when a worker dies between the handler's return and the answer being recorded;
with it off, after any reply lost in transit (a hang-up, a killed worker): the store's UNIQUE
key absorbs those, as the README asks of a handler. Skipped when gunicorn is missing (it is in
the ``test`` extra).
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import http.client
import os
import pathlib
import random
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import typing as t

import pytest
from gunicorn_server import gunicorn

from flask_mm7.testing import MM7Reply, build_deliver, parse_reply

pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install -e '.[test]')")

ROOT = pathlib.Path(__file__).resolve().parent.parent
REPORT = ROOT / "test-output" / "load-report.txt"
MESSAGES = int(os.environ.get("MM7_LOAD_MESSAGES", "1000"))
HOSTILE_SHARE = 0.08
DROP_SHARE = 0.03  # attempts where the client hangs up without reading the reply
CLIENT_THREADS = 8
MAX_ATTEMPTS = 40
TIME_BUDGET = 50.0  # seconds for one run's client side
MAX_LOG_LINES = 3  # per hostile request
CREDENTIALS = ("relay", "load-test-secret")
#: every 25th message labels its SOAP part with a charset that is no text encoding
ODD_CHARSET_EVERY = 25
ODD_CHARSETS = ["base64", "undefined", "idna", "zlib", "rot13", "utf-7", "x-bogus"]
AUTH = "Basic " + base64.b64encode(":".join(CREDENTIALS).encode()).decode()

GTHREAD = ["--workers", "2", "--worker-class", "gthread", "--threads", "4"]
SYNC = ["--workers", "3", "--worker-class", "sync"]
#: name -> (gunicorn arguments, dedupe on, SIGKILL workers)
CONFIGS = {
    "gthread-dedupe-off": (GTHREAD, False, False),
    "gthread-dedupe-on": (GTHREAD, True, False),
    "sync-sigkill-dedupe-off": (SYNC, False, True),
    "sync-sigkill-dedupe-on": (SYNC, True, True),
}
#: with dedupe and kills, most calls sleep, so that kills land in the handler, holding a claim
#: (which must not hold up the relay's retries: its lease frees it)
SLEEP_WITH_KILLS_AND_DEDUPE = "0.6"


# -- hostile requests -------------------------------------------------------------------------


@dataclasses.dataclass
class Hostile:
    """One hostile request: its HTTP headers, the body it announces, and how much it sends."""

    headers: dict[str, str]
    body: bytes
    sent: int  # bytes of ``body`` actually sent; fewer than len(body) means cut short


def _hostile_base(tag: str, rng: random.Random) -> tuple[dict[str, str], bytes]:
    request = build_deliver(
        transaction_id=tag, attachments=[rng.randbytes(rng.randint(2000, 8000))], text=tag
    )
    return {**request.headers, "Authorization": AUTH, "X-Load-Tag": tag}, request.body


def _cut_short(tag: str, rng: random.Random) -> Hostile:
    """Content-Length announces the whole body; half of it comes, then the client's EOF."""
    headers, body = _hostile_base(tag, rng)
    return Hostile(headers, body, len(body) // 2)


def _bad_soap(tag: str, rng: random.Random) -> Hostile:
    headers, body = _hostile_base(tag, rng)
    assert body.count(b"<ns1:Body>") == 1
    body = body.replace(b"<ns1:Body>", b"<ns1:Body><unclosed>")
    return Hostile(headers, body, len(body))


def _http_header_flood(tag: str, rng: random.Random) -> Hostile:
    """A 9 KB header line: above gunicorn's 8190-byte limit per header field."""
    headers, body = _hostile_base(tag, rng)
    headers["X-Padding"] = "a" * 9000
    return Hostile(headers, body, len(body))


def _part_header_flood(tag: str, rng: random.Random) -> Hostile:
    """A MIME part header block above MM7_MAX_PART_HEADER_SIZE (16 KiB)."""
    headers, body = _hostile_base(tag, rng)
    old = b"Content-ID: <soap-start>\r\n"
    assert body.count(old) == 1
    body = body.replace(old, old + b"X-Padding: " + b"a" * 20_000 + b"\r\n")
    return Hostile(headers, body, len(body))


def _wrong_auth(tag: str, rng: random.Random) -> Hostile:
    headers, body = _hostile_base(tag, rng)
    headers["Authorization"] = "Basic " + base64.b64encode(b"relay:guessed").decode()
    return Hostile(headers, body, len(body))


def _truncated_mime(tag: str, rng: random.Random) -> Hostile:
    """A body cut inside its attachment, with a Content-Length that matches what is sent: no
    closing delimiter, so the message is incomplete."""
    headers, body = _hostile_base(tag, rng)
    body = body[: len(body) - rng.randint(300, 1500)]
    return Hostile(headers, body, len(body))


def _random_bytes(tag: str, rng: random.Random) -> Hostile:
    headers, _ = _hostile_base(tag, rng)
    body = rng.randbytes(rng.randint(100, 20_000))
    return Hostile(headers, body, len(body))


HOSTILE: dict[str, t.Callable[[str, random.Random], Hostile]] = {
    "cut_short": _cut_short,
    "bad_soap": _bad_soap,
    "http_header_flood": _http_header_flood,
    "part_header_flood": _part_header_flood,
    "wrong_auth": _wrong_auth,
    "truncated_mime": _truncated_mime,
    "random_bytes": _random_bytes,
}

# -- the server -------------------------------------------------------------------------------


@dataclasses.dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    db: pathlib.Path
    pid_dir: pathlib.Path
    log_dir: pathlib.Path
    log: pathlib.Path


@contextlib.contextmanager
def _serve(
    tmp_path: pathlib.Path, args: list[str], dedupe: bool, extra: dict[str, str]
) -> t.Iterator[Server]:
    db, pid_dir, log_dir = tmp_path / "store.sqlite3", tmp_path / "pids", tmp_path / "logs"
    pid_dir.mkdir()
    log_dir.mkdir()
    env = {
        "LOADAPP_DB": str(db),
        "LOADAPP_PID_DIR": str(pid_dir),
        "LOADAPP_LOG_DIR": str(log_dir),
        "LOADAPP_SEED": "7",
        "MM7_BASIC_AUTH": ":".join(CREDENTIALS),
        "MM7_DEDUPE": f"sqlite:///{tmp_path / 'dedupe.sqlite3'}" if dedupe else "off",
        **extra,
    }
    with gunicorn("loadapp:application", tmp_path, env, args) as (port, process, log):
        yield Server(port, process, db, pid_dir, log_dir, log)


# -- the client -------------------------------------------------------------------------------


@dataclasses.dataclass
class Ledger:
    """The relay's view: what it sent and every answer it got."""

    acks: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    attempts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    #: attempts per TransactionID whose reply never reached the client (hang-up, error)
    lost_replies: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    digests: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    gave_up: list[str] = dataclasses.field(default_factory=list)
    wrong_tid: list[str] = dataclasses.field(default_factory=list)
    #: hostile tag -> (kind, the reply or None, outcome)
    hostile: dict[str, tuple[str, MM7Reply | None, str]] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def _message(i: int) -> tuple[str, bytes, dict[str, str], tuple[int, str]]:
    rng = random.Random(i)
    payload = rng.randbytes(rng.randint(100, 20_000))
    tid = f"LOAD-{i:05d}"
    request = build_deliver(transaction_id=tid, attachments=[payload], text=f"message {i}")
    body = request.body
    if i % ODD_CHARSET_EVERY == 0:  # a bogus label on the SOAP part: read as UTF-8, delivered
        charset = ODD_CHARSETS[i // ODD_CHARSET_EVERY % len(ODD_CHARSETS)]
        old = b'text/xml; charset="utf-8"'
        assert body.count(old) == 1
        body = body.replace(old, b'text/xml; charset="' + charset.encode() + b'"')
    text = f"message {i}".encode()
    digest = hashlib.sha256(payload + text).hexdigest()
    headers = {
        **request.headers,
        "Content-Length": str(len(body)),
        "Authorization": AUTH,
        "X-Load-Tag": tid,
    }
    return tid, body, headers, (len(payload) + len(text), digest)


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
        hang_up = random.Random(f"{tid}/{attempt}").random() < DROP_SHARE
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        reply = None
        try:
            connection.request("POST", "/mm7", body=body, headers=headers)
            if hang_up:
                outcome = "hung up"
            else:
                response = connection.getresponse()
                data = response.read()
                reply = parse_reply(response.status, dict(response.getheaders()), data)
        except (OSError, http.client.HTTPException) as error:
            outcome = f"error:{type(error).__name__}"
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
            if reply is None:
                ledger.lost_replies[tid] += 1
        time.sleep(min(0.2, 0.005 * 2**attempt) * (0.5 + random.random()))
    with ledger.lock:
        ledger.gave_up.append(tid)


def _send_hostile(port: int, kind: str, n: int, ledger: Ledger) -> None:
    """Send one hostile request over a raw socket, once, and record the answer."""
    tag = f"HOSTILE-{kind}-{n:03d}"
    request = HOSTILE[kind](tag, random.Random(tag))
    head = "".join(
        f"{name}: {value}\r\n"
        for name, value in {
            **request.headers,  # build_deliver's Content-Length is replaced: the body changed
            "Host": f"127.0.0.1:{port}",
            "Content-Length": str(len(request.body)),
            "Connection": "close",
        }.items()
    )
    reply: MM7Reply | None = None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                f"POST /mm7 HTTP/1.1\r\n{head}\r\n".encode() + request.body[: request.sent]
            )
            if request.sent < len(request.body):
                sock.shutdown(socket.SHUT_WR)
            response = http.client.HTTPResponse(sock)
            response.begin()
            data = response.read()
            reply = parse_reply(response.status, dict(response.getheaders()), data)
            outcome = f"http:{reply.http_status}"
    except (OSError, http.client.HTTPException) as error:
        outcome = f"error:{type(error).__name__}"
    with ledger.lock:
        ledger.hostile[tag] = (kind, reply, outcome)


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


# -- one run ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """Everything one load run produced, for the tests to check."""

    name: str
    dedupe: bool
    ledger: Ledger
    stored: dict[str, tuple[int, str]]
    #: (event kind, TransactionID) -> count, from the handler's events table
    events: collections.Counter[tuple[str, str]]
    #: X-Load-Tag -> lines the flask_mm7 logger wrote for that request
    log_lines: collections.Counter[str]
    #: log records of exceptions that escaped flask_mm7's own code
    internal_errors: list[str]
    killed: int
    elapsed: float
    report: str = ""

    def count(self, kind: str) -> int:
        """Handler events of ``kind`` for the legitimate messages."""
        return sum(n for (k, tid), n in self.events.items() if k == kind and _legit(tid))

    @property
    def doubled(self) -> list[str]:
        """Legitimate TransactionIDs the handler returned 1000 for more than once."""
        return sorted(
            tid for (k, tid), n in self.events.items() if k == "ok" and _legit(tid) and n > 1
        )

    def hostile_of(self, kind: str) -> dict[str, tuple[MM7Reply | None, str]]:
        return {tag: (reply, o) for tag, (k, reply, o) in self.ledger.hostile.items() if k == kind}


#: what flask_mm7 logs when an exception escaped its own code (never for any input)
INTERNAL_ERRORS = ("MM7 request failed inside flask_mm7", "MM7 request could not be read")


def _legit(tid: str) -> bool:
    return not tid.startswith("HOSTILE-")


def _acknowledged(reply: MM7Reply | None) -> bool:
    return reply is not None and reply.http_status == 200 and reply.status_code == 1000


def _read_logs(log_dir: pathlib.Path) -> tuple[collections.Counter[str], list[str]]:
    """Lines per request tag, and the records that report an error inside flask_mm7 itself.

    A record starts with ``@@ TAG``, its traceback lines follow it (each worker logs to its
    own file, so records do not interleave). The access record every answered request gets
    (``flask_mm7.access``) is not counted: the lines counted are what went wrong.
    """
    lines: collections.Counter[str] = collections.Counter()
    internal: list[str] = []
    for path in log_dir.iterdir():
        tag = "-"
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("@@ ") and " INFO flask_mm7.access: " in line:
                continue
            if line.startswith("@@ "):
                tag = line.split(" ", 2)[1]
                if any(words in line for words in INTERNAL_ERRORS):
                    internal.append(line)
            lines[tag] += 1
    return lines, internal


def _load(server: Server, name: str, dedupe: bool, killer: _Killer | None) -> Run:
    ledger = Ledger()
    jobs: list[tuple[str, int]] = [("", i) for i in range(MESSAGES)]
    kinds = list(HOSTILE)
    jobs += [(kinds[n % len(kinds)], n) for n in range(int(MESSAGES * HOSTILE_SHARE))]
    random.Random(11).shuffle(jobs)
    started = time.monotonic()
    deadline = started + TIME_BUDGET
    if killer is not None:
        killer.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = [
                pool.submit(_send_hostile, server.port, kind, n, ledger)
                if kind
                else pool.submit(_send_one, server.port, n, ledger, deadline)
                for kind, n in jobs
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
        events: collections.Counter[tuple[str, str]] = collections.Counter(
            {
                (kind, tid): n
                for kind, tid, n in db.execute(
                    "SELECT kind, transaction_id, COUNT(*) FROM events GROUP BY 1, 2"
                )
            }
        )
    finally:
        db.close()
    log_lines, internal_errors = _read_logs(server.log_dir)
    killed = len(killer.killed) if killer is not None else 0
    return Run(name, dedupe, ledger, stored, events, log_lines, internal_errors, killed, elapsed)


def _report(run: Run) -> str:
    ledger = run.ledger
    attempts = sum(ledger.attempts.values())
    legit_stored = {tid: v for tid, v in run.stored.items() if _legit(tid)}
    stored_once = sum(1 for tid, v in legit_stored.items() if ledger.digests.get(tid) == v)
    acknowledged = sum(1 for acks in ledger.acks.values() if acks == [1000])
    lost = sum(1 for tid in ledger.acks if ledger.digests[tid] != run.stored.get(tid))
    hostile_acked = sum(1 for _, reply, _ in ledger.hostile.values() if _acknowledged(reply))
    per_kind = []
    for kind in HOSTILE:
        sent = run.hostile_of(kind)
        outcomes = collections.Counter(o for _, o in sent.values())
        most = max((run.log_lines[tag] for tag in sent), default=0)
        per_kind.append(
            f"  {kind}: sent {len(sent)}, acknowledged"
            f" {sum(1 for r, _ in sent.values() if _acknowledged(r))},"
            f" handler calls {sum(run.events[('call', tag)] for tag in sent)},"
            f" log lines max {most}, answers {dict(sorted(outcomes.items()))}"
        )
    hostile_lines = [run.log_lines[tag] for tag in ledger.hostile]
    summary = (
        f"[{run.name}] acknowledged {acknowledged}/{len(ledger.acks)}, stored once"
        f" {stored_once}, lost {lost}, doubled {len(run.doubled)}, hostile acknowledged"
        f" {hostile_acked}/{len(ledger.hostile)}, log lines per hostile request"
        f" max {max(hostile_lines, default=0)}"
        f" mean {sum(hostile_lines) / max(1, len(hostile_lines)):.2f}"
    )
    lines = [
        summary,
        f"run at {time.strftime('%Y-%m-%d %H:%M:%S')}, dedupe {'on' if run.dedupe else 'off'}",
        f"HTTP attempts: {attempts} (retries: {attempts - len(ledger.acks)})",
        f"client outcomes: {dict(sorted(ledger.outcomes.items()))}",
        f"replies lost in transit (hang-ups, errors): {sum(ledger.lost_replies.values())}",
        f"handler calls: {run.count('call')}",
        f"handler failures before storing: {run.count('fail_before')}",
        f"handler failures after storing (lost replies): {run.count('fail_after')}",
        f"handler sleeps: {run.count('sleep')}",
        f"duplicate deliveries absorbed by the UNIQUE key: {run.count('duplicate')}",
        f"doubled (handler returned 1000 twice): {run.doubled[:10]}",
        f"rows stored: {len(legit_stored)} (+ {len(run.stored) - len(legit_stored)} hostile)",
        f"messages with a bogus SOAP charset label: {len(range(0, MESSAGES, ODD_CHARSET_EVERY))}",
        f"errors inside flask_mm7 logged: {len(run.internal_errors)}",
        f"workers SIGKILLed: {run.killed}",
        f"gave up: {len(ledger.gave_up)}",
        f"elapsed: {run.elapsed:.1f} s",
        "hostile requests:",
        *per_kind,
    ]
    return "\n".join(lines)


_REPORTS: dict[str, str] = {}


@pytest.fixture(scope="module", params=list(CONFIGS))
def load_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[Run]:
    name = request.param
    args, dedupe, kill = CONFIGS[name]
    extra = {"LOADAPP_SLEEP": SLEEP_WITH_KILLS_AND_DEDUPE} if dedupe and kill else {}
    with _serve(tmp_path_factory.mktemp(name), args, dedupe, extra) as server:
        killer = _Killer(server, interval=0.5, limit=8) if kill else None
        run = _load(server, name, dedupe, killer)
        gunicorn_log = server.log
    run.report = _report(run)
    print("\n" + run.report)
    _REPORTS[name] = run.report
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n\n".join(_REPORTS.values()) + "\n")
    # gunicorn's own log: worker kills are expected there, tracebacks are not
    assert "Traceback" not in gunicorn_log.read_text()
    yield run


# -- the tests --------------------------------------------------------------------------------


def test_every_message_stored_once(load_run: Run) -> None:
    """#102/#103/#111: 0 lost, every message stored once with the content sent, and doubles
    only where the design allows them (see the module docstring)."""
    run, ledger = load_run, load_run.ledger
    assert not ledger.gave_up, f"{len(ledger.gave_up)} messages never acknowledged"
    assert not ledger.wrong_tid, ledger.wrong_tid[:5]
    # every TransactionID acknowledged with 1000 exactly once in the relay's ledger
    assert all(acks == [1000] for acks in ledger.acks.values()), [
        (tid, acks) for tid, acks in ledger.acks.items() if acks != [1000]
    ][:5]
    # the store holds every message exactly once, with the content that was sent
    legit_stored = {tid: v for tid, v in run.stored.items() if _legit(tid)}
    assert legit_stored == ledger.digests and len(legit_stored) == MESSAGES
    # no input, bogus charset labels included, made an exception escape the library
    assert not run.internal_errors, run.internal_errors[:3]
    # the faults really happened, and the retries covered them
    assert run.count("fail_before") > 0 and run.count("fail_after") > 0
    assert sum(ledger.lost_replies.values()) > 0
    assert run.count("duplicate") >= run.count("fail_after") - run.killed - 5
    assert sum(ledger.attempts.values()) > MESSAGES
    if CONFIGS[run.name][2]:
        assert run.killed, "no worker was killed"

    ok = {tid: n for (kind, tid), n in run.events.items() if kind == "ok" and _legit(tid)}
    assert set(ok) == set(ledger.acks)  # every acknowledged message was returned by the handler
    if run.dedupe:
        # a retry of an answered TransactionID is answered from the store, not the handler;
        # only a worker killed between the handler's return and the record can double one
        assert len(run.doubled) <= run.killed, run.doubled
        assert all(ledger.lost_replies[tid] for tid in run.doubled)
    else:
        # without dedupe, each reply lost in transit may cost one more successful handler call
        assert all(n <= 1 + ledger.lost_replies[tid] for tid, n in ok.items())
        assert run.doubled, "no reply was lost after the handler returned: nothing measured"


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_requests_are_refused(load_run: Run, kind: str) -> None:
    """Never acknowledged, never handed to the handler, at most 3 log lines each."""
    sent = load_run.hostile_of(kind)
    assert len(sent) >= 3
    # most got an HTTP answer (some may meet a killed worker): the refusals were really seen
    assert sum(1 for reply, _ in sent.values() if reply is not None) >= len(sent) // 2
    acknowledged = [tag for tag, (reply, _) in sent.items() if _acknowledged(reply)]
    assert not acknowledged
    called = [tag for tag in sent if load_run.events[("call", tag)]]
    assert not called
    log_lines = {tag: load_run.log_lines[tag] for tag in sent}
    assert max(log_lines.values()) <= MAX_LOG_LINES, log_lines
