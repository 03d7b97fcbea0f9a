"""The examples work: each one answers the seed example and a generated MMS with 1000.

The inbox example is checked in depth: what it stores, that a retry is not stored twice, what
the page shows and how attachments are served.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _examples_support import ROOT, SEED_TRANSACTION_ID, load_example, seed_from_file, tiny_png
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import Client

from flask_mm7.testing import Media, MM7Reply, MM7Request, build_deliver, post

PNG = tiny_png()


def generated_with_image(**kwargs: Any) -> MM7Request:
    kwargs.setdefault("text", "Look at this")
    kwargs.setdefault("subject", "A photo")
    return build_deliver(attachments=[Media(PNG, "image/png", "photo.png")], **kwargs)


def assert_ok(reply: MM7Reply, request: MM7Request) -> None:
    """HTTP 200, a DeliverRsp with StatusCode 1000, and the request's TransactionID echoed."""
    assert reply.ok, reply.summary
    assert reply.http_status == 200
    assert reply.operation == "DeliverRsp"
    assert reply.status_code == 1000
    assert reply.transaction_id == request.transaction_id


# --- minimal, factory, wsgi_only ---------------------------------------------------------


@pytest.mark.parametrize("make", [seed_from_file, generated_with_image], ids=["seed", "generated"])
def test_minimal(make: Any, capsys: pytest.CaptureFixture[str]) -> None:
    minimal = load_example("minimal.py")
    request = make()
    assert_ok(post(minimal.app.test_client(), request), request)
    out = capsys.readouterr().out
    assert f"MMS {request.transaction_id} from 12125550123" in out
    assert "image/" in out


@pytest.mark.parametrize("make", [seed_from_file, generated_with_image], ids=["seed", "generated"])
def test_factory(make: Any) -> None:
    factory = load_example("factory.py")
    app, other = factory.create_app(), factory.create_app()  # two apps, one extension
    request = make()
    assert_ok(post(app.test_client(), request), request)
    assert [tid for tid, _, _ in app.config["RECEIVED"]] == [request.transaction_id]
    assert other.config["RECEIVED"] == []
    assert app.test_client().get("/").get_data(as_text=True).startswith("1 MMS received")


@pytest.mark.parametrize("make", [seed_from_file, generated_with_image], ids=["seed", "generated"])
def test_wsgi_only(make: Any, capsys: pytest.CaptureFixture[str]) -> None:
    wsgi_only = load_example("wsgi_only.py")
    client = Client(wsgi_only.application)
    request = make()
    assert_ok(post(client, request), request)
    assert f"MMS {request.transaction_id} from 12125550123" in capsys.readouterr().out
    response = client.get("/")  # everything else reaches the wrapped app
    assert response.status_code == 200
    assert b"Hello from the wrapped WSGI app" in response.get_data()
    response.close()


# --- inbox ----------------------------------------------------------------------------------


@pytest.fixture
def inbox_module() -> ModuleType:
    return load_example("inbox/app.py")


@pytest.fixture
def inbox(inbox_module: ModuleType, tmp_path: Path) -> Flask:
    app: Flask = inbox_module.create_app({"INBOX_DIR": str(tmp_path / "inbox"), "TESTING": True})
    return app


@pytest.fixture
def client(inbox: Flask) -> FlaskClient:
    return inbox.test_client()


@contextlib.contextmanager
def database(app: Flask) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(app.config["INBOX_DATABASE"])
    try:
        conn.row_factory = sqlite3.Row
        yield conn
    finally:
        conn.close()


def messages(app: Flask) -> list[sqlite3.Row]:
    with database(app) as conn:
        return conn.execute("SELECT * FROM messages ORDER BY id").fetchall()


def attachments(app: Flask) -> list[sqlite3.Row]:
    with database(app) as conn:
        return conn.execute("SELECT * FROM attachments ORDER BY id").fetchall()


def stored_files(app: Flask) -> list[Path]:
    return sorted(Path(app.config["INBOX_ATTACHMENTS"]).iterdir())


def test_inbox_creates_its_instance_folder(inbox: Flask, tmp_path: Path) -> None:
    assert Path(inbox.config["INBOX_DATABASE"]).is_file()
    assert Path(inbox.config["INBOX_ATTACHMENTS"]).is_dir()
    assert Path(inbox.config["INBOX_DIR"]) == (tmp_path / "inbox").resolve()


