"""The durable hand-off: a received message written to a directory by the handler, rebuilt
read-only by a worker, atomically and idempotently."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import typing as t
from xml.etree import ElementTree

import pytest
from werkzeug.test import Client

from flask_mm7 import MM7Middleware, handoff
from flask_mm7.testing import (
    MM7Request,
    build_deliver,
    build_delivery_report,
    build_read_reply,
    parse_reply,
)

BIG = bytes(range(256)) * 2000  # 512 KB: spooled to disk by the receiver


def receive(request: MM7Request, handler: t.Callable[[t.Any], t.Any]) -> int:
    """POST ``request`` to a receiver whose handlers are ``handler``; the StatusCode."""
    app = MM7Middleware(
        on_deliver=handler,
        on_delivery_report=handler,
        on_read_reply=handler,
        allow_anonymous=True,
        spool_threshold=4096,
    )
    response = Client(app).post("/mm7", data=request.body, headers=request.headers)
    reply = parse_reply(response.status_code, dict(response.headers), response.data)
    return reply.status_code or 0


def save_in_handler(
    request: MM7Request, directory: pathlib.Path
) -> tuple[t.Any, pathlib.Path, list[bytes]]:
    """Receive ``request``; the message, the path ``save`` returned in its handler, and the
    attachments' content read there (it is gone after the request)."""
    seen: list[t.Any] = []

    def handler(msg: t.Any) -> None:
        path = handoff.save(msg, directory)
        contents = [a.getvalue() for a in getattr(msg, "attachments", [])]
        seen.append((msg, path, contents))

    assert receive(request, handler) == 1000
    return t.cast("tuple[t.Any, pathlib.Path, list[bytes]]", seen[0])


def assert_same(original: t.Any, loaded: t.Any, contents: list[bytes]) -> None:
    # a received message is the public class (its optional fields parsed on first access)
    assert isinstance(original, type(loaded)) and type(loaded).__name__ == type(original).__name__
    for field in dataclasses.fields(original):
        if field.name in ("element", "attachments", "headers"):
            continue
        assert getattr(loaded, field.name) == getattr(original, field.name), field.name
    assert ElementTree.tostring(loaded.element) == ElementTree.tostring(original.element)
    assert list(loaded.headers.items()) == list(original.headers.items())
    assert "Authorization" not in loaded.headers
    attachments = getattr(original, "attachments", [])
    assert [a.read() for a in getattr(loaded, "attachments", [])] == contents
    for mine, theirs in zip(loaded.attachments if attachments else [], attachments):
        for name in ("mimetype", "content_id", "filename", "safe_filename", "size", "index"):
            assert getattr(mine, name) == getattr(theirs, name), name
        assert mine.container_ids == theirs.container_ids


def test_a_deliver_request_comes_back_whole(tmp_path: pathlib.Path) -> None:
    request = build_deliver(
        subject="Grüße",
        text="hello ☃",
        attachments=[BIG, b"\xff\xd8small"],
        cc=["333"],
        priority="High",
        timestamp="2024-05-01T10:00:00+02:00",
    )
    msg, path, contents = save_in_handler(request, tmp_path / "spool")
    assert path.parent == tmp_path / "spool"
    with handoff.loaded(path) as loaded:
        assert loaded.timestamp is not None and loaded.timestamp.utcoffset() is not None
        assert len(loaded.attachments) == 3 and loaded.text == "hello ☃"
        assert_same(msg, loaded, contents)
    with pytest.raises(ValueError):  # closed at the end of the block
        loaded.attachments[0].read()


@pytest.mark.parametrize("build", [build_delivery_report, build_read_reply])
def test_reports_come_back_whole(tmp_path: pathlib.Path, build: t.Any) -> None:
    request = build(message_id="MSG-1", recipient="111", sender="222", status_text="done é")
    msg, path, _ = save_in_handler(request, tmp_path)
    with handoff.loaded(path) as loaded:
        assert_same(msg, loaded, [])


def test_the_loaded_message_is_read_only(tmp_path: pathlib.Path) -> None:
    _, path, _ = save_in_handler(build_deliver(attachments=[b"abc"]), tmp_path)
    loaded = handoff.load(path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.subject = "changed"  # type: ignore[misc]
    with pytest.raises(OSError):
        loaded.attachments[0].stream.write(b"x")
    assert loaded.attachments[0].read() == b"abc"
    handoff.close(loaded)


def test_a_retry_lands_in_the_same_directory(tmp_path: pathlib.Path) -> None:
    request = build_deliver(transaction_id="T-1", attachments=[b"one"])
    _, first, _ = save_in_handler(request, tmp_path)
    (first / "marker").write_text("first copy kept")
    _, again, _ = save_in_handler(request, tmp_path)
    assert again == first and (first / "marker").exists()
    _, other, _ = save_in_handler(
        build_deliver(transaction_id="T-1", attachments=[b"two"]), tmp_path
    )
    assert other != first  # the same TransactionID with other content is another message
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, other.name])


def test_a_failed_save_leaves_nothing(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: t.Any, **kwargs: t.Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(handoff.json, "dump", broken)
    outcomes: list[BaseException] = []

    def handler(msg: t.Any) -> None:
        try:
            handoff.save(msg, tmp_path)
        except OSError as error:
            outcomes.append(error)
            raise

    assert receive(build_deliver(attachments=[BIG]), handler) != 1000  # a Fault: retried
    assert len(outcomes) == 1 and list(tmp_path.iterdir()) == []


def test_save_leaves_the_attachment_readable_where_it_was(tmp_path: pathlib.Path) -> None:
    positions: list[tuple[int, int, bytes]] = []

    def handler(msg: t.Any) -> None:
        attachment = msg.attachments[0]
        attachment.stream.seek(10)
        handoff.save(msg, tmp_path)
        positions.append((attachment.stream.tell(), attachment.size, attachment.read(3)))

    assert receive(build_deliver(attachments=[BIG]), handler) == 1000
    assert positions == [(10, len(BIG), BIG[10:13])]


def test_load_refuses_another_format(tmp_path: pathlib.Path) -> None:
    _, path, _ = save_in_handler(build_deliver(), tmp_path)
    text = (path / "message.json").read_text().replace('"format": 1', '"format": 99')
    (path / "message.json").write_text(text)
    with pytest.raises(ValueError, match="format"):
        handoff.load(path)


def test_saved_files_are_flushed_and_renamed_whole(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(handoff.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    _, path, _ = save_in_handler(build_deliver(attachments=[b"a", b"b"]), tmp_path)
    assert len(synced) == 4  # two attachments, message.json, the spool directory
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
