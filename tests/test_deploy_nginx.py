"""The shipped nginx deployment (examples/nginx) in front of gunicorn, against slow clients.

gunicorn (gthread, 2 workers x 4 threads) serves ``tests/loadapp.py`` on 127.0.0.1, and nginx
runs from ``examples/nginx/nginx.conf`` and ``mm7.conf`` (the shipped files, with only their
listen port and upstream address replaced) as the current user, with its pid and temp files
in the test's temporary directory. Fifty clients send their headers and then a body a byte a
second; meanwhile a real DeliverReq must get its 1000 within a second through nginx. A control
shows the same slow clients stall gunicorn alone (one gthread worker). The relay's traffic comes from 127.0.0.2, the only
address in ``MM7_ALLOWED_IPS``, so a delivery accepted through nginx also proves that the
X-Forwarded-For it sets reaches the allowlist through ProxyFix, and one that claims to be from
127.0.0.2 in its own X-Forwarded-For is refused.

Needs ``nginx`` (Debian's package; ``.ci/system-deps`` installs it) and gunicorn (the ``test``
extra); skipped without them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import os
import pathlib
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import typing as t

import pytest
from gunicorn_server import ROOT, free_port, gunicorn, stop, wait_listening

from flask_mm7.testing import MM7Reply, MM7Request, build_deliver, parse_reply

pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install -e '.[test]')")

NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="needs nginx (apt-get install nginx; .ci/system-deps installs it)"
)

EXAMPLE = ROOT / "examples" / "nginx"
RELAY = "127.0.0.2"  # the relay's address: the one MM7_ALLOWED_IPS allows
SLOW_CLIENTS = 50
GTHREAD = ["--workers", "2", "--worker-class", "gthread", "--threads", "4"]
APP_ENV = {
    "LOADAPP_FAIL_BEFORE": "0",
    "LOADAPP_FAIL_AFTER": "0",
    "LOADAPP_SLEEP": "0",
    "LOADAPP_PROXY_FIX": "1",
    "MM7_ALLOWED_IPS": RELAY,
}


def render(directory: pathlib.Path, port: int, upstream_port: int) -> None:
    """The shipped nginx.conf and mm7.conf in ``directory``, listening on 127.0.0.1:``port``
    and proxying to gunicorn on ``upstream_port``; nothing else changed."""
    text = (EXAMPLE / "mm7.conf").read_text()
    for old, new in (
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};"),
    ):
        assert text.count(old) == 1, f"examples/nginx/mm7.conf no longer has {old!r} once"
        text = text.replace(old, new)
    (directory / "mm7.conf").write_text(text)
    shutil.copyfile(EXAMPLE / "nginx.conf", directory / "nginx.conf")


@contextlib.contextmanager
def nginx(directory: pathlib.Path, upstream_port: int) -> t.Iterator[int]:
    """nginx from the shipped config in the foreground until the block ends; yields its port.

    One process (``master_process off``), so that it runs as whoever runs the tests, root
    included, without switching to a user that cannot write the temporary directory.
    """
    assert NGINX is not None
    directory.mkdir()
    port = free_port()
    render(directory, port, upstream_port)
    log = directory / "nginx.log"
    command = [
        NGINX, "-p", f"{directory}/", "-c", str(directory / "nginx.conf"), "-e", "stderr",
        "-g", "master_process off;",
    ]  # fmt: skip
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_listening(process, port, log, seconds=10)
        yield port
    finally:
        stop(process)


class SlowClients:
    """``count`` connections that send a complete header block, then one body byte a second
    each, from one thread, until stopped."""

    def __init__(self, port: int, count: int) -> None:
        head = (
            "POST /mm7 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            'Content-Type: multipart/related; type="text/xml"; boundary="slow"\r\n'
            "Content-Length: 100000\r\n"
            "\r\n"
        ).encode()
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.create_connection(
                ("127.0.0.1", port), timeout=5, source_address=(RELAY, 0)
            )
            sock.sendall(head)
            self.sockets.append(sock)
        self.bytes_sent = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slow-clients", daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.is_set():
            for sock in self.sockets:
                try:
                    sock.sendall(b"-")
                except OSError as error:
                    self.errors.append(error)
            self.bytes_sent += 1
            self._stop.wait(1.0)

    def still_open(self) -> int:
        """How many connections the server has neither closed nor answered."""
        open_ = 0
        for sock in self.sockets:
            sock.setblocking(False)  # (a socket with a timeout would wait for data)
            try:
                sock.recv(1, socket.MSG_PEEK)  # b"" (closed) or the start of a reply
            except BlockingIOError:
                open_ += 1  # nothing to read: still waiting for the rest of our body
            except OSError:
                pass  # reset
            finally:
                sock.settimeout(5)
        return open_

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def post(port: int, request: MM7Request, timeout: float, source: str = RELAY) -> MM7Reply:
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0)
    )
    try:
        connection.request("POST", "/mm7", body=request.body, headers=request.headers)
        response = connection.getresponse()
        return parse_reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def delivery(tid: str) -> tuple[MM7Request, tuple[int, str]]:
    payload = hashlib.sha256(tid.encode()).digest() * 200
    text = f"delivered past slow clients: {tid}"
    request = build_deliver(transaction_id=tid, attachments=[payload], text=text)
    stored = (len(payload) + len(text), hashlib.sha256(payload + text.encode()).hexdigest())
    return request, stored


def stored(db: pathlib.Path) -> dict[str, tuple[int, str]]:
    connection = sqlite3.connect(db, timeout=30)
    try:
        return {
            row[0]: (row[1], row[2])
            for row in connection.execute("SELECT transaction_id, size, digest FROM messages")
        }
    finally:
        connection.close()


def handler_calls(db: pathlib.Path) -> int:
    connection = sqlite3.connect(db, timeout=30)
    try:
        count: int = connection.execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'call'"
        ).fetchone()[0]
        return count
    finally:
        connection.close()


@pytest.fixture
def app_env(tmp_path: pathlib.Path) -> dict[str, str]:
    (tmp_path / "pids").mkdir()
    return {
        **APP_ENV,
        "LOADAPP_DB": str(tmp_path / "store.sqlite3"),
        "LOADAPP_PID_DIR": str(tmp_path / "pids"),
    }


@dataclasses.dataclass
class Deployment:
    port: int  # nginx's
    db: pathlib.Path
    gunicorn_log: pathlib.Path


@pytest.fixture
def deployment(tmp_path: pathlib.Path, app_env: dict[str, str]) -> t.Iterator[Deployment]:
    """gunicorn (gthread 2x4) behind nginx from the shipped config, both stopped after."""
    with contextlib.ExitStack() as stack:  # (not a parenthesised with: Python 3.9)
        upstream, _, log = stack.enter_context(
            gunicorn("loadapp:application", tmp_path, app_env, GTHREAD)
        )
        port = stack.enter_context(nginx(tmp_path / "nginx", upstream))
        yield Deployment(port, pathlib.Path(app_env["LOADAPP_DB"]), log)


def test_slow_clients_do_not_delay_a_delivery_through_nginx(deployment: Deployment) -> None:
    port = deployment.port
    warm, warm_stored = delivery("NGINX-WARM-UP")
    assert post(port, warm, timeout=10).status_code == 1000
    baseline, baseline_stored = delivery("NGINX-BASELINE")
    started = time.monotonic()
    assert post(port, baseline, timeout=10).status_code == 1000
    unloaded = time.monotonic() - started

    slow = SlowClients(port, SLOW_CLIENTS)
    try:
        time.sleep(2.5)  # long enough for gunicorn alone to be stalled (see the control)
        request, expected = delivery("NGINX-REAL-1")
        started = time.monotonic()
        reply = post(port, request, timeout=5)
        elapsed = time.monotonic() - started
        still_open = slow.still_open()
        trickled = slow.bytes_sent
    finally:
        slow.close()
    print(
        f"\nthrough nginx: delivery answered in {elapsed * 1000:.0f} ms while {SLOW_CLIENTS}"
        f" slow clients trickled ({still_open} still open after {trickled} body bytes each);"
        f" {unloaded * 1000:.0f} ms without them"
    )
    assert reply.http_status == 200 and reply.status_code == 1000, reply.summary
    assert reply.transaction_id == "NGINX-REAL-1"
    assert elapsed < 1.0
    # the slow clients were really there, connected and trickling, the whole time
    assert not slow.errors, slow.errors[:3]
    assert still_open == SLOW_CLIENTS and trickled >= 3
    # the handler stored it, and never saw a slow client's request
    assert stored(deployment.db) == {
        "NGINX-WARM-UP": warm_stored,
        "NGINX-BASELINE": baseline_stored,
        "NGINX-REAL-1": expected,
    }
    assert handler_calls(deployment.db) == 3
    assert "Traceback" not in deployment.gunicorn_log.read_text()


def test_the_allowlist_sees_the_address_nginx_forwards(deployment: Deployment) -> None:
    """nginx replaces a client's own X-Forwarded-For: claiming the relay's address in it from
    elsewhere gets 403, and the relay's real address gets through (ProxyFix x_for=1)."""
    spoofed, _ = delivery("NGINX-SPOOFED")
    spoofed.headers["X-Forwarded-For"] = RELAY
    refused = post(deployment.port, spoofed, timeout=10, source="127.0.0.1")
    genuine, expected = delivery("NGINX-GENUINE")
    accepted = post(deployment.port, genuine, timeout=10)
    assert refused.http_status == 403 and refused.status_code == 4007, refused.summary
    assert accepted.http_status == 200 and accepted.status_code == 1000, accepted.summary
    assert stored(deployment.db) == {"NGINX-GENUINE": expected}


def test_control_the_same_slow_clients_stall_gunicorn_alone(
    tmp_path: pathlib.Path, app_env: dict[str, str]
) -> None:
    """Without nginx the same slow clients take every thread of a gthread worker, and a
    delivery gets no answer within 3 s.

    One worker of 4 threads, so that the outcome is certain: with two, one worker often
    accepts nearly all the slow clients and the other still answers part of the deliveries.
    """
    one_worker = ["--workers", "1", "--worker-class", "gthread", "--threads", "4"]
    with gunicorn("loadapp:application", tmp_path, app_env, one_worker) as (port, _, _log):
        warm, _ = delivery("DIRECT-WARM-UP")
        assert post(port, warm, timeout=10).status_code == 1000
        slow = SlowClients(port, SLOW_CLIENTS)
        try:
            time.sleep(2.5)
            request, _ = delivery("DIRECT-REAL-1")
            started = time.monotonic()
            with pytest.raises(socket.timeout):
                post(port, request, timeout=3)
            waited = time.monotonic() - started
        finally:
            slow.close()
    print(f"\ngunicorn alone: no answer in {waited:.1f} s with {SLOW_CLIENTS} slow clients")
