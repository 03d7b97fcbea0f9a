"""Typed messages from envelopes: addresses, optional elements, href, timestamps, attachments."""

from __future__ import annotations

import datetime
import io
import typing as t

import pytest
from helpers import deliver_inner, envelope, multipart
from werkzeug.datastructures import Headers

from flask_mm7 import MM7Middleware
from flask_mm7 import _soap as soap
from flask_mm7._attachments import Attachment
from flask_mm7._messages import DeliverRequest, build_message, parse_datetime
from flask_mm7._parts import read_mime


def _deliver(
    inner: str,
    parts: list[tuple[list[str], bytes]] | None = None,
    headers: dict[str, str] | None = None,
    version: str = "6.8.0",
) -> DeliverRequest:
    data = envelope(inner, version=version)
    body = multipart([(["Content-Type: text/xml"], data), *(parts or [])], "b")
    mime = read_mime(io.BytesIO(body), "multipart/related; boundary=b")
    parsed = soap.read_envelope(mime.root.getvalue())
    message = build_message(parsed, mime, Headers(headers or {}), version)
    assert isinstance(message, DeliverRequest)
    return message


def test_recipients_in_document_order_with_roles() -> None:
    recipients = (
        "<mm7:To><mm7:Number>1</mm7:Number><mm7:ShortCode>2</mm7:ShortCode></mm7:To>"
        "<mm7:Bcc><mm7:RFC2822Address>a@b(&lt;c@d&gt;</mm7:RFC2822Address></mm7:Bcc>"
        "<mm7:Cc><mm7:Number displayOnly='true'>+44 7700/TYPE=PLMN</mm7:Number></mm7:Cc>"
    )
    msg = _deliver(deliver_inner(recipients=recipients))
    assert [(r.value, r.type, r.role, r.display_only) for r in msg.recipients] == [
        ("1", "Number", "To", None),
        ("2", "ShortCode", "To", None),
        ("a@b(<c@d>", "RFC2822Address", "Bcc", None),  # opaque: never parsed as an address
        ("+44 7700", "Number", "Cc", True),
    ]
    assert msg.recipients[3].raw == "+44 7700/TYPE=PLMN"
    assert [str(r) for r in msg.to] == ["1", "2"]


def test_optional_elements_may_all_be_missing() -> None:
    msg = _deliver("", version="6.8.0")
    assert (msg.sender, msg.recipients, msg.timestamp, msg.subject, msg.priority) == (
        None,
        [],
        None,
        None,
        None,
    )
    assert (msg.content_href, msg.allow_adaptations, msg.text, msg.attachments) == (
        None,
        None,
        None,
        [],
    )


def test_sender_address_alias_and_recipient_alias() -> None:
    inner = (
        "<SenderAddress><Number>123</Number></SenderAddress>"
        "<Recipients><Recipient><ShortCode>555</ShortCode></Recipient></Recipients>"
    )
    msg = _deliver(inner)
    assert (str(msg.sender), msg.sender and msg.sender.type) == ("123", "Number")
    assert [(r.value, r.role) for r in msg.recipients] == [("555", "To")]


@pytest.mark.parametrize(
    "content",
    [
        '<mm7:Content href="cid:c1"/>',
        '<mm7:Content mm7:href="cid: c1"/>',
        '<mm7:Content href="cid:&lt;c1&gt;" allowAdaptations="1"/>',
    ],
)
def test_href_forms(content: str) -> None:
    msg = _deliver(
        deliver_inner(href=None, extra=content),
        [(["Content-Type: image/gif", "Content-ID: c1"], b"GIF")],
    )
    assert msg.content_href is not None
    assert [a.content_id for a in msg.attachments] == ["c1"]
    assert "Content href names no part" not in msg.defects


def test_dangling_href_keeps_the_content() -> None:
    msg = _deliver(
        deliver_inner(href='href="cid:nothing"'),
        [(["Content-Type: image/gif", "Content-ID: <other>"], b"GIF")],
    )
    assert [a.read() for a in msg.attachments] == [b"GIF"]
    assert "Content href names no part" in msg.defects


def test_text_joins_text_plain_parts_by_charset() -> None:
    msg = _deliver(
        deliver_inner(),
        [
            (["Content-Type: text/plain; charset=iso-8859-1"], "caf\u00e9".encode("latin-1")),
            (["Content-Type: application/smil"], b"<smil/>"),
            (["Content-Type: text/plain; charset=x-unknown"], "\u2615".encode()),
            (["Content-Type: text/plain; charset=utf-7"], b"+ADw-script+AD4-"),
        ],
    )
    assert msg.text == "caf\u00e9\n\u2615\n+ADw-script+AD4-"


