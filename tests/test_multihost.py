"""More than one host, proven on real servers: nginx balancing two receiver "hosts" (gunicorn
running ``examples/queue/app.py``, bound to 127.0.0.2 and 127.0.0.3), a shared dedupe store
(Redis, then PostgreSQL), the RQ queue on Redis and one RQ worker running
``examples/queue/tasks.py``.

A client that behaves like a relay (retries on a 5xx, a timeout or a connection error; 10% of
messages sent twice on purpose, some while the first copy is still in flight) posts
``MM7_MULTIHOST_MESSAGES`` (1,000) messages through nginx while each host in turn is SIGKILLed
(master and workers: the whole host) and restarted on its address. Then every message must
have been acknowledged with 1000 and processed by the worker exactly once, with its content
intact; nothing is lost. The counts go to stdout and ``test-output/multihost-report.txt``.

Needs redis-server, PostgreSQL and nginx (Debian's packages; ``.ci/system-deps`` installs
them) and the ``test`` extra (gunicorn, redis, SQLAlchemy, psycopg, rq); skipped without them.
Loopback only; bounded in count and time.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import http.client
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t

import pytest
from gunicorn_server import ROOT, wait_listening
from servers import postgres_server, redis_server

from flask_mm7.testing import build_deliver, parse_reply

for _module in ("gunicorn", "redis", "rq", "sqlalchemy", "psycopg"):
    pytest.importorskip(_module, reason=f"{_module} is not installed (pip install -e '.[test]')")

NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="needs nginx (apt-get install nginx; .ci/system-deps installs it)"
)

EXAMPLE = ROOT / "examples" / "queue"
NGINX_EXAMPLE = ROOT / "examples" / "nginx"
REPORT = ROOT / "test-output" / "multihost-report.txt"
MESSAGES = int(os.environ.get("MM7_MULTIHOST_MESSAGES", "1000"))
TWICE_SHARE = 0.10  # messages the relay sends twice on purpose
HOSTS = ("127.0.0.2", "127.0.0.3")
GUNICORN = ["--workers", "2", "--worker-class", "gthread", "--threads", "4"]
CLIENT_THREADS = 8
MAX_ATTEMPTS = 40
TIME_BUDGET = 75.0  # seconds for the client side of one run
#: nginx's fail_timeout for each upstream (as README's multi-host upstream block)
FAIL_TIMEOUT = 2
CREDENTIALS = "relay:multihost-secret"
AUTH = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal ``process``'s whole process group (it leads one) and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Host:
    """One receiver host: gunicorn serving examples/queue/app.py on ``address``:``port``."""

    def __init__(self, address: str, env: dict[str, str], workdir: pathlib.Path) -> None:
        self.address, self.port, self.env = address, free_port(address), env
        self.log = workdir / f"gunicorn-{address}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        #: set while the host runs (and nginx may count it live again: FAIL_TIMEOUT after its
        #: start)
        self.ready = threading.Event()

    def start(self) -> None:
        command = [
            sys.executable, "-m", "gunicorn", "--chdir", str(EXAMPLE),
            "--bind", f"{self.address}:{self.port}", "--timeout", "20",
            "--graceful-timeout", "2", "--log-level", "warning", *GUNICORN, "app:app",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            # its own session: a SIGKILL of the group takes the master and its workers at once,
            # as a host that loses power
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1
        wait_listening(self.process, self.port, self.log, address=self.address)

    def kill_and_restart(self, downtime: float) -> None:
        """SIGKILL the whole host; start it again ``downtime`` seconds later (in a thread)."""
        assert self.process is not None
        self.ready.clear()
        stop(self.process, signal.SIGKILL)

        def restart() -> None:
            self.start()
            time.sleep(FAIL_TIMEOUT)
            self.ready.set()

        threading.Timer(downtime, restart).start()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


@contextlib.contextmanager
def nginx(directory: pathlib.Path, upstreams: list[str]) -> t.Iterator[int]:
    """nginx from the shipped examples/nginx config, its one upstream server replaced by
    ``upstreams``, listening on 127.0.0.1; yields its port."""
    assert NGINX is not None
    directory.mkdir()
    port = free_port("127.0.0.1")
    text = (NGINX_EXAMPLE / "mm7.conf").read_text()
    servers = " ".join(f"server {u} fail_timeout={FAIL_TIMEOUT}s;" for u in upstreams)
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("server 127.0.0.1:8000;", servers),
    ):
        assert text.count(old) == 1, f"examples/nginx/mm7.conf no longer has {old!r} once"
        text = text.replace(old, new)
    (directory / "mm7.conf").write_text(text)
    shutil.copyfile(NGINX_EXAMPLE / "nginx.conf", directory / "nginx.conf")
    log = directory / "nginx.log"
    command = [
        NGINX, "-p", f"{directory}/", "-c", str(directory / "nginx.conf"), "-e", "stderr",
        "-g", "master_process off;",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_listening(process, port, log)
        yield port
    finally:
        stop(process)


@contextlib.contextmanager
def rq_worker(redis_url: str, env: dict[str, str], log: pathlib.Path) -> t.Iterator[None]:
    """One RQ worker on the ``mm7`` queue, importing examples/queue/tasks.py."""
    command = [
        sys.executable, "-m", "rq.cli", "worker", "--url", redis_url, "--path", str(EXAMPLE),
        "--worker-class", "rq.worker.SimpleWorker", "--logging_level", "WARNING", "mm7",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        time.sleep(0.5)
        if process.poll() is not None:
            pytest.fail(f"rq worker exited:\n{log.read_text()[-3000:]}")
        yield
    finally:
        stop(process)


# -- the relay --------------------------------------------------------------------------------


@dataclasses.dataclass
class Ledger:
    """What the relay sent and every answer it got."""

    acks: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    attempts: int = 0
    deliveries: int = 0
    gave_up: list[str] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


@functools.cache
def message(i: int) -> tuple[str, bytes, dict[str, str], list[list[t.Any]]]:
    """Message ``i``: TransactionID, body, headers, and what the worker must record of it (the
    same bytes every time: a retry is the same message)."""
    rng = random.Random(i)
    payload = rng.randbytes(rng.randint(200, 12_000))
    tid = f"MH-{i:05d}"
    request = build_deliver(transaction_id=tid, attachments=[payload], text=f"message {i}")
    text = f"message {i}".encode()
    expected = [
        ["application/octet-stream", len(payload), hashlib.sha256(payload).hexdigest()],
        ["text/plain", len(text), hashlib.sha256(text).hexdigest()],
    ]
    headers = {**request.headers, "Authorization": AUTH}
    return tid, request.body, headers, expected


def deliver(port: int, i: int, ledger: Ledger, deadline: float) -> None:
    """Deliver message ``i`` as a relay does: until an HTTP 200, retrying on anything else."""
    tid, body, headers, _ = message(i)
    with ledger.lock:
        ledger.deliveries += 1
    for attempt in range(MAX_ATTEMPTS):
        if time.monotonic() > deadline:
            break
        with ledger.lock:
            ledger.attempts += 1
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("POST", "/mm7", body=body, headers=headers)
            response = connection.getresponse()
            reply = parse_reply(response.status, dict(response.getheaders()), response.read())
            outcome = f"http:{reply.http_status}"
        except (OSError, http.client.HTTPException) as error:
            reply, outcome = None, f"error:{type(error).__name__}"
        finally:
            connection.close()
        with ledger.lock:
            ledger.outcomes[outcome] += 1
            if reply is not None and reply.http_status == 200:
                ledger.statuses[reply.status_code or 0] += 1
                if reply.status_code == 1000 and reply.transaction_id == tid:
                    ledger.acks[tid] += 1
                return  # a 200 is final for a relay
        time.sleep(min(0.3, 0.01 * 2**attempt) * (0.5 + random.random()))
    with ledger.lock:
        ledger.gave_up.append(tid)


# -- one run ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    ledger: Ledger
    processed: list[dict[str, t.Any]]
    kills: list[str]
    failed_jobs: int
    left_in_spool: int
    seconds: float
    #: times a handler was reached by a message it had already queued (the dedupe store did
    #: not know its answer: the host died before recording it)
    queued_again: int


def run(tmp_path: pathlib.Path, redis_url: str, dedupe_url: str) -> Result:
    spool, processed = tmp_path / "spool", tmp_path / "processed.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)]),
        "REDIS_URL": redis_url,
        "QUEUE_SPOOL": str(spool),
        "QUEUE_PROCESSED": str(processed),
        "MM7_DEDUPE": dedupe_url,
        "MM7_BASIC_AUTH": CREDENTIALS,
    }
    hosts = [Host(address, env, tmp_path) for address in HOSTS]
    ledger, kills = Ledger(), []
    twice = set(random.Random(13).sample(range(MESSAGES), int(MESSAGES * TWICE_SHARE)))
    # each second copy goes in a few places after its first: sometimes both are in flight
    order: list[int] = []
    for i in range(MESSAGES):
        order.append(i)
        if i - 3 in twice:
            order.append(i - 3)
    order += [i for i in twice if i >= MESSAGES - 3]
    for i in range(MESSAGES):  # built once, before the threads: both copies are the same bytes
        message(i)
    started = time.monotonic()
    try:
        for host in hosts:
            host.start()
            host.ready.set()
        upstreams = [f"{host.address}:{host.port}" for host in hosts]
        with (
            nginx(tmp_path / "nginx", upstreams) as port,
            rq_worker(redis_url, env, tmp_path / "rq.log"),
        ):
            deadline = time.monotonic() + TIME_BUDGET
            kill_at = {len(order) // 4: hosts[1], len(order) * 3 // 5: hosts[0]}
            with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
                futures = []
                for n, i in enumerate(order):
                    if n in kill_at:  # the whole host dies mid-traffic, then comes back
                        for host in hosts:  # one host down at a time
                            assert host.ready.wait(30), "a host did not come back in 30 s"
                        while sum(not f.done() for f in futures) > CLIENT_THREADS:
                            time.sleep(0.01)  # let the traffic catch up to this point
                        kill_at[n].kill_and_restart(downtime=0.5)
                        kills.append(f"{kill_at[n].address} at delivery {n}")
                    futures.append(pool.submit(deliver, port, i, ledger, deadline))
                for future in futures:
                    future.result()
            # the worker drains the queue
            import redis
            from rq import Queue
            from rq.registry import FailedJobRegistry, StartedJobRegistry

            connection = redis.Redis.from_url(redis_url)
            queue = Queue("mm7", connection=connection)
            started_jobs = StartedJobRegistry(queue=queue)
            drain = time.monotonic() + 30
            while len(queue) or len(started_jobs):
                assert time.monotonic() < drain, "the worker did not drain the queue in 30 s"
                time.sleep(0.1)
            failed_jobs = len(FailedJobRegistry(queue=queue))
            connection.close()
    finally:
        for host in hosts:
            host.stop()
    lines = processed.read_text().splitlines() if processed.exists() else []
    left = [p for p in spool.iterdir() if not p.name.startswith(".")] if spool.exists() else []
    return Result(
        ledger=ledger,
        processed=[json.loads(line) for line in lines],
        kills=kills,
        failed_jobs=failed_jobs,
        left_in_spool=len(left),
        seconds=time.monotonic() - started,
        queued_again=sum(
            host.log.read_text(errors="replace").count("handed off before") for host in hosts
        ),
    )


def report(name: str, result: Result) -> str:
    ledger = result.ledger
    per_tid = collections.Counter(record["transaction_id"] for record in result.processed)
    lines = [
        f"== {name}: {MESSAGES} messages, {ledger.deliveries} deliveries"
        f" ({ledger.deliveries - MESSAGES} sent twice on purpose), {result.seconds:.1f} s",
        f"   host kills (SIGKILL of master and workers, then restart): {result.kills}",
        f"   HTTP attempts {ledger.attempts}, outcomes {dict(sorted(ledger.outcomes.items()))}",
        f"   HTTP 200 answers by StatusCode {dict(ledger.statuses)};"
        f" messages acknowledged {len(ledger.acks)}, relay gave up on {len(ledger.gave_up)}",
        f"   processed by the worker: {len(result.processed)} records,"
        f" {len(per_tid)} messages, twice: {sum(1 for n in per_tid.values() if n > 1)},"
        f" never: {MESSAGES - len(per_tid)}; failed jobs {result.failed_jobs};"
        f" spool directories left {result.left_in_spool}",
        f"   handler reached by a message it had queued already: {result.queued_again}"
        " (its first answer died with its host)",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    REPORT.parent.mkdir(exist_ok=True)
    with open(REPORT, "a", encoding="utf-8") as out:
        out.write(text + "\n")
    return text


def check(result: Result) -> None:
    ledger = result.ledger
    assert not ledger.gave_up, f"the relay gave up on {ledger.gave_up[:10]}"
    assert len(ledger.acks) == MESSAGES, "every message acknowledged with 1000"
    assert set(ledger.statuses) == {1000}, "no other StatusCode under load"
    assert len(result.kills) == 2
    per_tid = collections.Counter(record["transaction_id"] for record in result.processed)
    assert sorted(per_tid) == sorted(message(i)[0] for i in range(MESSAGES)), "none lost"
    assert set(per_tid.values()) == {1}, "each processed exactly once"
    for record in result.processed:
        i = int(record["transaction_id"].split("-")[1])
        assert record["attachments"] == message(i)[3], "content intact"
    assert result.failed_jobs == 0
    lost = ledger.outcomes.get("http:502", 0) + sum(
        n for outcome, n in ledger.outcomes.items() if outcome.startswith("error:")
    )  # answers lost with a host
    # the second copies were answered by the shared dedupe store, not by the handler again;
    # the handler saw a message twice only when its first answer died with its host
    assert result.queued_again <= lost
    # a copy saved again is removed when its job had finished; one that raced the worker's
    # last step may stay
    assert result.left_in_spool <= result.queued_again


@pytest.fixture(scope="module")
def redis_url() -> t.Iterator[str]:
    with redis_server() as url:
        yield url


def test_two_hosts_with_redis_dedupe(tmp_path: pathlib.Path, redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushall()
    result = run(tmp_path, redis_url, redis_url)
    report("two hosts, Redis dedupe, RQ", result)
    check(result)


def test_two_hosts_with_postgresql_dedupe(tmp_path: pathlib.Path, redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushall()
    with postgres_server() as dedupe_url:
        result = run(tmp_path, redis_url, dedupe_url)
    report("two hosts, PostgreSQL dedupe, RQ", result)
    check(result)
