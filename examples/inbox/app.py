"""MMS inbox: receive MMS over MM7, store each one durably, and show them on a web page.

Run it from the repository root with ``python examples/inbox/app.py``. It serves

* ``POST /mm7``  the MM7 endpoint your aggregator (or ``mm7 send``) delivers to;
* ``GET /``      the inbox page, newest first, refreshing itself as messages arrive;
* ``GET /attachments/<id>``  one stored attachment;
* ``GET /api/messages?since=<id>``  messages newer than ``id`` as JSON (the page polls this).

Everything lives in one instance folder, ``examples/inbox/instance/`` or ``$INBOX_DIR``,
created on first run: ``inbox.sqlite3`` (the messages and attachment metadata) and
``attachments/`` (the attachment bodies, under generated names; the sender's file name is kept
only as a display and download name). To empty it, run
``flask --app examples/inbox/app.py inbox clear`` (the app may keep running), or stop the app
and delete the folder.

Storage rules, the ones any real receiver needs:

* one message, one database transaction; the row is committed only after every attachment file
  has been written, so a committed message always has its files;
* ``TransactionID`` is UNIQUE: a relay that retries (because our reply was lost) gets success
  again without the message being stored twice;
* a storage failure answers a retryable error (3000, HTTP 500) so the relay tries again later;
  nothing else is refused.

Attachments are served with their stored type only for images, audio and video (never SVG);
everything else is a download with ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
from flask import (
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    send_file,
    url_for,
)

from flask_mm7 import MM7, DeliverRequest, MM7Error, StatusCode

HERE = Path(__file__).resolve().parent

log = logging.getLogger(__name__)

mm7 = MM7()

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id  TEXT NOT NULL UNIQUE,
    mm7_version     TEXT,
    sender          TEXT,
    recipients      TEXT NOT NULL,      -- JSON list of strings
    subject         TEXT,
    text            TEXT,
    sent_at         TEXT,               -- the MMS TimeStamp, ISO 8601 UTC, or NULL
    received_at     TEXT NOT NULL,      -- when we stored it, ISO 8601 UTC
    carrier_id      TEXT
);
CREATE TABLE IF NOT EXISTS attachments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    stored_name     TEXT NOT NULL UNIQUE,   -- generated; never derived from the sender
    filename        TEXT NOT NULL,          -- safe display / download name
    mimetype        TEXT NOT NULL,
    content_id      TEXT,
    size            INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attachments_message ON attachments(message_id, position);
"""

#: image types a browser may render from a stored file; SVG is absent on purpose (it runs script)
INLINE_IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/avif"}
)
_MIMETYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")

#: newest messages shown on the page and returned by one API call
PAGE_SIZE = 100


# --- storage -------------------------------------------------------------------------------


