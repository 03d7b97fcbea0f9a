"""Input the server itself cannot read, under real gunicorn: a Client Fault logged in one line.

gunicorn reads a chunked body as the app reads ``wsgi.input`` and raises its own parse errors
from it (``InvalidChunkSize`` is not an ``OSError``). Whatever the input raises, the request
is the sender's fault: HTTP 400, a Client Fault, one log line, no traceback.
"""

from __future__ import annotations

import pathlib
import socket

import pytest
from gunicorn_server import gunicorn
from helpers import mm7_body

pytest.importorskip("gunicorn")

BROKEN_CHUNKS = {
    "chunk-size-not-hex": b"zz\r\n",
    "chunk-size-with-bare-cr": b"10\r",
    "chunk-without-terminator": b"5\r\nabcdeXY",
    "negative-chunk-size": b"-5\r\nabcde\r\n0\r\n\r\n",
}


def _post_raw(port: int, head: bytes, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


@pytest.mark.parametrize("broken", BROKEN_CHUNKS.values(), ids=BROKEN_CHUNKS.keys())
def test_broken_chunked_framing_is_a_client_fault_in_one_log_line(
    tmp_path: pathlib.Path, broken: bytes
) -> None:
    body, content_type = mm7_body()
    good_start = f"{len(body[:100]):x}\r\n".encode() + body[:100] + b"\r\n"
    head = (
        f"POST /mm7 HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\nX-Load-Tag: broken\r\nConnection: close\r\n\r\n"
    ).encode()
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {"LOADAPP_DB": str(tmp_path / "db.sqlite3"), "LOADAPP_LOG_DIR": str(logs),
           "LOADAPP_FAIL_BEFORE": "0", "LOADAPP_FAIL_AFTER": "0", "LOADAPP_SLEEP": "0"}  # fmt: skip
    with gunicorn("loadapp:application", tmp_path, env, ["--workers", "1"]) as (port, _, log):
        reply = _post_raw(port, head, good_start + broken)
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 400"), reply[:300]
    assert b"faultcode>soap-env:Client<" in reply and b"2007" in reply
    lines = [line for f in logs.iterdir() for line in f.read_text().splitlines()]
    ours = [line for line in lines if line.startswith("@@ broken ")]
    access = [line for line in ours if " flask_mm7.access: " in line]
    ours = [line for line in ours if line not in access]
    assert len(ours) == 1 and "could not be read" in ours[0], ours
    assert len(access) == 1 and "HTTP 400, status 2007" in access[0], access
    assert "Traceback" not in log.read_text()
