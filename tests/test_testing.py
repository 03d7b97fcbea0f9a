"""Tests for flask_mm7.testing: builders checked with the stdlib email parser and defusedxml."""

from __future__ import annotations

import base64
import datetime
import email
import email.policy
import mimetypes
import os
import subprocess
import sys
import textwrap
import typing as t
from email.message import EmailMessage
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET
import pytest
from werkzeug.test import Client

from flask_mm7 import testing
from flask_mm7.testing import Media, MM7Request

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS6 = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"
NS5 = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-0"

# every byte value, line-end soup, and things that look like MIME framing
NASTY = bytes(range(256)) + b"\r\n\n\r\r\n--\r\n--boundary\r\n\r\n=3D=\n \t\n"


def parse_mime(request: MM7Request) -> EmailMessage:
    head = f"Content-Type: {request.content_type}\r\n\r\n".encode()
    msg = email.message_from_bytes(head + request.body, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects, msg.defects
    return msg


def soap_root(request: MM7Request) -> tuple[EmailMessage, Element]:
    msg = parse_mime(request)
    root_part = next(iter(msg.iter_parts()))
    assert root_part["Content-ID"] == "<soap-start>"
    xml = root_part.get_payload(decode=True)
    assert isinstance(xml, bytes)
    return msg, DET.fromstring(xml, forbid_dtd=True)


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def operation(envelope: Element) -> Element:
    body = envelope.find(q(SOAP, "Body"))
    assert body is not None
    return body[0]


def leaves(msg: EmailMessage) -> list[EmailMessage]:
    return [p for p in msg.walk() if not p.is_multipart()][1:]  # minus the SOAP root


# --- seed example --------------------------------------------------------------------------


def seed_file_body() -> bytes:
    data = (DATA / "seed-example.http").read_bytes()
    return data[data.index(b"------=_Part") :]


def test_seed_example_is_the_printed_bytes() -> None:
    request = testing.seed_example()
    assert request.body == seed_file_body()
    assert request.headers["Content-Length"] == str(len(request.body)) == "1605"
    assert request.transaction_id == "369171411769819136"
    assert b"</ns1:Envelope>------=_Part_139078" in request.body
    assert request.body.count(b"\xc2\xa0\n") == 4
    assert b"<Binary contents>\n" in request.body


def test_seed_example_headers_as_printed() -> None:
    head = (DATA / "seed-example.http").read_bytes().split(b"\n------=_Part")[0]
    printed = dict(line.split(b": ", 1) for line in head.split(b"\n")[1:])
    headers = testing.seed_example().headers
    assert [k.encode() for k in headers] == list(printed)
    for name, value in printed.items():
        if name != b"Content-Length":
            assert headers[name.decode()].encode("latin-1") == value
    assert headers["Connection"].encode("latin-1") == b"Keep-Alive\xc2\xa0"


def test_seed_example_crlf() -> None:
    request = testing.seed_example("\r\n")
    assert request.body == seed_file_body().replace(b"\n", b"\r\n")
    assert b"\n" not in request.body.replace(b"\r\n", b"")
    assert request.headers["Content-Length"] == str(len(request.body))


def test_seed_example_rejects_other_line_endings() -> None:
    with pytest.raises(ValueError, match="line_ending"):
        testing.seed_example("\r")


def test_seed_example_response_is_the_printed_bytes() -> None:
    printed = (DATA / "seed-example-response.http").read_bytes()
    assert printed.endswith(b"\xc2\xa0\n" + testing.SEED_EXAMPLE_RESPONSE)


# --- build_deliver: SOAP -------------------------------------------------------------------


def test_deliver_defaults_shaped_like_openmarket() -> None:
    request = testing.build_deliver(transaction_id="T1", text="hi")
    assert request.headers["SOAPAction"] == '""'
    assert request.headers["User-Agent"] == "OpenMarket"
    assert request.headers["X-OpenMarket-Carrier-Id"] == "474"
    assert "UAProf" not in request.headers
    assert request.headers["Content-Length"] == str(len(request.body))
    msg, env = soap_root(request)
    assert msg.get_content_type() == "multipart/related"
    assert msg.get_param("type") == "text/xml"
    assert msg.get_param("start") == "<soap-start>"
    assert request.body.startswith(b"--" + msg.get_boundary().encode() + b"\r\n")  # type: ignore[union-attr]
    assert b'xmlns:ns1="http://schemas.xmlsoap.org/soap/envelope/"' in request.body
    assert b"<ns3:DeliverReq>" in request.body

    tid = env.find(f"{q(SOAP, 'Header')}/{q(NS6, 'TransactionID')}")
    assert tid is not None and tid.text == "T1"
    assert tid.get(q(SOAP, "mustUnderstand")) == "1"
    req = operation(env)
    assert req.tag == q(NS6, "DeliverReq")
    names = [child.tag.split("}")[1] for child in req]
    assert names == ["MM7Version", "LinkedID", "Sender", "Recipients", "TimeStamp", "Content"]
    assert req.findtext(q(NS6, "MM7Version")) == "6.8.0"
    assert req.findtext(q(NS6, "LinkedID")) == "T1"
    assert req.findtext(f"{q(NS6, 'Sender')}/{q(NS6, 'Number')}") == "12125550123"
    to = req.find(f"{q(NS6, 'Recipients')}/{q(NS6, 'To')}/{q(NS6, 'Number')}")
    assert to is not None and to.text == "222111" and to.get("displayOnly") == "false"
    content = req.find(q(NS6, "Content"))
    assert content is not None
    assert content.attrib == {"href": "cid:default.cid", "allowAdaptations": "true"}
    nested = list(msg.iter_parts())[1]
    assert nested.get_content_type() == "multipart/mixed"
    assert nested["Content-ID"] == "<default.cid>"


def test_deliver_nested_boundary_is_its_own() -> None:
    """RFC 2046 §5.1.1: no delimiter may occur inside a part. The nested multipart's
    boundary is no extension of the outer one, so the outer delimiter's text occurs only
    where it delimits (strict parsers such as ``multipart`` refuse anything else)."""
    for _ in range(20):
        request = testing.build_deliver(text="hi", attachments=[Media(b"\xff\xd8", "image/jpeg")])
        msg = parse_mime(request)
        nested = list(msg.iter_parts())[1]
        outer, inner = msg.get_boundary(), nested.get_boundary()
        assert outer and inner and not inner.startswith(outer) and not outer.startswith(inner)
        delimiter = b"--" + outer.encode()
        # three: before the root, before the nested part, and the close delimiter
        assert request.body.count(delimiter) == 3
        assert request.body.endswith(delimiter + b"--\r\n")
        assert [p.get_payload(decode=True) for p in leaves(msg)] == [b"\xff\xd8", b"hi"]


@pytest.mark.parametrize(
    ("version", "namespace"),
    [
        pytest.param("5.3.0", NS5, id="5.3.0"),
        pytest.param("5.6.0", NS5, id="5.6.0"),
        pytest.param("6.1.0", NS6, id="6.1.0"),
        pytest.param("6.8.0", NS6, id="6.8.0"),
    ],
)
def test_deliver_versions_pick_their_namespace(version: str, namespace: str) -> None:
    assert testing.default_namespace(version) == namespace
    _, env = soap_root(testing.build_deliver(version=version))
    req = operation(env)
    assert req.tag == q(namespace, "DeliverReq")
    assert req.findtext(q(namespace, "MM7Version")) == version


def test_deliver_any_version_and_namespace_string() -> None:
    ns = "urn:example:mm7&<test>"
    _, env = soap_root(testing.build_deliver(version="9.9.9-beta", namespace=ns))
    assert operation(env).findtext(q(ns, "MM7Version")) == "9.9.9-beta"


@pytest.mark.parametrize(
    ("version", "in_header"),
    [("5.3.0", True), ("5.6.0", True), ("6.1.0", True), ("6.8.0", False), ("6.10.0", False)],
)
def test_ua_prof_header_below_68_element_from_68(version: str, in_header: bool) -> None:
    request = testing.build_deliver(version=version, ua_prof="Samsung Galaxy")
    _, env = soap_root(request)
    element = operation(env).find(q(testing.default_namespace(version), "UACapabilities"))
    if in_header:
        assert request.headers["UAProf"] == "Samsung Galaxy"
        assert element is None
    else:
        assert "UAProf" not in request.headers
        assert element is not None and element.get("UAProf") == "Samsung Galaxy"


def test_deliver_escapes_every_value() -> None:
    evil = "<&>\"' ]]> é"
    request = testing.build_deliver(
        sender=evil,
        recipients=[evil],
        subject=evil,
        transaction_id=evil,
        linked_id=evil,
        priority=evil,
        ua_prof=evil,
        timestamp=evil,
        content_id="a&b<c>",
        attachments=[b"x"],
    )
    _, env = soap_root(request)
    tid = env.find(f"{q(SOAP, 'Header')}/{q(NS6, 'TransactionID')}")
    assert tid is not None and tid.text == evil
    req = operation(env)
    for name in ("LinkedID", "Priority", "Subject", "TimeStamp"):
        assert req.findtext(q(NS6, name)) == evil
    assert req.findtext(f"{q(NS6, 'Sender')}/{q(NS6, 'Number')}") == evil
    ua = req.find(q(NS6, "UACapabilities"))
    assert ua is not None and ua.get("UAProf") == evil
    content = req.find(q(NS6, "Content"))
    assert content is not None and content.get("href") == "cid:a&b<c>"


def test_deliver_optional_elements_and_addresses() -> None:
    stamp = datetime.datetime(
        2014, 4, 14, 12, 15, 23, 414999, tzinfo=datetime.timezone(datetime.timedelta(hours=-4))
    )
    request = testing.build_deliver(
        sender=("ShortCode", "12345"),
        recipients=["222111", "user@example.com"],
        cc=["15551234567"],
        bcc=[("ShortCode", "999")],
        subject="Hello",
        priority="High",
        linked_id="",
        timestamp=stamp,
        allow_adaptations=False,
        attachments=[b"x"],
    )
    req = operation(soap_root(request)[1])
    assert req.find(q(NS6, "LinkedID")) is None
    assert req.findtext(q(NS6, "TimeStamp")) == "2014-04-14T16:15:23.414Z"
    assert req.findtext(q(NS6, "Priority")) == "High"
    assert req.findtext(q(NS6, "Subject")) == "Hello"
    assert req.findtext(f"{q(NS6, 'Sender')}/{q(NS6, 'ShortCode')}") == "12345"
    recipients = req.find(q(NS6, "Recipients"))
    assert recipients is not None
    got = [(r.tag.split("}")[1], a.tag.split("}")[1], a.text) for r in recipients for a in r]
    assert got == [
        ("To", "Number", "222111"),
        ("To", "RFC2822Address", "user@example.com"),
        ("Cc", "Number", "15551234567"),
        ("Bcc", "ShortCode", "999"),
    ]
    content = req.find(q(NS6, "Content"))
    assert content is not None and content.get("allowAdaptations") == "false"


def test_deliver_without_content_has_only_the_soap_part() -> None:
    request = testing.build_deliver(openmarket_headers=False, carrier_id=None)
    msg, env = soap_root(request)
    assert len(list(msg.iter_parts())) == 1
    assert operation(env).find(q(NS6, "Content")) is None
    assert set(request.headers) == {"Content-Type", "Content-Length"}


def test_deliver_random_transaction_ids() -> None:
    a, b = testing.build_deliver(), testing.build_deliver()
    assert a.transaction_id != b.transaction_id
    assert a.transaction_id.isdigit() and len(a.transaction_id) == 18
    assert operation(soap_root(a)[1]).findtext(q(NS6, "LinkedID")) == a.transaction_id


def test_deliver_extra_headers_win() -> None:
    request = testing.build_deliver(extra_headers={"User-Agent": "Other", "X-Test": "1"})
    assert request.headers["User-Agent"] == "Other"
    assert request.headers["X-Test"] == "1"


def test_deliver_non_ascii_soap_is_utf8() -> None:
    request = testing.build_deliver(subject="Grüße ✓")
    msg, env = soap_root(request)
    assert list(msg.iter_parts())[0]["Content-Transfer-Encoding"] == "8bit"
    assert operation(env).findtext(q(NS6, "Subject")) == "Grüße ✓"


# --- build_deliver: attachments ------------------------------------------------------------


@pytest.mark.parametrize("nested", [True, False], ids=["nested", "flat"])
@pytest.mark.parametrize("linesep", ["\r\n", "\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("cte", ["binary", "8bit", "base64", "quoted-printable"])
def test_attachments_are_byte_exact(cte: str, linesep: str, nested: bool) -> None:
    payloads = [NASTY, NASTY[::-1], b"", b"\r\n"]
    request = testing.build_deliver(
        attachments=[Media(p, "application/x-test", transfer_encoding=cte) for p in payloads],
        nested=nested,
        linesep=linesep,
    )
    msg = parse_mime(request)
    if linesep == "\n":
        framing = request.body
        for p in payloads:
            framing = framing.replace(p, b"") if p else framing
        assert b"\r\n" not in framing
    parts = leaves(msg)
    assert [p.get_payload(decode=True) for p in parts] == payloads
    assert {p["Content-Transfer-Encoding"] for p in parts} == {cte}
    if cte == "base64":  # really encoded: no raw NUL on the wire
        assert b"\x00" not in request.body
    top = list(msg.iter_parts())
    assert len(top) == (2 if nested else 5)


def test_flat_href_points_at_first_part() -> None:
    request = testing.build_deliver(attachments=[Media(b"a", content_id="first@x")], nested=False)
    msg, env = soap_root(request)
    content = operation(env).find(q(NS6, "Content"))
    assert content is not None and content.get("href") == "cid:first@x"
    assert list(msg.iter_parts())[1]["Content-ID"] == "<first@x>"


def test_attachment_kinds(tmp_path: Path) -> None:
    jpeg = tmp_path / "photo.jpg"
    jpeg.write_bytes(b"\xff\xd8\xff\xe0JFIF" + NASTY)
    unknown = tmp_path / "blob.zzunknown"
    unknown.write_bytes(b"blob")
    request = testing.build_deliver(
        attachments=[
            jpeg,
            unknown,
            b"raw bytes",
            "plain text ✓\n",
            Media("x", filename="card.vcf", content_id="<vcard>"),
            Media(b"<smil/>", "application/smil", content_id="smil", transfer_encoding="7bit"),
        ],
        text="Test MO message!",
    )
    parts = leaves(parse_mime(request))
    summary = [(p.get_content_type(), p["Content-ID"], p.get_filename()) for p in parts]
    assert summary == [
        ("image/jpeg", "<photo.jpg>", "photo.jpg"),
        ("application/octet-stream", "<blob.zzunknown>", "blob.zzunknown"),
        ("application/octet-stream", "<part-3>", None),
        ("text/plain", "<part-4>", None),
        (mimetypes.guess_type("card.vcf")[0] or "", "<vcard>", "card.vcf"),
        ("application/smil", "<smil>", None),
        ("text/plain", "<part-7>", None),
    ]
    assert parts[0].get_payload(decode=True) == jpeg.read_bytes()
    assert parts[0]["Content-Location"] == "photo.jpg"
    assert parts[3].get_content() == "plain text ✓\n"
    assert parts[3].get_content_charset() == "utf-8"
    assert parts[6].get_content() == "Test MO message!"


def test_text_quoted_printable_keeps_lines() -> None:
    text = "line one é\nline two =\n" + "long " * 40 + "\n"
    request = testing.build_deliver(
        attachments=[Media(text, "text/plain", transfer_encoding="quoted-printable")]
    )
    (part,) = leaves(parse_mime(request))
    # hard line breaks travel as the canonical CRLF (RFC 2045 §6.7)
    assert part.get_payload(decode=True) == text.replace("\n", "\r\n").encode()
    assert max(len(line) for line in request.body.split(b"\r\n")) < 180  # soft breaks


def test_boundary_never_in_payload() -> None:
    # a payload made of what a JavaMail-style boundary looks like
    payload = b"------=_Part_" * 1000
    request = testing.build_deliver(attachments=[payload])
    assert leaves(parse_mime(request))[0].get_payload(decode=True) == payload


@pytest.mark.parametrize(
    ("item", "error"),
    [
        (Media(b"x", transfer_encoding="uuencode"), ValueError),
        (12, TypeError),
    ],
)
def test_bad_attachments(item: t.Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        testing.build_deliver(attachments=[item])


def test_bad_linesep() -> None:
    with pytest.raises(ValueError, match="linesep"):
        testing.build_deliver(linesep="\r")


# --- reports --------------------------------------------------------------------------------


def test_delivery_report_is_bare_text_xml() -> None:
    request = testing.build_delivery_report(
        message_id="M<1>",
        recipient="12125550123",
        sender=("ShortCode", "222111"),
        status_text="Delivered & read",
        date="2014-04-14T16:15:23Z",
        version="5.3.0",
        transaction_id="T9",
    )
    assert request.content_type == "text/xml; charset=utf-8"
    assert request.headers["SOAPAction"] == '""'
    assert request.headers["Content-Length"] == str(len(request.body))
    env = DET.fromstring(request.body, forbid_dtd=True)
    req = operation(env)
    assert req.tag == q(NS5, "DeliveryReportReq")
    assert [c.tag.split("}")[1] for c in req] == [
        "MM7Version",
        "MessageID",
        "Recipient",
        "Sender",
        "Date",
        "MMStatus",
        "StatusText",
    ]
    assert req.findtext(q(NS5, "MessageID")) == "M<1>"
    assert req.findtext(f"{q(NS5, 'Recipient')}/{q(NS5, 'Number')}") == "12125550123"
    assert req.findtext(f"{q(NS5, 'Sender')}/{q(NS5, 'ShortCode')}") == "222111"
    assert req.findtext(q(NS5, "MMStatus")) == "Retrieved"
    assert req.findtext(q(NS5, "StatusText")) == "Delivered & read"
    tid = env.find(f"{q(SOAP, 'Header')}/{q(NS5, 'TransactionID')}")
    assert tid is not None and tid.text == "T9"


def test_read_reply_multipart() -> None:
    request = testing.build_read_reply(
        message_id="M2",
        recipient="12125550123",
        sender="222111",
        timestamp=datetime.datetime(2020, 1, 2, 3, 4, 5),
        multipart=True,
    )
    msg, env = soap_root(request)
    assert len(list(msg.iter_parts())) == 1
    req = operation(env)
    assert req.tag == q(NS6, "ReadReplyReq")
    assert req.findtext(q(NS6, "TimeStamp")) == "2020-01-02T03:04:05.000Z"
    assert req.findtext(q(NS6, "MMStatus")) == "Read"
    assert req.find(q(NS6, "StatusText")) is None
    assert req.find(q(NS6, "Date")) is None


# --- environ ---------------------------------------------------------------------------------


def test_environ() -> None:
    request = testing.build_deliver(attachments=[NASTY])
    environ = request.environ("/in/mm7", auth=("vasp", "s3cret"))
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/in/mm7"
    assert environ["CONTENT_TYPE"] == request.content_type
    assert environ["CONTENT_LENGTH"] == str(len(request.body))
    assert environ["HTTP_SOAPACTION"] == '""'
    assert environ["HTTP_X_OPENMARKET_CARRIER_ID"] == "474"
    token = base64.b64encode(b"vasp:s3cret").decode()
    assert environ["HTTP_AUTHORIZATION"] == f"Basic {token}"
    assert environ["wsgi.input"].read() == request.body


def test_environ_keeps_seed_header_bytes() -> None:
    environ = testing.seed_example().environ(auth="Bearer x")
    assert environ["HTTP_CONNECTION"].encode("latin-1") == b"Keep-Alive\xc2\xa0"
    assert environ["HTTP_HOST"] == "198.51.100.5"
    assert environ["HTTP_AUTHORIZATION"] == "Bearer x"
    assert environ["wsgi.input"].read() == seed_file_body()


# --- parse_reply ----------------------------------------------------------------------------

FAULT = b"""<?xml version="1.0"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">
 <env:Header>
  <mm7:TransactionID xmlns:mm7="%(ns)s" env:mustUnderstand="1">T42</mm7:TransactionID>
 </env:Header>
 <env:Body>
  <env:Fault>
   <faultcode>env:Server</faultcode>
   <faultstring>Server Error</faultstring>
   <detail>
    <VASPErrorRsp xmlns="%(ns)s">
     <MM7Version>5.3.0</MM7Version>
     <Status><StatusCode>3000</StatusCode><StatusText>Server Error</StatusText></Status>
    </VASPErrorRsp>
   </detail>
  </env:Fault>
 </env:Body>
</env:Envelope>
"""


def test_parse_seed_response() -> None:
    reply = testing.parse_reply(
        "200 OK", [("Content-Type", "text/xml")], testing.SEED_EXAMPLE_RESPONSE
    )
    assert reply.operation == "DeliverRsp"
    assert reply.status_code == 1000
    assert reply.status_text == "Successfully received MMS"
    assert reply.transaction_id == "369171411769819136"  # unqualified in the print
    assert reply.mm7_version == "6.8.0"
    assert reply.namespace == NS6
    assert reply.ok and not reply.is_fault
    assert reply.headers == {"Content-Type": "text/xml"}
    assert reply.summary == (
        "1000 Successfully received MMS (DeliverRsp, TransactionID 369171411769819136)"
    )


def test_parse_fault() -> None:
    reply = testing.parse_reply(500, {}, FAULT % {b"ns": NS5.encode()})
    assert reply.is_fault and not reply.ok
    assert reply.operation == "Fault"
    assert (reply.fault_code, reply.fault_string) == ("env:Server", "Server Error")
    assert (reply.status_code, reply.status_text) == (3000, "Server Error")
    assert reply.transaction_id == "T42"
    assert reply.mm7_version == "5.3.0"
    assert reply.namespace == NS5
    assert reply.summary == "HTTP 500: Fault Server 3000 Server Error"


@pytest.mark.parametrize(
    ("status", "body", "summary"),
    [
        pytest.param(
            404,
            b"<html><body>Not Found</body></html>",
            "HTTP 404: no MM7 reply (root element is html, not Envelope)",
            id="html",
        ),
        pytest.param(200, b"", "no MM7 reply (empty body)", id="empty"),
        pytest.param(
            200,
            b"not xml",
            "no MM7 reply (ParseError: syntax error: line 1, column 0)",
            id="garbage",
        ),
        pytest.param(
            200,
            b'<e:Envelope xmlns:e="%s"><e:Body/></e:Envelope>' % SOAP.encode(),
            "no MM7 reply (empty SOAP Body)",
            id="empty-body",
        ),
    ],
)
def test_parse_not_a_reply(status: int, body: bytes, summary: str) -> None:
    reply = testing.parse_reply(status, {}, body)
    assert reply.operation is None and reply.status_code is None and not reply.ok
    assert reply.summary == summary


def test_parse_refuses_dtd() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    reply = testing.parse_reply(200, {}, bomb)
    assert reply.operation is None
    assert reply.error is not None and "DTD" in reply.error


def test_parse_status_without_text_uses_spec_words() -> None:
    body = (
        b'<s:Envelope xmlns:s="%s"><s:Body><DeliverRsp xmlns="urn:x"><Status>'
        b"<StatusCode>2004</StatusCode></Status></DeliverRsp></s:Body></s:Envelope>"
    ) % SOAP.encode()
    reply = testing.parse_reply(200, {}, body)
    assert reply.status_code == 2004 and reply.status_text is None
    assert reply.summary == "2004 Multimedia content refused (DeliverRsp)"
    assert not reply.ok


# --- post -----------------------------------------------------------------------------------


class EchoApp:
    """A hand-written WSGI receiver: records what it got, answers a fixed DeliverRsp."""

    def __init__(self) -> None:
        self.environ: dict[str, t.Any] = {}
        self.body = b""

    def __call__(self, environ: dict[str, t.Any], start_response: t.Any) -> list[bytes]:
        self.environ = environ
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.body = environ["wsgi.input"].read(length)
        if environ["PATH_INFO"] != "/mm7":
            start_response("404 NOT FOUND", [("Content-Type", "text/plain")])
            return [b"not here"]
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
        return [testing.SEED_EXAMPLE_RESPONSE]


@pytest.mark.parametrize("kind", ["wsgi", "werkzeug-client", "flask-app", "flask-client"])
def test_post(kind: str) -> None:
    echo = EchoApp()
    target: t.Any = echo
    if kind == "werkzeug-client":
        target = Client(echo)
    elif kind.startswith("flask"):
        flask = pytest.importorskip("flask")
        app = flask.Flask(__name__)
        app.wsgi_app = echo  # type: ignore[method-assign]
        target = app if kind == "flask-app" else app.test_client()
    request = testing.build_deliver(attachments=[NASTY])
    reply = testing.post(target, request, auth=("u", "p"))
    assert reply.ok
    assert reply.transaction_id == "369171411769819136"
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert echo.body == request.body
    assert echo.environ["CONTENT_TYPE"] == request.content_type
    assert echo.environ["HTTP_AUTHORIZATION"] == "Basic dTpw"


def test_post_other_path_and_bad_target() -> None:
    reply = testing.post(EchoApp(), testing.seed_example(), path="/elsewhere")
    assert reply.http_status == 404 and not reply.ok
    with pytest.raises(TypeError):
        testing.post(42, testing.seed_example())


# --- import boundaries and the pytest plugin ------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_testing_imports_neither_pytest_nor_flask() -> None:
    result = run_python(
        """
        import sys
        import flask_mm7
        flask_before = "flask" in sys.modules
        import flask_mm7.testing, flask_mm7.pytest_plugin
        assert flask_before or "flask" not in sys.modules, "testing imported flask"
        del sys.modules["flask_mm7.pytest_plugin"], sys.modules["pytest"]
        import flask_mm7.testing
        """
    )
    assert result.returncode == 0, result.stderr
    for module in (ROOT / "flask_mm7" / "testing").glob("*.py"):
        assert "import pytest" not in module.read_text(), module


def test_pytest_plugin_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from flask_mm7.testing import SEED_EXAMPLE_RESPONSE

            got = []

            def receiver(environ, start_response):
                got.append(environ["wsgi.input"].read())
                start_response("200 OK", [("Content-Type", "text/xml")])
                return [SEED_EXAMPLE_RESPONSE]

            @pytest.fixture
            def app():
                return receiver

            def test_request(mm7_request):
                assert mm7_request.seed_example().transaction_id == "369171411769819136"
                r = mm7_request.deliver(attachments=[mm7_request.Media(b"x")])
                assert b"DeliverReq" in r.body
                assert b"DeliveryReportReq" in mm7_request.delivery_report(
                    message_id="m", recipient="1", sender="2").body
                assert b"ReadReplyReq" in mm7_request.read_reply(
                    message_id="m", recipient="1", sender="2").body

            def test_post(mm7_post, mm7_request):
                assert mm7_post(subject="hi").ok
                assert b"<ns3:Subject>hi</ns3:Subject>" in got[-1]
                assert mm7_post(mm7_request.seed_example()).ok
                with pytest.raises(TypeError):
                    mm7_post(mm7_request.seed_example(), subject="x")
            """
        )
    )
    (tmp_path / "other" / "test_no_app.py").parent.mkdir()
    (tmp_path / "other" / "test_no_app.py").write_text("def test_no_app(mm7_post):\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "flask_mm7.pytest_plugin",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "2 passed" in result.stdout, result.stdout + result.stderr
    assert "1 error" in result.stdout
    assert "mm7_post needs an `app` fixture" in result.stdout