@contextlib.contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A connection to the inbox database, closed on exit (sqlite3's ``with`` does not close)."""
    conn = sqlite3.connect(current_app.config["INBOX_DATABASE"], timeout=30)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        yield conn
    finally:
        conn.close()


def init_storage(app: Flask) -> None:
    """Create the instance folder, the attachment folder and the tables if they are missing."""
    Path(app.config["INBOX_ATTACHMENTS"]).mkdir(parents=True, exist_ok=True)
    with app.app_context(), connect() as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # readers don't block the receiver
        conn.executescript(SCHEMA)


def clean_mimetype(value: str | None) -> str:
    value = (value or "").strip().lower()
    return value if _MIMETYPE_RE.match(value) else "application/octet-stream"


def display_kind(mimetype: str) -> str:
    """How the page shows an attachment: ``image``, ``audio``, ``video``, ``text`` or ``file``."""
    if mimetype in INLINE_IMAGE_TYPES:
        return "image"
    major = mimetype.partition("/")[0]
    if major in ("audio", "video"):
        return major
    if mimetype == "text/plain":
        return "text"  # already part of the message text
    return "file"


def _utc_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _write_attachments(msg: DeliverRequest, folder: Path, rows: list[dict[str, Any]]) -> None:
    """Write every attachment under a generated name, appending its row to ``rows`` first.

    A row is appended before its file is opened, so on an error ``rows`` names every file that
    may exist and the caller can remove them.
    """
    for position, part in enumerate(msg.attachments):
        mimetype = clean_mimetype(part.mimetype)
        ext = mimetypes.guess_extension(mimetype) or ".bin"
        row: dict[str, Any] = {
            "position": position,
            "stored_name": f"{uuid.uuid4().hex}{ext}",
            "filename": part.safe_filename or f"attachment-{position + 1}{ext}",
            "mimetype": mimetype,
            "content_id": part.content_id,
        }
        rows.append(row)
        with open(folder / row["stored_name"], "xb") as f:
            part.save(f)
            f.flush()
            os.fsync(f.fileno())
            row["size"] = f.tell()


def _remove(folder: Path, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        with contextlib.suppress(FileNotFoundError):
            (folder / row["stored_name"]).unlink()


@mm7.on_deliver
def store_message(msg: DeliverRequest) -> tuple[int, str]:
    """Store ``msg`` and its attachments; a retried TransactionID is acknowledged, not stored."""
    folder = Path(current_app.config["INBOX_ATTACHMENTS"])
    with connect() as conn:
        seen = conn.execute(
            "SELECT id FROM messages WHERE transaction_id = ?", (msg.transaction_id,)
        ).fetchone()
        if seen is not None:
            log.info("MMS %s already stored as #%d (a retry)", msg.transaction_id, seen["id"])
            return StatusCode.SUCCESS, "Successfully received MMS"

        rows: list[dict[str, Any]] = []
        try:
            _write_attachments(msg, folder, rows)  # files first ...
            with conn:  # ... then one transaction for the message and its attachments
                cur = conn.execute(
                    "INSERT INTO messages (transaction_id, mm7_version, sender, recipients,"
                    " subject, text, sent_at, received_at, carrier_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        msg.transaction_id,
                        msg.mm7_version,
                        str(msg.sender) if msg.sender is not None else None,
                        json.dumps([str(r) for r in msg.recipients]),
                        msg.subject,
                        msg.text,
                        _utc_iso(msg.timestamp),
                        datetime.now(timezone.utc).isoformat(),
                        msg.carrier_id,
                    ),
                )
                conn.executemany(
                    "INSERT INTO attachments (message_id, position, stored_name, filename,"
                    " mimetype, content_id, size) VALUES (:message_id, :position,"
                    " :stored_name, :filename, :mimetype, :content_id, :size)",
                    [dict(row, message_id=cur.lastrowid) for row in rows],
                )
        except sqlite3.IntegrityError:
            # The same TransactionID committed by a concurrent request (a fast retry) since
            # our check above: that copy is the stored one.
            _remove(folder, rows)
            log.info("MMS %s stored concurrently (a retry)", msg.transaction_id)
            return StatusCode.SUCCESS, "Successfully received MMS"
        except (OSError, sqlite3.Error) as exc:
            _remove(folder, rows)
            log.exception("could not store MMS %s", msg.transaction_id)
            raise MM7Error(StatusCode.SERVER_ERROR, "Could not store the message; retry") from exc
        except BaseException:
            _remove(folder, rows)
            raise

    log.info(
        "stored MMS %s from %s with %d attachment(s)",
        msg.transaction_id,
        msg.sender,
        len(rows),
    )
    return StatusCode.SUCCESS, "Successfully received MMS"


def clear_inbox(conn: sqlite3.Connection, folder: Path) -> tuple[int, int]:
    """Delete every stored message and its attachment files; (messages, files) removed.

    Only the files of the deleted rows are removed, after the commit: a message being stored
    right now (files written, row not yet committed) keeps its files. Ids are not reused
    (AUTOINCREMENT), so an open page keeps polling correctly.
    """
    with conn:
        conn.execute("BEGIN IMMEDIATE")  # no message is committed between the two reads
        names = [row[0] for row in conn.execute("SELECT stored_name FROM attachments")]
        count = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        conn.execute("DELETE FROM attachments")
        conn.execute("DELETE FROM messages")
    removed = 0
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
            removed += 1
    return count, removed


def load_messages(conn: sqlite3.Connection, since: int = 0) -> list[dict[str, Any]]:
    """The newest :data:`PAGE_SIZE` messages with ``id > since``, newest first."""
    messages = [
        dict(row, recipients=json.loads(row["recipients"]), attachments=[])
        for row in conn.execute(
            "SELECT * FROM messages WHERE id > ? ORDER BY id DESC LIMIT ?", (since, PAGE_SIZE)
        )
    ]
    by_id = {m["id"]: m for m in messages}
    if by_id:
        marks = ",".join("?" * len(by_id))
        for row in conn.execute(
            "SELECT id, message_id, filename, mimetype, size FROM attachments"
            f" WHERE message_id IN ({marks}) ORDER BY message_id, position",
            list(by_id),
        ):
            by_id[row["message_id"]]["attachments"].append(
                dict(row, kind=display_kind(row["mimetype"]))
            )
    return messages


def _format_time(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def _format_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


# --- the app -------------------------------------------------------------------------------


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The inbox app. ``config`` may set ``INBOX_DIR`` (the instance folder) among others.

    Defaults: ``INBOX_DIR`` is ``$INBOX_DIR`` or ``examples/inbox/instance``; the database is
    ``INBOX_DIR/inbox.sqlite3`` and attachments go to ``INBOX_DIR/attachments``;
    ``INBOX_POLL_SECONDS`` (2) is how often the page asks for new messages.
    """
    config = dict(config or {})
    inbox_dir = Path(config.get("INBOX_DIR") or os.environ.get("INBOX_DIR") or HERE / "instance")
    inbox_dir = inbox_dir.resolve()
    app = Flask(__name__, instance_path=str(inbox_dir), root_path=str(HERE))
    app.config.update(
        INBOX_DIR=str(inbox_dir),
        INBOX_DATABASE=str(inbox_dir / "inbox.sqlite3"),
        INBOX_ATTACHMENTS=str(inbox_dir / "attachments"),
        INBOX_POLL_SECONDS=2.0,
        MM7_PATH="/mm7",
    )
    app.config.update(config)
    init_storage(app)
    mm7.init_app(app)

    app.jinja_env.filters["when"] = _format_time
    app.jinja_env.filters["filesize"] = _format_size

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self';"
            " media-src 'self'; style-src 'unsafe-inline'; base-uri 'none';"
            " form-action 'none'; frame-ancestors 'none'",
        )
        return response

    @app.get("/")
    def index() -> str:
        with connect() as conn:
            messages = load_messages(conn)
            total = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        return render_template(
            "index.html",
            messages=messages,
            total=total,
            latest=messages[0]["id"] if messages else 0,
            poll_ms=int(float(app.config["INBOX_POLL_SECONDS"]) * 1000),
            mm7_url=request.host_url.rstrip("/") + app.config["MM7_PATH"],
        )

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)  # no icon; keeps 404s out of the browser console

    @app.get("/api/messages")
    def api_messages() -> Response:
        """Messages with id > ``since`` (newest first), and their rendered HTML for the page."""
        since = request.args.get("since", 0, type=int)
        with connect() as conn:
            messages = load_messages(conn, since)
            total = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        html = render_template("_messages.html", messages=messages) if messages else ""
        for m in messages:
            for a in m["attachments"]:
                a["url"] = url_for("attachment", attachment_id=a["id"])
        return jsonify(
            latest=messages[0]["id"] if messages else since,
            total=total,
            messages=messages,
            html=html,
        )

    @app.cli.group("inbox")
    def inbox_cli() -> None:
        """Manage the stored messages."""

    @inbox_cli.command("clear")
    @click.confirmation_option(prompt="Delete every stored message and attachment?")
    def clear_command() -> None:
        """Delete every stored message and its attachment files."""
        with connect() as conn:
            count, files = clear_inbox(conn, Path(app.config["INBOX_ATTACHMENTS"]))
        click.echo(f"Deleted {count} message(s) and {files} attachment file(s).")

    @app.get("/attachments/<int:attachment_id>")
    def attachment(attachment_id: int) -> Response:
        with connect() as conn:
            row = conn.execute(
                "SELECT stored_name, filename, mimetype FROM attachments WHERE id = ?",
                (attachment_id,),
            ).fetchone()
        if row is None:
            abort(404)
        path = Path(app.config["INBOX_ATTACHMENTS"]) / row["stored_name"]
        inline = display_kind(row["mimetype"]) in ("image", "audio", "video")
        response = send_file(
            path,
            mimetype=row["mimetype"],
            as_attachment=not inline,
            download_name=row["filename"],
            conditional=True,  # Range requests, so video and audio can seek
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        # opened on its own (a thumbnail clicked), the browser's viewer styles the media inline
        styles = " style-src 'unsafe-inline';" if inline else ""
        response.headers["Content-Security-Policy"] = f"default-src 'none';{styles} sandbox"
        return response

    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    inbox = create_app()
    print(f"Inbox data in {inbox.config['INBOX_DIR']}")
    print("Page: http://127.0.0.1:5000/   MM7 endpoint: http://127.0.0.1:5000/mm7")
    inbox.run(host="127.0.0.1", port=5000)