def test_headers_ua_prof_and_carrier() -> None:
    long_value = "x" * 70_000
    msg = _deliver(
        deliver_inner(),
        headers={"X-OpenMarket-Carrier-Id": long_value, "UAProf": "p"},
        version="6.1",
    )
    assert msg.carrier_id == "x" * 1024  # capped, never stored whole
    assert msg.ua_prof == "p"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2014-04-14T16:15:23.414Z", datetime.datetime(2014, 4, 14, 16, 15, 23, 414000)),
        ("2014-04-14T16:15:23", datetime.datetime(2014, 4, 14, 16, 15, 23)),
        ("2014-04-14T18:15:23+02:00", datetime.datetime(2014, 4, 14, 16, 15, 23)),
        ("2014-04-14T11:15:23-0500", datetime.datetime(2014, 4, 14, 16, 15, 23)),
        ("2016-12-31T23:59:60Z", datetime.datetime(2016, 12, 31, 23, 59, 59)),
        ("2014-13-14T16:15:23Z", None),
        ("99999-01-01T00:00:00Z", None),
        ("2014-04-14T18:15:23+24:00", None),
        ("2014-04-14T18:15:23-2400", None),
        ("2014-04-15T16:14:23+23:59", datetime.datetime(2014, 4, 14, 16, 15, 23)),
        ("0001-01-01T00:30:00+01:00", None),
        ("9999-12-31T23:30:00-01:00", None),
        ("yesterday", None),
        ("", None),
    ],
)
def test_parse_datetime(value: str, expected: datetime.datetime | None) -> None:
    got = parse_datetime(value)
    if expected is None:
        assert got is None
    else:
        assert got == expected.replace(tzinfo=datetime.timezone.utc)
        assert got is not None and got.tzinfo == datetime.timezone.utc


@pytest.mark.parametrize(
    ("headers", "safe"),
    [
        ([("Content-Type", "image/jpeg"), ("Content-ID", "<../../etc/passwd>")], "etc_passwd"),
        ([("Content-Location", "C:\\x\\evil.exe")], "evil.exe"),
        ([("Content-Type", 'image/gif; name="..\\\\a.gif"')], "a.gif"),
        ([("Content-Disposition", "attachment; filename*=UTF-8''%E2%80%AEgpj.exe")], "gpj.exe"),
        ([("Content-Type", "image/jpeg"), ("Content-ID", "<...>")], "part-3.jpg"),
        ([("Content-Type", "application/x-unknown-thing")], "part-3.bin"),
    ],
)
def test_safe_filename_is_never_a_path(headers: list[tuple[str, str]], safe: str) -> None:
    attachment = Attachment(headers, data=b"x", index=3)
    assert attachment.safe_filename == safe
    assert "/" not in attachment.safe_filename and "\\" not in attachment.safe_filename


def test_attachment_file_api(tmp_path: object) -> None:
    import pathlib

    attachment = Attachment([("Content-Type", "image/png; name=a.png")], data=b"PNGDATA")
    assert attachment.mimetype_params == {"name": "a.png"}
    assert attachment.read(3) == b"PNG" and attachment.read() == b"DATA"
    assert attachment.getvalue() == b"PNGDATA" and attachment.text is None
    target = pathlib.Path(str(tmp_path)) / "out.png"
    attachment.save(target)
    assert target.read_bytes() == b"PNGDATA"
    assert attachment.headers["content-type"] == "image/png; name=a.png"


def test_optional_fields_are_parsed_on_first_access(monkeypatch: pytest.MonkeyPatch) -> None:
    """What decides the answer is read before the handler; the rest when the handler asks."""
    from flask_mm7 import _messages
    from flask_mm7.testing import build_deliver, post

    calls: list[str] = []
    real = _messages._recipients

    def counting(holder: t.Any) -> t.Any:
        calls.append("recipients")
        return real(holder)

    monkeypatch.setattr(_messages, "_recipients", counting)
    seen: list[t.Any] = []

    def handler(msg: t.Any) -> None:
        seen.append((type(msg).__name__, msg.transaction_id, list(calls)))
        seen.append([str(r) for r in msg.recipients])
        seen.append([str(r) for r in msg.recipients])  # cached: parsed once
        seen.append(repr(msg).startswith("DeliverRequest("))

    app = MM7Middleware(allow_anonymous=True, on_deliver=handler)
    reply = post(app, build_deliver(recipients=["222111"], transaction_id="T-lazy"))
    assert reply.ok, reply.summary
    assert seen[0] == ("DeliverRequest", "T-lazy", [])  # not parsed before it was read
    assert seen[1] == seen[2] == ["222111"] and calls == ["recipients"]
    assert seen[3] is True


def test_a_field_that_cannot_be_read_is_none_never_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flask_mm7 import _messages
    from flask_mm7.testing import build_deliver, post

    def broken(holder: t.Any) -> t.Any:
        raise ValueError("a relay's odd Recipients")

    monkeypatch.setattr(_messages, "_recipients", broken)
    seen: list[t.Any] = []
    app = MM7Middleware(allow_anonymous=True, on_deliver=lambda msg: seen.append(msg.recipients))
    assert post(app, build_deliver(recipients=["222111"])).ok
    assert seen == [None]


def test_an_unreadable_field_is_none_with_a_defect() -> None:
    """A TimeStamp that is no date and an allowAdaptations that is no boolean are None, and
    each adds a defect naming it when first read; the handler never sees an exception."""
    inner = (
        "<mm7:TimeStamp>next tuesday\n</mm7:TimeStamp>"
        '<mm7:Content href="cid:c" allowAdaptations="maybe"/>'
    )
    msg = _deliver(inner)
    assert msg.defects == ()
    assert msg.timestamp is None
    assert msg.allow_adaptations is None
    assert msg.timestamp is None  # cached: the defect is not added twice
    assert msg.defects == (
        "timestamp could not be read: not an xsd:dateTime: 'next tuesday'",
        "allow_adaptations could not be read: not an xsd:boolean: 'maybe'",
    )
    good = _deliver(
        '<mm7:TimeStamp>2026-11-30T10:00:00Z</mm7:TimeStamp><mm7:Content href="cid:c" allowAdaptations="true"/>'
    )
    assert good.timestamp == datetime.datetime(2026, 11, 30, 10, tzinfo=datetime.timezone.utc)
    assert good.allow_adaptations is True
    assert good.defects == ()
