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
            "HTTP 404 Not Found: not an MM7 reply (root element is html, not Envelope);"
            " is the path right? flask-mm7's default is /mm7",
            id="xml-typed-html-404",
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


# --- what a new user meets: credentials, wrong paths and ports, --version, --dump ------------

SECRET = "s3cret-Pw"


@dataclass
class RawServer:
    """A TCP server on 127.0.0.1 that records each request's bytes and answers ``reply``
    (raw HTTP), closes without a word (``reply=b""``) or never answers (``reply=None``)."""

    reply: bytes | None = b""
    received: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            end = data.index(b"\r\n\r\n") + 4
            length = int(data[:end].lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(data) < end + length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.received.append(data)
            if self.reply is None:
                self.stop.wait(10)
            elif self.reply:
                conn.sendall(self.reply)


@pytest.fixture
def raw_server() -> t.Iterator[tuple[RawServer, int]]:
    server = RawServer()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    threads: list[threading.Thread] = []

    def accept() -> None:
        while not server.stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            thread = threading.Thread(target=server.serve, args=(conn,))
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    try:
        yield server, listener.getsockname()[1]
    finally:
        server.stop.set()
        acceptor.join()
        for thread in threads:
            thread.join()
        listener.close()


@pytest.fixture
def flask_server() -> t.Iterator[str]:
    """A real flask-mm7 receiver (Basic auth on) in a Werkzeug server; yields its base URL
    with the credentials in it."""
    flask = pytest.importorskip("flask")
    from flask_mm7 import MM7

    app = flask.Flask(__name__)
    app.config["MM7_BASIC_AUTH"] = f"vasp:{SECRET}"
    mm7_ext = MM7(app)
    mm7_ext.on_deliver(lambda msg: (1000, "Stored"))
    server = make_server("127.0.0.1", 0, app, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://vasp:{SECRET}@127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def assert_redacted(out: str, err: str) -> None:
    assert SECRET not in out + err
    assert base64.b64encode(f"vasp:{SECRET}".encode()).decode() not in out + err
    assert "vasp:" not in out + err


def test_connection_refused_is_explained_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = closed_port()
    url = f"http://vasp:{SECRET}@127.0.0.1:{port}/mm7"
    code, out, err = run_cli(["send", url, "--timeout", "5", "-v"], capsys)
    assert (code, out) == (cli.EXIT_TRANSPORT, "")
    assert err == (
        f"Error: cannot send to http://***@127.0.0.1:{port}/mm7:"
        f" connection refused: nothing listens on 127.0.0.1:{port}\n"
    )
    assert_redacted(out, err)


def test_https_to_plain_http_says_so_without_the_password(
    receiver: tuple[Receiver, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = receiver
    url = url.replace("http://", f"https://vasp:{SECRET}@")
    code, out, err = run_cli(["send", url, "--timeout", "5", "-k", "-v"], capsys)
    assert (code, out) == (cli.EXIT_TRANSPORT, "")
    assert err.startswith("Error: cannot send to https://***@127.0.0.1:")
    assert "TLS handshake failed" in err and "the port does not speak TLS" in err
    assert err.endswith("if it is plain HTTP, use http://\n")
    assert_redacted(out, err)


def test_timeout_is_explained_without_the_password(
    raw_server: tuple[RawServer, int], capsys: pytest.CaptureFixture[str]
) -> None:
    server, port = raw_server
    server.reply = None  # reads the request, never answers
    url = f"http://vasp:{SECRET}@127.0.0.1:{port}/mm7"
    code, out, err = run_cli(["send", url, "--timeout", "0.3", "-v"], capsys)
    assert (code, out) == (cli.EXIT_TRANSPORT, "")
    assert err == (
        f"Error: cannot send to http://***@127.0.0.1:{port}/mm7: no reply within 0.3 s"
        " (--timeout)\n"
    )
    assert_redacted(out, err)
    assert len(server.received) == 1  # the request did go out, with its credentials
    assert b"Authorization: Basic " in server.received[0]


def test_a_closed_connection_suggests_https(
    raw_server: tuple[RawServer, int], capsys: pytest.CaptureFixture[str]
) -> None:
    server, port = raw_server
    server.reply = b""  # closes without a reply, as a TLS port does to plain HTTP
    url = f"http://vasp:{SECRET}@127.0.0.1:{port}/mm7"
    code, out, err = run_cli(["send", url, "--timeout", "5"], capsys)
    assert (code, out) == (cli.EXIT_TRANSPORT, "")
    assert err == (
        f"Error: cannot send to http://***@127.0.0.1:{port}/mm7: the server closed the"
        " connection without an HTTP reply; if the port speaks TLS, use https://\n"
    )


def test_wrong_path_says_404_html_and_hints_the_path(
    flask_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["send", flask_server + "/mms", "-v"], capsys)
    assert (code, err) == (cli.EXIT_NOT_OK, "")
    lines = out.splitlines()
    assert lines[0] == "POST " + flask_server.replace(f"vasp:{SECRET}@", "***@") + "/mms"
    assert lines[1] == "HTTP/1.0 404 NOT FOUND"
    assert "<!doctype html>" in out
    assert lines[-1] == (
        "HTTP 404 Not Found: not SOAP (Content-Type text/html; charset=utf-8);"
        " is the path right? flask-mm7's default is /mm7"
    )
    assert_redacted(out, err)


def test_verbose_success_prints_status_line_without_credentials(
    flask_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["send", flask_server + "/mm7", "-v", "--transaction-id", "6"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == [
        "POST " + flask_server.replace(f"vasp:{SECRET}@", "***@") + "/mm7",
        "HTTP/1.0 200 OK",  # Werkzeug's development server speaks HTTP/1.0
    ]
    assert lines[-1] == "1000 Stored (DeliverRsp, TransactionID 6)"
    assert_redacted(out, err)
    # a password given as an option is not printed either, nor a wrong one's 401 Fault
    bare = flask_server.replace(f"vasp:{SECRET}@", "")
    code, out, err = run_cli(
        ["send", bare + "/mm7", "-v", "--user", "vasp", "--password", SECRET + "x"], capsys
    )
    assert code == cli.EXIT_NOT_OK
    assert "HTTP/1.0 401 Unauthorized" in out
    assert SECRET not in out + err


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(
            b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://example.test/mm7\r\n"
            b"Content-Length: 0\r\n\r\n",
            "HTTP 301 Moved Permanently: an empty reply; it redirects to"
            " https://example.test/mm7; send to that URL",
            id="redirect",
        ),
        pytest.param(
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 18\r\n\r\nMethod Not Allowed",
            "HTTP 405 Method Not Allowed: not SOAP (Content-Type text/plain);"
            " is the path right? flask-mm7's default is /mm7",
            id="405",
        ),
        pytest.param(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/html\r\n"
            b"Content-Length: 6\r\n\r\n<html>",
            "HTTP 413 Request Entity Too Large: not SOAP (Content-Type text/html); something"
            " in front of the app limits the body size (nginx: client_max_body_size)",
            id="413-from-a-proxy",
        ),
        pytest.param(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad",
            "HTTP 502 Bad Gateway: not SOAP (no Content-Type); a proxy could not reach the"
            " app: is it running?",
            id="502",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            "HTTP 200 OK: not SOAP (Content-Type application/json); is this the receiver's"
            " MM7 URL? is the path right? flask-mm7's default is /mm7",
            id="200-json",
        ),
    ],
)
def test_non_soap_replies_are_explained(
    raw_server: tuple[RawServer, int],
    capsys: pytest.CaptureFixture[str],
    reply: bytes,
    expected: str,
) -> None:
    server, port = raw_server
    server.reply = reply
    code, out, err = run_cli(["send", f"http://127.0.0.1:{port}/mm7"], capsys)
    assert (code, err) == (cli.EXIT_NOT_OK, "")
    assert out == expected + "\n"


@pytest.mark.parametrize(
    "url",
    [f"ftp://vasp:{SECRET}@x/mm7", f"vasp:{SECRET}@x/mm7", f"http://vasp:{SECRET}@x:port/mm7"],
)
def test_usage_errors_never_echo_the_password(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["send", url], capsys)
    assert code == 2
    assert "Error: URL" in err
    assert_redacted(out, err)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"mm7 (flask-mm7) {version('flask-mm7')}\n"


def test_dump_writes_what_send_sends(
    raw_server: tuple[RawServer, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, port = raw_server
    server.reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n" + deliver_rsp("1")
    url = f"http://vasp:{SECRET}@127.0.0.1:{port}/in/mms?k=1"
    assert cli.main(["send", "--seed-example", url]) == 0
    capsys.readouterr()
    (sent,) = server.received
    dump = tmp_path / "seed.http"
    code, out, err = run_cli(["send", "--seed-example", url, "--dump", str(dump)], capsys)
    assert (code, err) == (0, "")
    assert len(server.received) == 1  # --dump sends nothing
    data = dump.read_bytes()
    assert data == sent  # byte for byte what went on the wire, Authorization included
    assert data.startswith(b"POST /in/mms?k=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert data.endswith(SEED[SEED.index(b"------=_Part") :])
    assert (dump.stat().st_mode & 0o777) == 0o600  # it holds the credentials
    head = len(data) - 1605
    assert out == (
        f"Wrote {dump}: POST http://***@127.0.0.1:{port}/in/mms?k=1, a {head}-byte head and"
        " a 1605-byte body (TransactionID 369171411769819136)\n"
    )
    assert_redacted(out, err)


def test_dump_replays_against_a_real_receiver(
    flask_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "req.http"
    photo = tmp_path / "p.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    args = ["send", flask_server + "/mm7", "-a", str(photo), "--transaction-id", "77"]
    assert cli.main([*args, "--dump", str(dump)]) == 0
    capsys.readouterr()
    port = int(flask_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(dump.read_bytes())
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK")
    parsed = testing.parse_reply(200, {}, body)
    assert (parsed.status_code, parsed.transaction_id) == (1000, "77")


def test_dump_without_credentials_is_an_ordinary_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = tmp_path / "plain.http"
    old = os.umask(0o022)
    try:
        assert cli.main(["send", f"http://127.0.0.1:{closed_port()}/mm7", "--dump", str(dump)]) == 0
    finally:
        os.umask(old)
    assert (dump.stat().st_mode & 0o777) == 0o644
    assert b"Authorization" not in dump.read_bytes()


def test_flask_mm7_send_without_url_posts_in_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flask = pytest.importorskip("flask")
    from flask_mm7 import MM7

    app = flask.Flask("inproc")
    app.config.update(
        MM7_PATH="/in/mms",
        MM7_BASIC_AUTH=f"vasp:{SECRET},other:pw2",
        MM7_ALLOWED_IPS="203.0.113.0/24",
    )
    ext = MM7(app)
    seen: list[tuple[str, str | None]] = []

    @ext.on_deliver
    def store(msg: t.Any) -> tuple[int, str]:
        seen.append((msg.transaction_id, msg.text))
        return 1000, "Stored in process"

    runner = app.test_cli_runner()
    result = runner.invoke(args=["mm7", "send", "--text", "hi", "--transaction-id", "31", "-v"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == ["POST /in/mms (app inproc, in process)", "HTTP/1.1 200 OK"]
    assert lines[-1] == "1000 Stored in process (DeliverRsp, TransactionID 31)"
    assert seen == [("31", "hi")]  # through the path, the credentials and the allowlist
    assert SECRET not in result.output
    # explicit credentials win: a wrong password gets the app's 401
    result = runner.invoke(args=["mm7", "send", "--user", "vasp", "--password", "nope"])
    assert result.exit_code == cli.EXIT_NOT_OK
    assert result.output.startswith("HTTP 401: Fault Client 4001")
    # --dump needs a URL for its request line
    result = runner.invoke(args=["mm7", "send", "--dump", "x.http"])
    assert result.exit_code == 2 and "--dump needs a URL" in result.output


def test_flask_mm7_send_without_url_needs_an_mm7_app() -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask("plain")
    app.cli.add_command(cli.mm7)
    result = app.test_cli_runner().invoke(args=["mm7", "send"])
    assert result.exit_code == 2
    assert "the app has no MM7 receiver" in result.output
