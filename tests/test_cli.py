"""Tests for the ``mm7 send`` command against a real server on 127.0.0.1."""

from __future__ import annotations

import base64
import email
import email.policy
import io
import os
import socket
import subprocess
import sys
import threading
import typing as t
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from flask_mm7 import cli, testing

ROOT = Path(__file__).parent.parent
SEED = (Path(__file__).parent / "data" / "seed-example.http").read_bytes()

FAULT = b"""<?xml version="1.0"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body><env:Fault>
<faultcode>env:Server</faultcode><faultstring>Server Error</faultstring><detail>
<VASPErrorRsp xmlns="urn:mm7"><MM7Version>6.8.0</MM7Version><Status>
<StatusCode>3000</StatusCode><StatusText>Server Error</StatusText></Status></VASPErrorRsp>
</detail></env:Fault></env:Body></env:Envelope>"""


def deliver_rsp(transaction_id: str, code: int = 1000, text: str = "Success") -> bytes:
    return (
        '<?xml version="1.0"?><e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<e:Header><m:TransactionID xmlns:m="urn:mm7">{transaction_id}</m:TransactionID>'
        '</e:Header><e:Body><m:DeliverRsp xmlns:m="urn:mm7"><m:MM7Version>6.8.0</m:MM7Version>'
        f"<m:Status><m:StatusCode>{code}</m:StatusCode><m:StatusText>{text}</m:StatusText>"
        "</m:Status></m:DeliverRsp></e:Body></e:Envelope>"
    ).encode()


@dataclass
class Receiver:
    """A hand-written WSGI receiver that records requests and answers ``reply``."""

    status: str = "200 OK"
    reply: bytes | None = None  # None: a DeliverRsp echoing the TransactionID
    requests: list[tuple[dict[str, t.Any], bytes]] = field(default_factory=list)

    def __call__(self, environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.requests.append((environ, body))
        reply = self.reply
        if reply is None:
            start = body.index(b"<ns3:TransactionID")
            tid = body[body.index(b">", start) + 1 : body.index(b"</ns3:TransactionID>")]
            reply = deliver_rsp(tid.decode())
        start_response(self.status, [("Content-Type", "text/xml; charset=utf-8")])
        return [reply]

    @property
    def last(self) -> tuple[dict[str, t.Any], bytes]:
        assert self.requests, "the server received nothing"
        return self.requests[-1]


class QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: t.Any) -> None:
        pass


