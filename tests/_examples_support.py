"""Helpers for the example tests: load an example by path, build and post MM7 requests.

A stop-gap until ``flask_mm7.testing`` lands: the requests are built by hand as raw bytes
(binary parts, CRLF line ends, the way OpenMarket sends them), independent of the library's
own encoder, and the replies are read with ``xml.etree``.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "seed-example.http"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"

SEED_TRANSACTION_ID = "369171411769819136"


def load_example(relpath: str) -> ModuleType:
    """Import ``examples/<relpath>`` by file path, once per test session."""
    name = "example_" + relpath.removesuffix(".py").replace("/", "_")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Request:
    """An MM7 POST: the HTTP headers and the body bytes."""

    headers: dict[str, str]
    body: bytes
    transaction_id: str = ""
    files: list[tuple[str, bytes]] = field(default_factory=list)


def seed_example() -> Request:
    """The aggregator doc's printed example, byte for byte (NBSPs, glued delimiter and all).

    The body starts at the first ``------=_Part`` line; the head above it gives the headers.
    """
    raw = SEED.read_bytes()
    start = raw.index(b"------=_Part")
    headers: dict[str, str] = {}
    for line in raw[:start].decode("utf-8").splitlines()[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip(" \t\xa0")
        if name.lower() in ("content-type", "soapaction", "user-agent", "x-openmarket-carrier-id"):
            headers[name] = value
    return Request(
        headers, raw[start:], SEED_TRANSACTION_ID, [("image/jpeg", b"<Binary contents>")]
    )


def build_deliver(
    *,
    text: str | None = "Hello from a test",
    attachments: Sequence[tuple[str, str, bytes]] = (),
    subject: str | None = None,
    sender: str = "12125550123",
    recipient: str = "222111",
    transaction_id: str | None = None,
) -> Request:
    """A DeliverReq shaped like OpenMarket's: related(root XML, mixed(attachments..., text)).

    ``attachments`` holds ``(mimetype, filename, data)``; the text becomes a text/plain part.
    """
    tid = transaction_id or uuid.uuid4().hex
    outer = "----=_Part_1_" + uuid.uuid4().hex
    inner = "----=_Part_2_" + uuid.uuid4().hex
    subject_xml = f"<mm7:Subject>{_xml_escape(subject)}</mm7:Subject>" if subject else ""
    envelope = (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        f'<env:Envelope xmlns:env="{SOAP_NS}" xmlns:mm7="{MM7_NS}">'
        f'<env:Header><mm7:TransactionID env:mustUnderstand="1">{tid}</mm7:TransactionID>'
        "</env:Header><env:Body><mm7:DeliverReq><mm7:MM7Version>6.8.0</mm7:MM7Version>"
        f"<mm7:LinkedID>{tid}</mm7:LinkedID>"
        f"<mm7:Sender><mm7:Number>{sender}</mm7:Number></mm7:Sender>"
        f'<mm7:Recipients><mm7:To><mm7:Number displayOnly="false">{recipient}</mm7:Number>'
        "</mm7:To></mm7:Recipients>"
        "<mm7:TimeStamp>2024-05-06T07:08:09.000Z</mm7:TimeStamp>"
        f"<mm7:Priority>Normal</mm7:Priority>{subject_xml}"
        '<mm7:Content href="cid:default.cid" allowAdaptations="true"/>'
        "</mm7:DeliverReq></env:Body></env:Envelope>"
    ).encode()
    leaves: list[tuple[str, str, bytes]] = list(attachments)
    if text is not None:
        leaves.append(("text/plain; charset=utf-8", "text_0.txt", text.encode("utf-8")))

    crlf = b"\r\n"
    mixed = b""
    for i, (mimetype, filename, data) in enumerate(leaves):
        mixed += (
            (
                f'--{inner}\r\nContent-Type: {mimetype}; name="{filename}"\r\n'
                f"Content-Transfer-Encoding: binary\r\nContent-ID: <part{i}>\r\n"
                f"Content-Location: {filename}\r\n\r\n"
            ).encode()
            + data
            + crlf
        )
    mixed += f"--{inner}--\r\n".encode()
    body = (
        (
            f"--{outer}\r\nContent-Type: text/xml; charset=utf-8\r\n"
            "Content-ID: <soap-start>\r\n\r\n"
        ).encode()
        + envelope
        + crlf
    )
    body += (
        (
            f'--{outer}\r\nContent-Type: multipart/mixed; boundary="{inner}"\r\n'
            "Content-ID: <default.cid>\r\n\r\n"
        ).encode()
        + mixed
        + crlf
    )
    body += f"--{outer}--\r\n".encode()
    headers = {
        "Content-Type": f'multipart/related; start="<soap-start>"; type="text/xml"; '
        f'boundary="{outer}"',
        "SOAPAction": '""',
        "User-Agent": "flask-mm7 tests",
        "X-OpenMarket-Carrier-Id": "474",
    }
    return Request(headers, body, tid, [(m, d) for m, _, d in attachments])


def _xml_escape(value: str | None) -> str:
    return (value or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Reply:
    http_status: int
    status_code: int | None
    transaction_id: str | None


def parse_reply(http_status: int, body: bytes) -> Reply:
    """Read StatusCode and TransactionID from a DeliverRsp (or a Fault's VASPErrorRsp)."""
    root = ElementTree.fromstring(body)
    status = tid = None
    for el in root.iter():
        local = el.tag.rpartition("}")[2]
        if local == "StatusCode" and el.text:
            status = int(el.text.strip())
        elif local == "TransactionID" and el.text:
            tid = el.text.strip()
    return Reply(http_status, status, tid)


def post_client(client: Any, request: Request, path: str = "/mm7") -> Reply:
    """Post through a Flask test client or a ``werkzeug.test.Client``."""
    response = client.post(path, data=request.body, headers=request.headers)
    try:
        return parse_reply(response.status_code, response.get_data())
    finally:
        response.close()


def tiny_png(width: int = 48, height: int = 32) -> bytes:
    """A valid RGB PNG with a colour gradient, made with zlib and struct (no Pillow)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + b"".join(bytes((255 * x // width, 255 * y // height, 200)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
