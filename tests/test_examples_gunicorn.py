"""The WSGI-only example and the inbox under a real gunicorn, as their docs say to run them."""

from __future__ import annotations

import http.client
import pathlib

import pytest
from gunicorn_server import gunicorn

from flask_mm7.testing import MM7Request, build_deliver, parse_reply, seed_example

pytest.importorskip("gunicorn", reason="gunicorn is not installed (pip install -e '.[test]')")


def _post(port: int, request: MM7Request) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {k: v for k, v in request.headers.items() if k not in ("Host", "Connection")}
        connection.request("POST", "/mm7", body=request.body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_wsgi_only_example_under_gunicorn(tmp_path: pathlib.Path) -> None:
    with gunicorn("examples.wsgi_only:application", tmp_path, {}, ["--workers", "2"]) as served:
        port = served[0]
        reply = parse_reply(*_post(port, seed_example("\r\n")))
        assert reply.ok, reply.summary
        assert reply.transaction_id == "369171411769819136"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        assert connection.getresponse().status == 200  # the wrapped app answers off the path
        connection.close()


def test_inbox_under_gunicorn_stores_each_message_once(tmp_path: pathlib.Path) -> None:
    env = {"INBOX_DIR": str(tmp_path / "inbox")}
    app = "examples.inbox.app:create_app()"
    with gunicorn(app, tmp_path, env, ["--workers", "2"]) as served:
        port = served[0]
        request = build_deliver(text="under gunicorn", subject="gunicorn")
        for _ in range(3):  # the relay's retries land on either worker
            reply = parse_reply(*_post(port, request))
            assert reply.ok, reply.summary
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        page = connection.getresponse().read().decode()
        connection.close()
    assert page.count("under gunicorn") == 1