@pytest.fixture
def receiver() -> t.Iterator[tuple[Receiver, str]]:
    app = Receiver()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}/mm7"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def parse(environ: dict[str, t.Any], body: bytes) -> EmailMessage:
    head = f"Content-Type: {environ['CONTENT_TYPE']}\r\n\r\n".encode()
    msg = email.message_from_bytes(head + body, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def leaves(msg: EmailMessage) -> list[EmailMessage]:
    return [p for p in msg.walk() if not p.is_multipart()][1:]


def test_send_deliver_with_attachments(
    receiver: tuple[Receiver, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, url = receiver
    jpeg = tmp_path / "cat.jpg"
    jpeg.write_bytes(bytes(range(256)) * 4)
    blob = tmp_path / "blob.unknownext"
    blob.write_bytes(b"\r\n--\r\n")
    code = cli.main(
        [
            "send",
            url,
            "-a",
            str(jpeg),
            "--attach",
            str(blob),
            "--type",
            "image/png",
            "--text",
            "Hello ✓",
            "--subject",
            "Hi & bye",
            "--sender",
            "15550001111",
            "--recipient",
            "222111",
            "--recipient",
            "333",
            "--transaction-id",
            "369171411769819136",
        ]
    )
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out == "1000 Success (DeliverRsp, TransactionID 369171411769819136)\n"
    environ, body = app.last
    assert environ["PATH_INFO"] == "/mm7"
    assert environ["CONTENT_LENGTH"] == str(len(body))
    assert environ["HTTP_SOAPACTION"] == '""'
    assert environ["HTTP_USER_AGENT"] == "OpenMarket"
    assert "HTTP_AUTHORIZATION" not in environ
    parts = leaves(parse(environ, body))
    assert [p.get_content_type() for p in parts] == ["image/jpeg", "image/png", "text/plain"]
    assert parts[0].get_payload(decode=True) == jpeg.read_bytes()
    assert parts[1].get_payload(decode=True) == b"\r\n--\r\n"
    assert parts[2].get_content() == "Hello ✓"
    assert b"<ns3:Subject>Hi &amp; bye</ns3:Subject>" in body
    assert b"<ns3:Number>15550001111</ns3:Number>" in body
    assert body.count(b'<ns3:Number displayOnly="false">') == 2


def test_send_stdin_attachment_and_basic_auth(
    receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, url = receiver
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

    class Stdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", Stdin)
    monkeypatch.setenv("MM7_SEND_PASSWORD", "s3cr:et")
    assert cli.main(["send", url, "-a", "-;type=image/png", "--user", "vasp"]) == 0
    environ, body = app.last
    token = base64.b64encode(b"vasp:s3cr:et").decode()
    assert environ["HTTP_AUTHORIZATION"] == f"Basic {token}"
    (part,) = leaves(parse(environ, body))
    assert part.get_content_type() == "image/png"
    assert part.get_payload(decode=True) == data


def test_send_credentials_in_url(receiver: tuple[Receiver, str]) -> None:
    app, url = receiver
    url = url.replace("http://", "http://user%40x:p%20w@") + "?key=1"
    assert cli.main(["send", url]) == 0
    environ, _ = app.last
    assert environ["QUERY_STRING"] == "key=1"
    assert environ["HTTP_AUTHORIZATION"] == "Basic " + base64.b64encode(b"user@x:p w").decode()


def test_send_seed_example(
    receiver: tuple[Receiver, str], capsys: pytest.CaptureFixture[str]
) -> None:
    app, url = receiver
    assert cli.main(["send", "--seed-example", url]) == 0
    environ, body = app.last
    assert body == SEED[SEED.index(b"------=_Part") :]
    assert environ["CONTENT_LENGTH"] == "1605"
    assert environ["CONTENT_TYPE"] == testing.seed_example().content_type
    assert environ["HTTP_X_OPENMARKET_CARRIER_ID"] == "474"
    assert environ["HTTP_HOST"].startswith("127.0.0.1:")
    assert capsys.readouterr().out.startswith("1000 Success (DeliverRsp, TransactionID 3691714")


@pytest.mark.parametrize(
    ("flag", "operation", "status"),
    [("--report", "DeliveryReportReq", "Retrieved"), ("--read-reply", "ReadReplyReq", "Read")],
)
def test_send_reports(
    receiver: tuple[Receiver, str], flag: str, operation: str, status: str
) -> None:
    app, url = receiver
    app.reply = deliver_rsp("x")
    assert cli.main(["send", url, flag, "--message-id", "MSG-1", "--mm7-version", "5.3.0"]) == 0
    environ, body = app.last
    assert environ["CONTENT_TYPE"] == "text/xml; charset=utf-8"
    assert f"<ns3:{operation}>".encode() in body
    assert b"<ns3:MessageID>MSG-1</ns3:MessageID>" in body
    assert f"<ns3:MMStatus>{status}</ns3:MMStatus>".encode() in body
    assert b"REL-5-MM7-1-0" in body
    assert cli.main(["send", url, flag, "--message-id", "M", "--status", "Expired"]) == 0
    assert b"<ns3:MMStatus>Expired</ns3:MMStatus>" in app.last[1]


@pytest.mark.parametrize(
    ("status", "reply", "expected"),
    [
        pytest.param(
            "500 INTERNAL SERVER ERROR",
            FAULT,
            "HTTP 500: Fault Server 3000 Server Error",
            id="fault",
        ),
        pytest.param("200 OK", FAULT, "Fault Server 3000 Server Error", id="fault-200"),
        pytest.param(
            "200 OK",
            deliver_rsp("7", 2004, "No thanks"),
            "2004 No thanks (DeliverRsp, TransactionID 7)",
            id="refused",
        ),
        pytest.param(
            "404 NOT FOUND",
            b"<html>nope</html>",
            "HTTP 404: no MM7 reply (root element is html, not Envelope)",
            id="html-404",
        ),
        pytest.param(
            "503 SERVICE UNAVAILABLE",
            deliver_rsp("7"),
            "HTTP 503: 1000 Success (DeliverRsp, TransactionID 7)",
            id="ok-but-503",
        ),
    ],
)
def test_send_failures_exit_1(
    receiver: tuple[Receiver, str],
    capsys: pytest.CaptureFixture[str],
    status: str,
    reply: bytes,
    expected: str,
) -> None:
    app, url = receiver
    app.status, app.reply = status, reply
    assert cli.main(["send", url]) == cli.EXIT_NOT_OK
    assert capsys.readouterr().out == expected + "\n"


def test_send_verbose_prints_reply(
    receiver: tuple[Receiver, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = receiver
    assert cli.main(["send", url, "-v", "--transaction-id", "9"]) == 0
    out = capsys.readouterr().out
    assert "Content-Type: text/xml; charset=utf-8\n" in out
    assert "<m:StatusCode>1000</m:StatusCode>" in out
    assert out.endswith("1000 Success (DeliverRsp, TransactionID 9)\n")


def test_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli.main(["send", f"http://127.0.0.1:{port}/mm7", "--timeout", "5"]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"Error: cannot send to http://127.0.0.1:{port}/mm7: ")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", "ftp://x/mm7"], "URL must be http:// or https://"),
        (["send", "http://127.0.0.1:9/", "--report"], "need --message-id"),
        (["send", "http://127.0.0.1:9/", "--report", "--seed-example"], "choose one of"),
        (["send", "http://127.0.0.1:9/", "--user", "u"], "--user needs --password"),
        (["send", "http://127.0.0.1:9/", "-a", "/nonexistent/x.jpg"], "cannot read"),
        (["send"], "Missing argument 'URL'"),
    ],
)
def test_usage_errors(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MM7_SEND_PASSWORD", raising=False)
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_progress_bar_for_large_bodies(
    receiver: tuple[Receiver, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, url = receiver
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(2 * 1024 * 1024 + 7))
    assert cli.main(["send", url, "-a", str(big), "--progress"]) == 0
    assert "Sending" in capsys.readouterr().err
    environ, body = app.last
    (part,) = leaves(parse(environ, body))
    assert part.get_payload(decode=True) == big.read_bytes()
    # not a TTY and no --progress: silent
    assert cli.main(["send", url, "-a", str(big)]) == 0
    assert capsys.readouterr().err == ""


def test_flask_mm7_command(receiver: tuple[Receiver, str]) -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)
    app.cli.add_command(cli.mm7)
    _, url = receiver
    result = app.test_cli_runner().invoke(args=["mm7", "send", url, "--transaction-id", "5"])
    assert result.exit_code == 0, result.output
    assert result.output == "1000 Success (DeliverRsp, TransactionID 5)\n"


def test_python_m_flask_mm7(receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "flask_mm7", "send", url, "--text", "hi", "--transaction-id", "8"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "1000 Success (DeliverRsp, TransactionID 8)\n"


@pytest.mark.parametrize("insecure", [[], ["-k"]], ids=["verify", "insecure"])
def test_https_to_a_plain_http_server_is_a_transport_error(
    receiver: tuple[Receiver, str], capsys: pytest.CaptureFixture[str], insecure: list[str]
) -> None:
    app, url = receiver
    https = url.replace("http://", "https://")
    assert cli.main(["send", https, "--timeout", "5", *insecure]) == cli.EXIT_TRANSPORT
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"Error: cannot send to {https}: ")
    assert err.count("\n") == 1
