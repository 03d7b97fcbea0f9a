"""Drive one raw request through either adapter and check the invariants every answer keeps.

Shared by ``test_bad_inputs.py`` (the §3 matrix), ``test_fuzz.py`` and ``fuzz/atheris_mm7.py``.
The request is a hand-built WSGI environ (no test client in between), so a case controls the
raw Content-Length, ``wsgi.input_terminated``, the method and what ``wsgi.input`` does.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import re
import time
import typing as t

from flask import Flask
from helpers import CountingInput, parse_reply

from flask_mm7 import MM7, MM7Middleware

OPERATIONS = ("DeliverReq", "DeliveryReportReq", "ReadReplyReq")
#: every HTTP status the receiver may answer, whatever the input
KNOWN_STATUSES = frozenset({200, 400, 404, 405, 411, 413, 415, 500})
#: substrings that must never reach a reply body
LEAKS = (
    b"Traceback",
    b'File "',
    b"root:x:0:0",  # /etc/passwd content
    b"site-packages",
    b"flask_mm7/",
    b"/usr/lib",
    b"/tmp/",
    b"object at 0x",
)
_EXCEPTION_REPR = re.compile(rb"\b[A-Z][A-Za-z]*(?:Error|Exception)\(")


@dataclasses.dataclass
class RawRequest:
    """One HTTP request as the WSGI server would hand it over."""

    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    method: str = "POST"
    path: str = "/mm7"
    #: "auto": the body's length; None: no CONTENT_LENGTH key; else the raw header value
    content_length: str | None = "auto"
    #: set ``wsgi.input_terminated`` (a chunked body the server de-chunks)
    chunked: bool = False
    #: ``wsgi.input.read`` returns at most this many bytes per call
    max_read: int | None = None
    #: ``wsgi.input.read`` raises ConnectionResetError after this many bytes
    fail_after: int | None = None

    def environ(self) -> tuple[dict[str, t.Any], CountingInput]:
        stream = CountingInput(self.body, max_read=self.max_read, fail_after=self.fail_after)
        environ: dict[str, t.Any] = {
            "REQUEST_METHOD": self.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": self.path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": stream,
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if self.chunked:
            environ["wsgi.input_terminated"] = True
        if self.content_type is not None:
            environ["CONTENT_TYPE"] = self.content_type
        if self.content_length == "auto":
            if not self.chunked:
                environ["CONTENT_LENGTH"] = str(len(self.body))
        elif self.content_length is not None:
            environ["CONTENT_LENGTH"] = self.content_length
        for name, value in self.headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        return environ, stream


@dataclasses.dataclass
class Outcome:
    status: int
    headers: dict[str, str]
    body: bytes
    #: the handler's messages, one per call
    calls: list[t.Any]
    #: bytes taken from ``wsgi.input`` by the receiver (before the wrapped app ran)
    bytes_read: int
    #: None when the request was not passed on; else bytes read before the wrapped app ran
    reached_after: int | None
    elapsed: float
    log_records: list[logging.LogRecord]
    reply: dict[str, t.Any] | None = None
    #: the request was for another path: the wrapped app answered, not the receiver
    passed_through: bool = False


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class App:
    """One receiver of either kind, with a recording handler for the operations asked for."""

    def __init__(
        self,
        kind: str,
        behaviour: t.Callable[[t.Any], t.Any] | None = None,
        *,
        register: t.Iterable[str] = OPERATIONS,
        flask_setup: t.Callable[[Flask], None] | None = None,
        **settings: t.Any,
    ) -> None:
        self.kind = kind
        self.calls: list[t.Any] = []
        self.reached_after: int | None = None
        self.behaviour = behaviour or (lambda msg: None)
        if kind == "middleware":
            receiver: t.Any = MM7Middleware(self._fallback, **settings)
            self.wsgi: t.Any = receiver
        elif kind == "extension":
            flask_app = Flask("badinputs")

            @flask_app.route("/other", methods=["GET", "POST"])
            def other() -> str:
                from flask import request

                self.reached_after = request.environ["wsgi.input"].bytes_read
                request.get_data()
                return "wrapped app"

            if flask_setup is not None:
                flask_setup(flask_app)
            receiver = MM7(flask_app, **settings)
            self.wsgi = flask_app
        else:  # pragma: no cover
            raise ValueError(kind)
        wanted = set(register)
        for operation, register_fn in (
            ("DeliverReq", receiver.on_deliver),
            ("DeliveryReportReq", receiver.on_delivery_report),
            ("ReadReplyReq", receiver.on_read_reply),
        ):
            if operation in wanted:
                register_fn(self._handle)

    def _fallback(self, environ: t.Any, start_response: t.Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        self.reached_after = stream.bytes_read
        length = environ.get("CONTENT_LENGTH") or ""
        stream.read(int(length) if length.isdigit() else -1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"wrapped app"]

    def _handle(self, msg: t.Any) -> t.Any:
        self.calls.append(msg)
        return self.behaviour(msg)

    def run(self, request: RawRequest) -> Outcome:
        environ, stream = request.environ()
        captured: dict[str, t.Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: t.Any = None
        ) -> t.Any:
            captured["status"] = int(status.split()[0])
            captured["headers"] = {k.lower(): v for k, v in headers}
            return lambda data: None

        records = _Records()
        library_logger = logging.getLogger("flask_mm7")
        library_logger.addHandler(records)
        self.reached_after = None
        before = len(self.calls)
        started = time.perf_counter()
        try:
            result = self.wsgi(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            library_logger.removeHandler(records)
        elapsed = time.perf_counter() - started
        return Outcome(
            status=captured["status"],
            headers=captured["headers"],
            body=body,
            calls=self.calls[before:],
            bytes_read=stream.bytes_read if self.reached_after is None else self.reached_after,
            reached_after=self.reached_after,
            elapsed=elapsed,
            log_records=records.records,
            passed_through=(request.path.rstrip("/") or "/") != "/mm7",
        )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def check_reply(outcome: Outcome, *, allowed: t.Collection[int] = KNOWN_STATUSES) -> None:
    """The invariants of any answer: known status, SOAP when XML, nothing leaked."""
    assert outcome.status in allowed, (outcome.status, outcome.body[:300])
    for leak in LEAKS:
        assert leak not in outcome.body, (leak, outcome.body[:500])
    assert not _EXCEPTION_REPR.search(outcome.body), outcome.body[:500]
    assert len(outcome.calls) <= 1
    content_type = outcome.headers.get("content-type", "")
    if content_type.startswith("text/xml"):
        assert content_type == "text/xml; charset=utf-8"
        assert outcome.headers.get("content-length") == str(len(outcome.body))
        outcome.reply = reply = parse_reply(outcome.body)
        if reply.get("faultcode"):  # "env:Server" -> "Server": the prefix is the sender's
            reply["faultcode"] = reply["faultcode"].rpartition(":")[2]
        if outcome.status == 200:
            assert reply["operation"] in ("DeliverRsp", "DeliveryReportRsp", "ReadReplyRsp")
            assert reply["TransactionID"]
        else:
            # SOAP 1.1 §6.2: a Fault goes with HTTP 500 (or the pre-SOAP 4xx of the middleware)
            assert reply["operation"] == "Fault"
            assert reply["faultcode"] in ("Client", "Server", "VersionMismatch")
            assert reply["StatusCode"] and reply["StatusCode"].isdigit()
        if len(outcome.calls) == 1 and outcome.status == 200:
            assert reply["TransactionID"] == outcome.calls[0].transaction_id
    elif not outcome.passed_through:  # our pre-SOAP answers (405) are plain text
        assert content_type.startswith("text/plain"), content_type
    # logging stays O(1) per request (python-multipart's per-byte log line)
    assert len(outcome.log_records) <= 3, [r.getMessage() for r in outcome.log_records]
