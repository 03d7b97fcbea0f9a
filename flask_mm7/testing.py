"""Build MM7 requests the way a relay sends them, post them to an app, and read the reply.

This is the testing kit: it writes DeliverReq, DeliveryReportReq and ReadReplyReq requests with
the stdlib :mod:`email` package and reads replies with :mod:`defusedxml`, so it shares no code
with flask_mm7's own MIME and SOAP parsers and can check them independently. It imports neither
pytest nor (at import time) Flask.

.. code-block:: python

    from flask_mm7.testing import build_deliver, post

    reply = post(app, build_deliver(subject="Hi", text="Hello", attachments=[Path("cat.jpg")]))
    assert reply.ok, reply.summary
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.policy
import io
import mimetypes
import os
import secrets
import typing as t
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from xml.sax.saxutils import escape, quoteattr

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = [
    "SEED_EXAMPLE_RESPONSE",
    "MM7Reply",
    "MM7Request",
    "Media",
    "build_deliver",
    "build_delivery_report",
    "build_read_reply",
    "default_namespace",
    "parse_reply",
    "post",
    "seed_example",
]

#: SOAP 1.1 envelope namespace
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
#: prefix of every 3GPP MM7 schema namespace
MM7_NS_PREFIX = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/"

#: how attachment bytes may be written on the wire
TRANSFER_ENCODINGS = ("binary", "8bit", "7bit", "base64", "quoted-printable")

Address = t.Union[str, t.Tuple[str, str]]
Attachable = t.Union["Media", bytes, str, "os.PathLike[str]"]


def default_namespace(version: str) -> str:
    """The MM7 namespace a relay pairs with ``version``.

    6.x → ``REL-6-MM7-1-4`` (what OpenMarket sends with 6.8.0), anything else (5.x) →
    ``REL-5-MM7-1-0`` (what OpenMarket sends with 5.3.0).
    """
    release = "REL-6-MM7-1-4" if version.strip().startswith("6") else "REL-5-MM7-1-0"
    return MM7_NS_PREFIX + release


# ---------------------------------------------------------------------------------------------
# requests


@dataclass(frozen=True)
class Media:
    """One attachment to put in a built request.

    :param data: the attachment's bytes (``str`` is encoded as UTF-8).
    :param mimetype: e.g. ``"image/jpeg"``; guessed from ``filename`` when omitted, else
        ``application/octet-stream`` (``text/plain`` for ``str`` data).
    :param filename: written as the ``name`` parameter, ``Content-Location`` and
        ``Content-Disposition`` filename.
    :param content_id: the Content-ID without angle brackets; defaults to the filename or
        ``part-<n>``.
    :param transfer_encoding: ``binary`` (the default, as OpenMarket sends), ``8bit``,
        ``7bit``, ``base64`` or ``quoted-printable``.
    :param charset: added to the Content-Type of ``text/*`` parts (``utf-8`` by default).
    """

    data: bytes | str
    mimetype: str | None = None
    filename: str | None = None
    content_id: str | None = None
    transfer_encoding: str = "binary"
    charset: str | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], **kwargs: t.Any) -> Media:
        """Read ``path`` into a :class:`Media`; ``filename`` defaults to its base name."""
        with open(path, "rb") as f:
            data = f.read()
        kwargs.setdefault("filename", os.path.basename(os.fspath(path)))
        return cls(data, **kwargs)


@dataclass(frozen=True)
class MM7Request:
    """A built request: the HTTP headers and body a relay would POST.

    Header values are ``str`` holding the wire bytes decoded as Latin-1 (the WSGI convention),
    so the seed example's non-breaking spaces survive byte for byte.
    """

    headers: t.Dict[str, str]
    body: bytes
    transaction_id: str

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header."""
        return self.headers.get("Content-Type", "")

    def environ(
        self, path: str = "/mm7", *, auth: tuple[str, str] | str | None = None, **kwargs: t.Any
    ) -> WSGIEnvironment:
        """A WSGI environ for POSTing this request to ``path``.

        :param auth: ``(user, password)`` for HTTP Basic, or a raw ``Authorization`` value.
        :param kwargs: passed to :class:`werkzeug.test.EnvironBuilder` (e.g. ``base_url``).
        """
        from werkzeug.test import EnvironBuilder

        headers = dict(self.headers)
        if auth is not None:
            headers["Authorization"] = _authorization(auth)
        kwargs.setdefault("method", "POST")
        builder = EnvironBuilder(path=path, headers=list(headers.items()), data=self.body, **kwargs)
        try:
            return builder.get_environ()
        finally:
            builder.close()


def build_deliver(
    *,
    sender: Address = "12125550123",
    recipients: t.Iterable[Address] = ("222111",),
    cc: t.Iterable[Address] = (),
    bcc: t.Iterable[Address] = (),
    subject: str | None = None,
    text: str | None = None,
    attachments: t.Iterable[Attachable] = (),
    version: str = "6.8.0",
    namespace: str | None = None,
    transaction_id: str | None = None,
    linked_id: str | None = None,
    timestamp: datetime.datetime | str | None = None,
    priority: str | None = None,
    ua_prof: str | None = None,
    carrier_id: str | None = "474",
    openmarket_headers: bool = True,
    nested: bool = True,
    allow_adaptations: bool = True,
    content_id: str = "default.cid",
    linesep: str = "\r\n",
    extra_headers: t.Mapping[str, str] | None = None,
) -> MM7Request:
    """Build a DeliverReq shaped like OpenMarket's (``ns1``/``ns3`` prefixes, multipart/related
    with a ``<soap-start>`` root and the content in a nested multipart/mixed part).

    Every value is XML-escaped. Addresses are strings (``"@"`` makes an ``RFC2822Address``,
    anything else a ``Number``) or ``(element, value)`` pairs such as ``("ShortCode", "222")``.

    :param attachments: :class:`Media`, ``bytes`` (application/octet-stream), ``str`` (a
        text/plain part) or a path (``pathlib.Path`` or other ``os.PathLike``; the mimetype is
        guessed from the name).
    :param text: adds a text/plain; charset=utf-8 part after the attachments.
    :param namespace: defaults to :func:`default_namespace` of ``version``.
    :param transaction_id: defaults to a random 18-digit number.
    :param linked_id: defaults to the TransactionID, as OpenMarket does; ``""`` leaves it out.
    :param timestamp: defaults to now (UTC, milliseconds, ``Z``).
    :param ua_prof: for versions below 6.8 sent as the ``UAProf`` HTTP header, otherwise as
        ``<UACapabilities UAProf="..."/>`` (OpenMarket's rule).
    :param openmarket_headers: add ``SOAPAction: ""``, ``User-Agent: OpenMarket`` and
        ``X-OpenMarket-Carrier-Id`` (when ``carrier_id`` is not None).
    :param nested: put the content in a multipart/mixed part with Content-ID ``content_id``;
        ``False`` puts the parts directly in the multipart/related body.
    :param linesep: the MIME line ending (``"\\n"`` gives LF-only framing).
    """
    namespace = namespace if namespace is not None else default_namespace(version)
    transaction_id = transaction_id if transaction_id is not None else _new_transaction_id()
    linked_id = transaction_id if linked_id is None else linked_id
    media = [_to_media(item) for item in attachments]
    if text is not None:
        media.append(Media(text, "text/plain", content_id=None))
    policy = _policy(linesep)
    parts, raw = _media_parts(media, policy)

    href: str | None = None
    content: Message | None = None
    if parts and nested:
        content = MIMEMultipart("mixed", policy=policy)
        del content["MIME-Version"]
        content["Content-ID"] = f"<{content_id}>"
        for part in parts:
            content.attach(part)
        href = content_id
    elif parts:
        href = _strip_brackets(parts[0]["Content-ID"])

    ua_in_header = ua_prof is not None and not _at_least_68(version)
    recipients_xml = "".join(
        f"<ns3:{role}>{''.join(_address_xml(a, display_only=False) for a in addresses)}"
        f"</ns3:{role}>"
        for role, addresses in (("To", list(recipients)), ("Cc", list(cc)), ("Bcc", list(bcc)))
        if addresses
    )
    fields = [
        _element("MM7Version", version),
        _element("LinkedID", linked_id) if linked_id else "",
        f"<ns3:Sender>{_address_xml(sender)}</ns3:Sender>",
        f"<ns3:Recipients>{recipients_xml}</ns3:Recipients>" if recipients_xml else "",
        _element("TimeStamp", _timestamp(timestamp)),
        _element("Priority", priority) if priority is not None else "",
        _element("Subject", subject) if subject is not None else "",
        f"<ns3:UACapabilities UAProf={quoteattr(ua_prof)}/>"
        if ua_prof is not None and not ua_in_header
        else "",
        f"<ns3:Content href={quoteattr('cid:' + href)} "
        f'allowAdaptations="{str(allow_adaptations).lower()}"/>'
        if href is not None
        else "",
    ]
    soap = _envelope(namespace, transaction_id, "DeliverReq", fields)

    headers: dict[str, str] = {}
    if openmarket_headers:
        headers.update({"SOAPAction": '""', "User-Agent": "OpenMarket"})
        if carrier_id is not None:
            headers["X-OpenMarket-Carrier-Id"] = carrier_id
    if ua_in_header:
        assert ua_prof is not None
        headers["UAProf"] = ua_prof
    return _related(
        soap,
        [content] if content is not None else parts,
        raw,
        policy,
        headers,
        transaction_id,
        extra_headers,
    )


def build_delivery_report(
    *,
    message_id: str,
    recipient: Address,
    sender: Address,
    mm_status: str = "Retrieved",
    status_text: str | None = None,
    date: datetime.datetime | str | None = None,
    version: str = "6.8.0",
    namespace: str | None = None,
    transaction_id: str | None = None,
    multipart: bool = False,
    openmarket_headers: bool = True,
    linesep: str = "\r\n",
    extra_headers: t.Mapping[str, str] | None = None,
) -> MM7Request:
    """Build a DeliveryReportReq: a bare ``text/xml`` body as OpenMarket sends DRs, or
    wrapped in multipart/related when ``multipart`` is true.

    ``recipient`` is the handset the message went to, ``sender`` the VASP's short code.
    ``date`` defaults to now (UTC). Other parameters as in :func:`build_deliver`.
    """
    return _report(
        "DeliveryReportReq", "Date", message_id, recipient, sender, mm_status, status_text,
        date, version, namespace, transaction_id, multipart, openmarket_headers, linesep,
        extra_headers,
    )  # fmt: skip


def build_read_reply(
    *,
    message_id: str,
    recipient: Address,
    sender: Address,
    mm_status: str = "Read",
    status_text: str | None = None,
    timestamp: datetime.datetime | str | None = None,
    version: str = "6.8.0",
    namespace: str | None = None,
    transaction_id: str | None = None,
    multipart: bool = False,
    openmarket_headers: bool = True,
    linesep: str = "\r\n",
    extra_headers: t.Mapping[str, str] | None = None,
) -> MM7Request:
    """Build a ReadReplyReq (``mm_status`` Read, Deleted or Indeterminate); as
    :func:`build_delivery_report` with ``timestamp`` in place of ``date``."""
    return _report(
        "ReadReplyReq", "TimeStamp", message_id, recipient, sender, mm_status, status_text,
        timestamp, version, namespace, transaction_id, multipart, openmarket_headers, linesep,
        extra_headers,
    )  # fmt: skip


def _report(
    operation: str,
    date_element: str,
    message_id: str,
    recipient: Address,
    sender: Address,
    mm_status: str,
    status_text: str | None,
    date: datetime.datetime | str | None,
    version: str,
    namespace: str | None,
    transaction_id: str | None,
    multipart: bool,
    openmarket_headers: bool,
    linesep: str,
    extra_headers: t.Mapping[str, str] | None,
) -> MM7Request:
    namespace = namespace if namespace is not None else default_namespace(version)
    transaction_id = transaction_id if transaction_id is not None else _new_transaction_id()
    fields = [
        _element("MM7Version", version),
        _element("MessageID", message_id),
        f"<ns3:Recipient>{_address_xml(recipient)}</ns3:Recipient>",
        f"<ns3:Sender>{_address_xml(sender)}</ns3:Sender>",
        _element(date_element, _timestamp(date)),
        _element("MMStatus", mm_status),
        _element("StatusText", status_text) if status_text is not None else "",
    ]
    soap = _envelope(namespace, transaction_id, operation, fields)
    headers: dict[str, str] = {}
    if openmarket_headers:
        headers.update({"SOAPAction": '""', "User-Agent": "OpenMarket"})
    policy = _policy(linesep)
    if multipart:
        return _related(soap, [], {}, policy, headers, transaction_id, extra_headers)
    body = soap.encode("utf-8")
    headers["Content-Type"] = "text/xml; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    headers.update(extra_headers or {})
    return MM7Request(headers, body, transaction_id)


def _policy(linesep: str) -> email.policy.Compat32:
    if linesep not in ("\r\n", "\n"):
        raise ValueError(f"linesep must be '\\r\\n' or '\\n', not {linesep!r}")
    # compat32 leaves our header values alone; max_line_length=0 turns folding off.
    return email.policy.compat32.clone(linesep=linesep, max_line_length=0)


def _envelope(namespace: str, transaction_id: str, operation: str, fields: list[str]) -> str:
    inner = "".join(f"\n         {f}" for f in fields if f)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<ns1:Envelope xmlns:ns1="{SOAP_ENV}" xmlns:ns3={quoteattr(namespace)}>\n'
        "   <ns1:Header>\n"
        f'      <ns3:TransactionID ns1:mustUnderstand="1">{escape(transaction_id)}'
        "</ns3:TransactionID>\n"
        "   </ns1:Header>\n"
        "   <ns1:Body>\n"
        f"      <ns3:{operation}>{inner}\n"
        f"      </ns3:{operation}>\n"
        "   </ns1:Body>\n"
        "</ns1:Envelope>\n"
    )


def _element(name: str, value: str) -> str:
    return f"<ns3:{name}>{escape(value)}</ns3:{name}>"


def _address_xml(address: Address, display_only: bool | None = None) -> str:
    if isinstance(address, tuple):
        kind, value = address
    else:
        kind, value = ("RFC2822Address" if "@" in address else "Number"), address
    attr = "" if display_only is None else f' displayOnly="{str(display_only).lower()}"'
    return f"<ns3:{kind}{attr}>{escape(value)}</ns3:{kind}>"


def _timestamp(value: datetime.datetime | str | None) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        value = datetime.datetime.now(datetime.timezone.utc)
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _at_least_68(version: str) -> bool:
    try:
        numbers = tuple(int(p) for p in version.strip().split(".")[:2])
    except ValueError:
        return True
    return numbers >= (6, 8)


def _new_transaction_id() -> str:
    return str(secrets.randbelow(9 * 10**17) + 10**17)


def _strip_brackets(value: str) -> str:
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


def _to_media(item: Attachable) -> Media:
    if isinstance(item, Media):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        return Media(bytes(item))
    if isinstance(item, str):
        return Media(item, "text/plain")
    if isinstance(item, os.PathLike):
        return Media.from_path(item)
    raise TypeError(f"cannot attach {type(item).__name__}: use Media, bytes, str or a path")


def _media_parts(
    media: list[Media], policy: email.policy.Compat32
) -> tuple[list[Message], dict[str, bytes]]:
    """Turn media into MIME parts; raw (binary/8bit/7bit) bodies are stood in for by tokens
    that :func:`_related` swaps for the bytes after generation, since the stdlib generator
    would rewrite line ends inside them."""
    parts: list[Message] = []
    raw: dict[str, bytes] = {}
    for n, item in enumerate(media, 1):
        cte = item.transfer_encoding.lower()
        if cte not in TRANSFER_ENCODINGS:
            raise ValueError(f"transfer_encoding must be one of {TRANSFER_ENCODINGS}, not {cte!r}")
        data = item.data.encode("utf-8") if isinstance(item.data, str) else item.data
        mimetype = item.mimetype
        if mimetype is None and item.filename:
            mimetype = mimetypes.guess_type(item.filename)[0]
        if mimetype is None:
            mimetype = "application/octet-stream"
        maintype, _, subtype = mimetype.partition("/")
        params: dict[str, str] = {}
        if maintype == "text":
            params["charset"] = item.charset or "utf-8"
        if item.filename:
            params["name"] = item.filename
        part = MIMEBase(maintype, subtype or "octet-stream", policy=policy, **params)
        del part["MIME-Version"]
        part["Content-Transfer-Encoding"] = cte
        cid = item.content_id or item.filename or f"part-{n}"
        part["Content-ID"] = f"<{_strip_brackets(cid)}>"
        if item.filename:
            part["Content-Location"] = item.filename
            part.add_header("Content-Disposition", "attachment", filename=item.filename)
        if cte == "base64":
            part.set_payload(base64.encodebytes(data).decode("ascii"))
        elif cte == "quoted-printable":
            # text keeps its line breaks as hard breaks; anything else is encoded byte-exact
            encoded = binascii.b2a_qp(data, istext=maintype == "text")
            part.set_payload(encoded.decode("ascii"))
        else:
            token = f"flask-mm7-raw-{secrets.token_hex(16)}"
            raw[token] = data
            part.set_payload(token)
        parts.append(part)
    return parts, raw


def _related(
    soap: str,
    parts: list[Message],
    raw: dict[str, bytes],
    policy: email.policy.Compat32,
    headers: dict[str, str],
    transaction_id: str,
    extra_headers: t.Mapping[str, str] | None,
) -> MM7Request:
    soap_bytes = soap.replace("\n", policy.linesep).encode("utf-8")
    root = MIMEBase("text", "xml", policy=policy, charset="utf-8")
    del root["MIME-Version"]
    root["Content-ID"] = "<soap-start>"
    if not soap.isascii():
        root["Content-Transfer-Encoding"] = "8bit"
    token = f"flask-mm7-raw-{secrets.token_hex(16)}"
    raw = {**raw, token: soap_bytes}
    root.set_payload(token)

    everything = b"".join(raw.values())
    while True:  # a boundary that occurs in no payload
        boundary = f"----=_Part_{secrets.randbelow(10**6)}_{secrets.randbelow(10**10)}.flask-mm7"
        if boundary.encode("ascii") not in everything:
            break
    for part in parts:
        if part.is_multipart():
            part.set_boundary(boundary + ".mixed")
    message = MIMEMultipart(
        "related", boundary=boundary, policy=policy, type="text/xml", start="<soap-start>"
    )
    del message["MIME-Version"]
    message.attach(root)
    for part in parts:
        message.attach(part)

    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=policy).flatten(message)
    generated = out.getvalue()
    blank = (policy.linesep * 2).encode("ascii")
    body = generated[generated.index(blank) + len(blank) :]
    for key, value in raw.items():
        body = body.replace(key.encode("ascii"), value, 1)

    headers["Content-Type"] = message["Content-Type"]
    headers["Content-Length"] = str(len(body))
    headers.update(extra_headers or {})
    return MM7Request(headers, body, transaction_id)


# ---------------------------------------------------------------------------------------------
# the aggregator's printed example, byte for byte

_SEED_HEAD = (
    ("SOAPAction", '""'),
    (
        "Content-Type",
        'multipart/related; start="soap-start"; type="text/xml"; '
        'boundary="----=_Part_139078_1411587550.1397492135426"',
    ),
    ("User-Agent", "OpenMarket"),
    ("Host", "198.51.100.5"),
    ("Content-Length", "2546"),  # as printed; seed_example() puts the true length
    ("X-OpenMarket-Carrier-Id", "474"),
    ("Connection", "Keep-Alive\u00a0"),  # a non-breaking space, as printed
)

_SEED_BODY = """\
------=_Part_139078_1411587550.1397492135426
Content-Type: text/xml
Content-ID: <soap-start>\u00a0
<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<ns1:Envelope xmlns:ns1="http://schemas.xmlsoap.org/soap/envelope/" \
xmlns:ns3="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4">
   <ns1:Header>
      <ns3:TransactionID ns1:mustUnderstand="1">369171411769819136</ns3:TransactionID>
   </ns1:Header>
   <ns1:Body>
      <ns3:DeliverReq>
         <ns3:MM7Version>6.8.0</ns3:MM7Version>
         <ns3:LinkedID>369171411769819136</ns3:LinkedID>
         <ns3:Sender>
            <ns3:Number>12125550123</ns3:Number>
         </ns3:Sender>
         <ns3:Recipients>
            <ns3:To>
            <ns3:Number displayOnly="false">222111</ns3:Number>
            </ns3:To>
         </ns3:Recipients>
         <ns3:TimeStamp>2014-04-14T16:15:23.414Z</ns3:TimeStamp>
         <ns3:Priority>Normal</ns3:Priority>
         <ns3:Content href="cid:default.cid" allowAdaptations="true"/>
      </ns3:DeliverReq>
   </ns1:Body>
</ns1:Envelope>------=_Part_139078_1411587550.1397492135426
Content-Type: multipart/mixed; boundary="----=_Part_139079_1300104441.1397492135426"
Content-ID: <default.cid>\u00a0
------=_Part_139079_1300104441.1397492135426
Content-Type: image/jpeg
Content-Transfer-Encoding: binary
Content-ID: image_0.jpg\u00a0
<Binary contents>
------=_Part_139079_1300104441.1397492135426
Content-Type: text/plain
Content-Transfer-Encoding: binary
Content-ID: text_0.txt\u00a0
Test MO message!
------=_Part_139079_1300104441.1397492135426--
------=_Part_139078_1411587550.1397492135426--
"""

#: The body of the aggregator's printed example *response* (a DeliverRsp), exactly as printed:
#: indented with non-breaking spaces, TransactionID in no namespace.
SEED_EXAMPLE_RESPONSE: bytes = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n'
    '<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema">\n'
    "   <soap-env:Header>\n"
    '      <TransactionID soap-env:mustUnderstand="1">369171411769819136</TransactionID>\n'
    "   </soap-env:Header>\n"
    "   <soap-env:Body>\n"
    '      <mm7:DeliverRsp xmlns:mm7="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/'
    'schema/REL-6-MM7-1-4">\n'
    "         <mm7:MM7Version>6.8.0</mm7:MM7Version>\n"
    "         <mm7:Status>\n"
    "            <mm7:StatusCode>1000</mm7:StatusCode>\n"
    "            <mm7:StatusText>Successfully received MMS</mm7:StatusText>\n"
    "         </mm7:Status>\n"
    "      </mm7:DeliverRsp>\n"
    "   </soap-env:Body>\n"
    "</soap-env:Envelope>\n".replace("   ", "\u00a0\u00a0\u00a0").encode("utf-8")
)


def seed_example(line_ending: str = "\n") -> MM7Request:
    """The aggregator's printed "Example request including MIME parts", byte for byte.

    LF line ends, no blank line after the part headers, the delimiter glued to
    ``</ns1:Envelope>``, a U+00A0 (UTF-8 ``C2 A0``) after several header values, and the
    literal text ``<Binary contents>`` in place of the JPEG. ``Content-Length`` is the true
    length (the print says 2546). ``line_ending="\\r\\n"`` turns every LF of the body into CRLF.
    Header values are the wire bytes decoded as Latin-1, as in a WSGI environ.
    """
    if line_ending not in ("\n", "\r\n"):
        raise ValueError(f"line_ending must be '\\n' or '\\r\\n', not {line_ending!r}")
    body = _SEED_BODY.encode("utf-8").replace(b"\n", line_ending.encode("ascii"))
    headers = {k: v.encode("utf-8").decode("latin-1") for k, v in _SEED_HEAD}
    headers["Content-Length"] = str(len(body))
    return MM7Request(headers, body, "369171411769819136")


# ---------------------------------------------------------------------------------------------
# replies


@dataclass(frozen=True)
class MM7Reply:
    """What the receiver answered, read with defusedxml (no DTDs, no entities).

    Every MM7 field is None when the body is not a SOAP envelope (e.g. an HTML error page).
    Element names are matched by local name, so any prefix, a qualified or unqualified
    TransactionID, and unqualified children are all accepted.
    """

    http_status: int
    headers: t.Dict[str, str]
    body: bytes
    #: ``"DeliverRsp"``, ``"DeliveryReportRsp"``, ``"ReadReplyRsp"``, ``"Fault"`` (or any
    #: other Body element's local name), or None
    operation: str | None = None
    status_code: int | None = None
    status_text: str | None = None
    transaction_id: str | None = None
    mm7_version: str | None = None
    #: the MM7 namespace of the reply element (for a Fault, of its detail element)
    namespace: str | None = None
    #: ``faultcode`` as sent (e.g. ``"env:Server"``), for a Fault
    fault_code: str | None = None
    fault_string: str | None = None
    #: why the body could not be read as SOAP, if it could not
    error: str | None = field(default=None, repr=False)

    @property
    def is_fault(self) -> bool:
        return self.operation == "Fault"

    @property
    def ok(self) -> bool:
        """HTTP 200, not a Fault, and MM7 StatusCode 1000."""
        return self.http_status == 200 and not self.is_fault and self.status_code == 1000

    @property
    def summary(self) -> str:
        """One line in words, e.g. ``1000 Success (DeliverRsp, TransactionID 3691)`` or
        ``Fault Server 3000 Server Error``."""
        status = ""
        if self.status_code is not None:
            status = f"{self.status_code} {self.status_text or _status_words(self.status_code)}"
        if self.is_fault:
            code = (self.fault_code or "").rpartition(":")[2]
            words = " ".join(w for w in ("Fault", code, status or self.fault_string or "") if w)
        elif self.operation is not None:
            words = status or f"no status ({self.operation})"
            details = [self.operation]
            if self.transaction_id is not None:
                details.append(f"TransactionID {self.transaction_id}")
            words += f" ({', '.join(details)})"
        else:
            words = f"no MM7 reply ({self.error or 'empty body'})"
        if self.http_status != 200:
            words = f"HTTP {self.http_status}: {words}"
        return words


def _status_words(code: int) -> str:
    from .status import default_text

    return default_text(code)


def parse_reply(
    status: int | str,
    headers: t.Mapping[str, str] | t.Iterable[tuple[str, str]],
    body: bytes,
) -> MM7Reply:
    """Read a receiver's reply.

    :param status: the HTTP status as an int or a status line (``"200 OK"``).
    :param headers: a mapping or ``(name, value)`` pairs.
    """
    import defusedxml.ElementTree as DET

    http_status = int(str(status).split(None, 1)[0])
    items = headers.items() if isinstance(headers, t.Mapping) else headers
    header_dict = {str(k): str(v) for k, v in items}
    base = MM7Reply(http_status, header_dict, body)
    if not body.strip():
        return base
    try:
        root = DET.fromstring(body, forbid_dtd=True)
    except Exception as e:  # ParseError or a defusedxml refusal: not a reply we can read
        return _replace(base, error=f"{type(e).__name__}: {e}")
    if _local(root.tag) != "Envelope":
        return _replace(base, error=f"root element is {_local(root.tag)}, not Envelope")

    transaction_id = None
    header = _child(root, "Header")
    if header is not None:
        element = _child(header, "TransactionID")
        if element is not None:
            transaction_id = (element.text or "").strip()
    soap_body = _child(root, "Body")
    operation_el = next(iter(soap_body), None) if soap_body is not None else None
    if operation_el is None:
        return _replace(base, transaction_id=transaction_id, error="empty SOAP Body")

    operation = _local(operation_el.tag)
    fault_code = fault_string = None
    mm7_el = operation_el
    if operation == "Fault":
        fault_code = _text(_child(operation_el, "faultcode"))
        fault_string = _text(_child(operation_el, "faultstring"))
        detail = _child(operation_el, "detail")
        mm7_el = next(iter(detail), None) if detail is not None else None
    status_el = _child(mm7_el, "Status") if mm7_el is not None else None
    code_text = _text(_child(status_el, "StatusCode")) if status_el is not None else None
    try:
        status_code = int(code_text) if code_text is not None else None
    except ValueError:
        status_code = None
    return _replace(
        base,
        operation=operation,
        status_code=status_code,
        status_text=_text(_child(status_el, "StatusText")) if status_el is not None else None,
        transaction_id=transaction_id,
        mm7_version=_text(_child(mm7_el, "MM7Version")) if mm7_el is not None else None,
        namespace=_namespace(mm7_el.tag) if mm7_el is not None else None,
        fault_code=fault_code,
        fault_string=fault_string,
    )


def _replace(reply: MM7Reply, **changes: t.Any) -> MM7Reply:
    import dataclasses

    return dataclasses.replace(reply, **changes)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _namespace(tag: str) -> str | None:
    return tag[1:].partition("}")[0] if tag.startswith("{") else None


def _child(parent: t.Any, name: str) -> t.Any:
    for child in parent:
        if isinstance(child.tag, str) and _local(child.tag) == name:
            return child
    return None


def _text(element: t.Any) -> str | None:
    return None if element is None else (element.text or "").strip()


# ---------------------------------------------------------------------------------------------
# posting


def post(
    target: t.Any,
    request: MM7Request,
    path: str = "/mm7",
    auth: tuple[str, str] | str | None = None,
) -> MM7Reply:
    """POST ``request`` to ``target`` in-process and read the reply.

    :param target: a Flask app (its ``test_client()`` is used), a Flask or Werkzeug test
        client, or any WSGI callable.
    :param auth: ``(user, password)`` for HTTP Basic, or a raw ``Authorization`` value.
    """
    from werkzeug.test import Client

    if isinstance(target, Client):
        client = target
    elif hasattr(target, "test_client") and hasattr(target, "wsgi_app"):
        client = target.test_client()
    elif callable(target):
        client = Client(t.cast("WSGIApplication", target))
    else:
        raise TypeError(f"cannot post to {type(target).__name__}: need a WSGI app or client")
    response = client.open(request.environ(path, auth=auth))
    try:
        body = response.get_data()
        return parse_reply(response.status_code, dict(response.headers.items()), body)
    finally:
        response.close()


def _authorization(auth: tuple[str, str] | str) -> str:
    if isinstance(auth, str):
        return auth
    user, password = auth
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"