def test_inbox_dir_from_environment(
    inbox_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INBOX_DIR", str(tmp_path / "from-env"))
    app = inbox_module.create_app()
    assert Path(app.config["INBOX_DATABASE"]).parent == (tmp_path / "from-env").resolve()


def test_inbox_empty_page_explains_how_to_send(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert "No messages yet" in page
    assert "mm7 send http://localhost/mm7 --attach photo.jpg --text hi" in page


def test_inbox_stores_the_seed_once(inbox: Flask, client: FlaskClient) -> None:
    request = seed_from_file()
    assert_ok(post(client, request), request)

    [row] = messages(inbox)
    assert row["transaction_id"] == SEED_TRANSACTION_ID
    assert row["sender"] == "12125550123"
    assert json.loads(row["recipients"]) == ["222111"]
    assert row["sent_at"].startswith("2014-04-14T16:15:23")
    assert row["carrier_id"] == "474"
    assert row["text"] == "Test MO message!"
    files = stored_files(inbox)
    assert [a["mimetype"] for a in attachments(inbox)] == ["image/jpeg", "text/plain"]
    assert sorted(a["stored_name"] for a in attachments(inbox)) == [f.name for f in files]
    assert (
        b"<Binary contents>"
        in (files[0].parent / attachments(inbox)[0]["stored_name"]).read_bytes()
    )

    # The relay retries (our reply was lost): success again, nothing new stored.
    assert_ok(post(client, seed_from_file()), request)
    assert len(messages(inbox)) == 1
    assert len(attachments(inbox)) == 2
    assert stored_files(inbox) == files


def test_inbox_page_and_attachment(inbox: Flask, client: FlaskClient) -> None:
    request = generated_with_image(subject="Holiday", text="Greetings from the beach")
    assert_ok(post(client, request), request)
    assert len(messages(inbox)) == 1

    [image, text] = attachments(inbox)
    assert (image["mimetype"], image["filename"], image["size"]) == (
        "image/png",
        "photo.png",
        len(PNG),
    )
    assert text["mimetype"] == "text/plain"
    assert (Path(inbox.config["INBOX_ATTACHMENTS"]) / image["stored_name"]).read_bytes() == PNG

    page = client.get("/")
    html = page.get_data(as_text=True)
    assert "Greetings from the beach" in html
    assert "Holiday" in html
    assert "12125550123" in html and "222111" in html
    assert f'<img src="/attachments/{image["id"]}"' in html
    assert "No messages yet" in html  # still in the page, but hidden
    assert 'id="empty" hidden' in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]

    response = client.get(f"/attachments/{image['id']}")
    assert response.status_code == 200
    assert response.get_data() == PNG
    assert response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith("inline")
    csp = response.headers["Content-Security-Policy"]
    assert csp == "default-src 'none'; style-src 'unsafe-inline'; sandbox"  # the viewer's styles
    response.close()

    assert client.get("/attachments/99999").status_code == 404


def test_inbox_newest_first(client: FlaskClient) -> None:
    for text in ("first message", "second message"):
        request = build_deliver(text=text)
        assert_ok(post(client, request), request)
    html = client.get("/").get_data(as_text=True)
    assert html.index("second message") < html.index("first message")


@pytest.mark.parametrize(
    ("mimetype", "tag"),
    [
        pytest.param("audio/amr", '<audio class="view" controls', id="audio"),
        pytest.param("video/3gpp", '<video class="view" controls', id="video"),
    ],
)
def test_inbox_plays_audio_and_video(
    inbox: Flask, client: FlaskClient, mimetype: str, tag: str
) -> None:
    request = build_deliver(
        text="listen", attachments=[Media(b"\x00\x01fake media", mimetype, "clip.bin")]
    )
    assert_ok(post(client, request), request)
    html = client.get("/").get_data(as_text=True)
    assert tag in html
    [media, _] = attachments(inbox)
    response = client.get(f"/attachments/{media['id']}")
    assert response.mimetype == mimetype
    assert response.headers["Content-Disposition"].startswith("inline")
    response.close()


@pytest.mark.parametrize(
    "mimetype",
    [
        pytest.param("image/svg+xml", id="svg"),
        pytest.param("text/html", id="html"),
        pytest.param("application/octet-stream", id="binary"),
        pytest.param("text/x-vcard", id="vcard"),
    ],
)
def test_inbox_never_serves_active_content_inline(
    inbox: Flask, client: FlaskClient, mimetype: str
) -> None:
    data = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    request = build_deliver(text="see attached", attachments=[Media(data, mimetype, "thing.svg")])
    assert_ok(post(client, request), request)
    [stored, _] = attachments(inbox)
    html = client.get("/").get_data(as_text=True)
    assert f'<img src="/attachments/{stored["id"]}"' not in html
    assert f'href="/attachments/{stored["id"]}" download="thing.svg"' in html

    response = client.get(f"/attachments/{stored['id']}")
    assert response.get_data() == data
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert "thing.svg" in response.headers["Content-Disposition"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    response.close()


def test_inbox_never_uses_the_senders_filename_as_a_path(inbox: Flask, client: FlaskClient) -> None:
    request = build_deliver(text="hi", attachments=[Media(PNG, "image/png", "../../../evil.png")])
    assert_ok(post(client, request), request)
    [stored, _] = attachments(inbox)
    assert "/" not in stored["filename"] and ".." not in stored["filename"]
    assert "evil" not in stored["stored_name"]
    folder = Path(inbox.config["INBOX_ATTACHMENTS"])
    assert {f.name for f in stored_files(inbox)} == {a["stored_name"] for a in attachments(inbox)}
    assert not any(p.name.startswith("evil") for p in folder.parent.parent.rglob("*"))


def test_inbox_escapes_everything(client: FlaskClient) -> None:
    request = build_deliver(text="<script>alert('x')</script>", subject="<b>bold</b> & co")
    assert_ok(post(client, request), request)
    html = client.get("/").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html


def test_inbox_api_messages_since(client: FlaskClient) -> None:
    empty = client.get("/api/messages?since=0").get_json()
    assert empty == {"latest": 0, "total": 0, "messages": [], "html": ""}

    first = generated_with_image(text="one")
    assert_ok(post(client, first), first)
    data = client.get("/api/messages?since=0").get_json()
    assert data["total"] == 1
    [message] = data["messages"]
    assert message["text"] == "one"
    assert message["transaction_id"] == first.transaction_id
    assert message["attachments"][0]["url"] == f"/attachments/{message['attachments'][0]['id']}"
    assert 'id="msg-' in data["html"] and "one" in data["html"]

    second = build_deliver(text="two")
    assert_ok(post(client, second), second)
    newer = client.get(f"/api/messages?since={data['latest']}").get_json()
    assert [m["text"] for m in newer["messages"]] == ["two"]
    assert newer["total"] == 2
    nothing = client.get(f"/api/messages?since={newer['latest']}").get_json()
    assert nothing["messages"] == [] and nothing["latest"] == newer["latest"]


def test_inbox_storage_failure_is_retryable(inbox: Flask, client: FlaskClient) -> None:
    inbox.config["INBOX_ATTACHMENTS"] = str(Path(inbox.config["INBOX_DIR"]) / "missing" / "dir")
    request = generated_with_image()
    reply = post(client, request)
    assert reply.http_status == 500  # a Fault: the relay retries later
    assert reply.is_fault
    assert reply.status_code == 3000
    assert messages(inbox) == []


def test_inbox_concurrent_retry_keeps_one_copy(
    inbox_module: ModuleType, inbox: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry that commits while we write our files: ours is dropped, files and all."""
    request = generated_with_image()
    write = inbox_module._write_attachments

    def write_then_lose_race(msg: Any, folder: Path, rows: list[dict[str, Any]]) -> None:
        write(msg, folder, rows)
        with database(inbox) as conn, conn:
            conn.execute(
                "INSERT INTO messages (transaction_id, recipients, received_at)"
                " VALUES (?, '[]', 'now')",
                (msg.transaction_id,),
            )

    monkeypatch.setattr(inbox_module, "_write_attachments", write_then_lose_race)
    assert_ok(post(client, request), request)
    assert len(messages(inbox)) == 1
    assert attachments(inbox) == []
    assert stored_files(inbox) == []


def test_inbox_clear_command(inbox: Flask, client: FlaskClient, tmp_path: Path) -> None:
    for request in (seed_from_file(), generated_with_image()):
        assert_ok(post(client, request), request)
    stray = Path(inbox.config["INBOX_ATTACHMENTS"]) / "being-written.png"
    stray.write_bytes(PNG)  # a file of a message not committed yet: not ours to delete
    before = messages(inbox)
    assert len(before) == 2 and len(stored_files(inbox)) == 5

    runner = inbox.test_cli_runner()
    result = runner.invoke(args=["inbox", "clear"], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert len(messages(inbox)) == 2

    result = runner.invoke(args=["inbox", "clear", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.output == "Deleted 2 message(s) and 4 attachment file(s).\n"
    assert messages(inbox) == [] and attachments(inbox) == []
    assert stored_files(inbox) == [stray]
    assert "No messages yet" in client.get("/").get_data(as_text=True)

    # ids are not reused, so a page still polling with ?since=<old id> sees the next message
    request = build_deliver(text="after the clear")
    assert_ok(post(client, request), request)
    [after] = messages(inbox)
    assert after["id"] > max(m["id"] for m in before)
    since = max(m["id"] for m in before)
    assert client.get(f"/api/messages?since={since}").get_json()["total"] == 1


def test_inbox_clear_as_documented(tmp_path: Path) -> None:
    """The command docs/examples.md gives, run as a user runs it."""
    env = {**os.environ, "INBOX_DIR": str(tmp_path / "inbox")}
    flask = [sys.executable, "-m", "flask", "--app", "examples/inbox/app.py"]
    send = [*flask, "mm7", "send", "--seed-example"]
    sent = subprocess.run(send, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("1000 Successfully received MMS (DeliverRsp")
    cleared = subprocess.run(
        [*flask, "inbox", "clear", "--yes"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout == "Deleted 1 message(s) and 2 attachment file(s).\n"
    assert list((tmp_path / "inbox" / "attachments").iterdir()) == []
