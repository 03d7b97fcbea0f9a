"""The testing kit against the real receiver: what the kit builds, MM7Middleware reads."""

from __future__ import annotations

import datetime
import threading
import typing as t

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from flask_mm7 import MM7Error, MM7Middleware, cli, testing
from flask_mm7._messages import DeliverRequest, DeliveryReport, Message, ReadReply
from flask_mm7.testing import Media

NASTY = bytes(range(256)) + b"\r\n\n\r--\r\n\r\n"


class Inbox:
    """Handlers that keep what they were given (attachment bytes read inside the handler)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.data: list[list[bytes]] = []
        #: ``msg.text`` of each DeliverReq, read inside the handler (attachments are released
        #: when the request ends)
        self.texts: list[str | None] = []
        self.answer: t.Any = None

    def __call__(self, message: Message) -> t.Any:
        self.messages.append(message)
        if isinstance(message, DeliverRequest):
            self.texts.append(message.text)
            self.data.append([a.read() for a in message.attachments])
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def middleware(self) -> MM7Middleware:
        return MM7Middleware(None, on_deliver=self, on_delivery_report=self, on_read_reply=self)

    @property
    def deliver(self) -> DeliverRequest:
        message = self.messages[-1]
        assert isinstance(message, DeliverRequest)
        return message


@pytest.mark.parametrize("version", ["5.3.0", "5.6.0", "6.1.0", "6.8.0"])
@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
@pytest.mark.parametrize("linesep", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_deliver_round_trip(version: str, nested: bool, linesep: str) -> None:
    inbox = Inbox()
    request = testing.build_deliver(
        sender="12125550123",
        recipients=["222111"],
        cc=["user@example.com"],
        subject="Grüße <&> ✓",
        priority="High",
        ua_prof="Samsung Galaxy",
        timestamp=datetime.datetime(2014, 4, 14, 16, 15, 23, 414000, datetime.timezone.utc),
        text="Test MO message!",
        attachments=[
            Media(NASTY, "image/jpeg", filename="photo.jpg"),
            Media(NASTY[::-1], "image/png", transfer_encoding="base64"),
            Media(NASTY, "application/octet-stream", transfer_encoding="quoted-printable"),
        ],
        version=version,
        nested=nested,
        linesep=linesep,
        transaction_id="369171411769819136",
    )
    reply = testing.post(inbox.middleware(), request)
    assert reply.ok, reply.summary
    assert reply.operation == "DeliverRsp"
    assert reply.transaction_id == "369171411769819136"
    assert reply.mm7_version == version
    assert reply.namespace == testing.default_namespace(version)

    msg = inbox.deliver
    assert msg.transaction_id == "369171411769819136"
    assert msg.linked_id == "369171411769819136"
    assert msg.mm7_version == version
    assert str(msg.sender) == "12125550123"
    assert [(r.value, r.type, r.role) for r in msg.recipients] == [
        ("222111", "Number", "To"),
        ("user@example.com", "RFC2822Address", "Cc"),
    ]
    assert msg.subject == "Grüße <&> ✓"
    assert msg.priority == "High"
    assert msg.ua_prof == "Samsung Galaxy"
    assert msg.carrier_id == "474"
    assert msg.timestamp == datetime.datetime(
        2014, 4, 14, 16, 15, 23, 414000, datetime.timezone.utc
    )
    assert [a.mimetype for a in msg.attachments] == [
        "image/jpeg",
        "image/png",
        "application/octet-stream",
        "text/plain",
    ]
    assert inbox.data[-1][:3] == [NASTY, NASTY[::-1], NASTY]
    assert msg.attachments[0].filename == "photo.jpg"
    assert inbox.texts[-1] == "Test MO message!"


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"], ids=["as-printed", "crlf"])
def test_seed_example_round_trip(line_ending: str) -> None:
    inbox = Inbox()
    reply = testing.post(inbox.middleware(), testing.seed_example(line_ending))
    assert reply.ok, reply.summary
    assert reply.transaction_id == "369171411769819136"
    assert reply.namespace == testing.default_namespace("6.8.0")
    msg = inbox.deliver
    assert str(msg.sender) == "12125550123"
    assert inbox.data[-1] == [b"<Binary contents>", b"Test MO message!"]


def test_reports_round_trip() -> None:
    inbox = Inbox()
    middleware = inbox.middleware()
    report = testing.build_delivery_report(
        message_id="MSG-1",
        recipient="12125550123",
        sender="222111",
        version="5.3.0",
        status_text="Delivered",
        date="2014-04-14T16:15:23Z",
    )
    reply = testing.post(middleware, report)
    assert reply.ok and reply.operation == "DeliveryReportRsp", reply.summary
    assert reply.transaction_id == report.transaction_id
    assert reply.mm7_version == "5.3.0"
    message = inbox.messages[-1]
    assert isinstance(message, DeliveryReport)
    assert (message.message_id, message.mm_status, message.status_text) == (
        "MSG-1",
        "Retrieved",
        "Delivered",
    )
    assert str(message.recipient) == "12125550123" and str(message.sender) == "222111"

    read = testing.build_read_reply(
        message_id="MSG-2", recipient="12125550123", sender="222111", multipart=True
    )
    reply = testing.post(middleware, read)
    assert reply.ok and reply.operation == "ReadReplyRsp", reply.summary
    message = inbox.messages[-1]
    assert isinstance(message, ReadReply)
    assert (message.message_id, message.mm_status) == ("MSG-2", "Read")


def test_refusal_and_fault_replies() -> None:
    inbox = Inbox()
    middleware = inbox.middleware()
    inbox.answer = MM7Error(2004, "No pictures of cats")
    reply = testing.post(middleware, testing.build_deliver(transaction_id="T1"))
    assert not reply.ok
    assert (reply.status_code, reply.status_text) == (2004, "No pictures of cats")
    assert reply.transaction_id == "T1"

    inbox.answer = MM7Error(3000)
    reply = testing.post(middleware, testing.build_deliver(transaction_id="T2"))
    assert reply.is_fault and not reply.ok
    assert reply.status_code == 3000
    assert reply.summary.startswith(f"HTTP {reply.http_status}: Fault ")


def test_flask_extension_and_flask_mm7_send() -> None:
    flask = pytest.importorskip("flask")
    from flask_mm7 import MM7

    inbox = Inbox()
    app = flask.Flask(__name__)
    mm7 = MM7(app)
    mm7.on_deliver(inbox)
    reply = testing.post(app, testing.build_deliver(subject="via post", transaction_id="5"))
    assert reply.ok and reply.transaction_id == "5"
    assert inbox.deliver.subject == "via post"

    class Quiet(WSGIRequestHandler):
        def log(self, type: str, message: str, *args: t.Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, app, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/mm7"
        runner = app.test_cli_runner()
        result = runner.invoke(args=["mm7", "send", url, "--transaction-id", "77", "--text", "hi"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("1000 ")
        assert result.output.endswith("(DeliverRsp, TransactionID 77)\n")
        assert inbox.texts[-1] == "hi"
        assert cli.main(["send", "--seed-example", url]) == 0
        assert inbox.data[-1] == [b"<Binary contents>", b"Test MO message!"]
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
