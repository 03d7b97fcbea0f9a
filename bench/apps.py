"""The three WSGI apps the HTTP benchmark serves with gunicorn.

* ``fixed_app``: reads the whole body (64 KiB at a time) and answers a fixed DeliverRsp:
  the ceiling for any MM7 receiver on this server stack.
* ``stdlib_app``: what one writes by hand without this library: the stdlib ``email`` parser
  (default policy, compat32, as ``email.message_from_bytes``; ``stdlib_http_app`` the same
  with ``policy=email.policy.HTTP``) on the headers + body, every leaf's payload decoded,
  the root part (``start`` or the first part) parsed with ``defusedxml``, TransactionID /
  MM7Version / namespace extracted and echoed in the DeliverRsp.
* ``make_ours_app()``: a Flask app with ``flask_mm7.MM7(app)`` whose ``on_deliver`` handler
  reads every attachment and returns None (1000). A factory, so this module imports even
  before the extension exists: gunicorn's ``bench.apps:make_ours_app()``.

All answer any path; the bench posts to ``/mm7``.
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import Any, Callable, Iterable, List, Tuple

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
DEFAULT_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"

StartResponse = Callable[[str, List[Tuple[str, str]]], Any]

RSP_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<soap-env:Envelope xmlns:soap-env="{env}">
 <soap-env:Header>
  <mm7:TransactionID xmlns:mm7="{ns}" soap-env:mustUnderstand="1">{tid}</mm7:TransactionID>
 </soap-env:Header>
 <soap-env:Body>
  <mm7:DeliverRsp xmlns:mm7="{ns}">
   <mm7:MM7Version>{version}</mm7:MM7Version>
   <mm7:Status>
    <mm7:StatusCode>1000</mm7:StatusCode>
    <mm7:StatusText>Success</mm7:StatusText>
   </mm7:Status>
  </mm7:DeliverRsp>
 </soap-env:Body>
</soap-env:Envelope>
"""

FIXED_REPLY = RSP_TEMPLATE.format(
    env=SOAP_ENV, ns=DEFAULT_NS, tid="369171411769819136", version="6.8.0"
).encode()


def _read_body(environ: dict) -> bytes:
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    chunks = []
    while remaining > 0:
        chunk = stream.read(min(65536, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _xml_reply(start_response: StartResponse, body: bytes) -> Iterable[bytes]:
    start_response(
        "200 OK",
        [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


def fixed_app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """Read the body, answer a fixed DeliverRsp."""
    _read_body(environ)
    return _xml_reply(start_response, FIXED_REPLY)


def stdlib_app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """Hand-written receiver: stdlib email (default policy, compat32) + defusedxml."""
    return _stdlib(environ, start_response, email.policy.compat32)


def stdlib_http_app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
    """Hand-written receiver: stdlib email with ``policy=email.policy.HTTP`` + defusedxml."""
    return _stdlib(environ, start_response, email.policy.HTTP)


def _stdlib(environ: dict, start_response: StartResponse, policy: Any) -> Iterable[bytes]:
    from defusedxml.ElementTree import fromstring

    body = _read_body(environ)
    ctype = environ.get("CONTENT_TYPE", "")
    msg = email.parser.BytesParser(policy=policy).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body
    )
    if msg.is_multipart():
        parts = msg.get_payload()
        start = msg.get_param("start")
        root = parts[0]
        if start:
            want = str(start).strip("<>")
            for part in parts:
                if str(part.get("Content-ID", "")).strip().strip("<>") == want:
                    root = part
                    break
        xml = root.get_payload(decode=True)
        for part in msg.walk():  # what a receiver does with the media: decode it
            if part is not root and not part.is_multipart():
                part.get_payload(decode=True)
    else:
        xml = body
    env = fromstring(xml)
    tid, ns, version = "", DEFAULT_NS, "6.8.0"
    header = env.find(f"{{{SOAP_ENV}}}Header")
    if header is not None:
        for el in header:
            if el.tag.endswith("}TransactionID"):
                tid = (el.text or "").strip()
    op_parent = env.find(f"{{{SOAP_ENV}}}Body")
    if op_parent is not None and len(op_parent):
        op = op_parent[0]
        ns = op.tag[1:].partition("}")[0]
        for el in op:
            if el.tag.endswith("}MM7Version"):
                version = (el.text or "").strip()
    reply = RSP_TEMPLATE.format(env=SOAP_ENV, ns=ns, tid=tid, version=version).encode()
    return _xml_reply(start_response, reply)


def make_ours_app() -> Any:
    """Flask + ``flask_mm7.MM7``; the handler reads every attachment."""
    from flask import Flask

    from flask_mm7 import MM7

    app = Flask("bench-ours")
    mm7 = MM7(app)

    @mm7.on_deliver
    def receive(msg: Any) -> None:
        for part in msg.attachments:
            part.read()
        return None

    return app


#: how the tables name each app
LABELS = {
    "fixed": "fixed-reply",
    "stdlib": "stdlib-email (compat32) + defusedxml",
    "stdlib-http": "stdlib-email (policy.HTTP) + defusedxml",
    "ours": "flask_mm7 MM7(app)",
}


def make_app(name: str) -> Any:
    """The app called ``name`` (``fixed``, ``stdlib`` or ``ours``)."""
    if name == "fixed":
        return fixed_app
    if name == "stdlib":
        return stdlib_app
    if name == "stdlib-http":
        return stdlib_http_app
    if name == "ours":
        return make_ours_app()
    raise ValueError(name)


# gunicorn app specs, by name
GUNICORN_SPECS = {
    "fixed": "bench.apps:fixed_app",
    "stdlib": "bench.apps:stdlib_app",
    "stdlib-http": "bench.apps:stdlib_http_app",
    "ours": "bench.apps:make_ours_app()",
}
