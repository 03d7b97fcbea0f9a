"""Build MM7 requests the way relays send them, with the stdlib :mod:`email` package.

Shares no code with flask_mm7's MIME and SOAP parsers, so it can check them independently.
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
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from xml.sax.saxutils import escape, quoteattr

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment


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
    boundary = _fresh_boundary(everything)
    taken = [boundary]
    for part in parts:
        if part.is_multipart():
            # a boundary of its own: one that extended the outer one would put the outer
            # delimiter inside the nested part, which RFC 2046 forbids (strict parsers refuse it)
            taken.append(_fresh_boundary(everything, taken))
            part.set_boundary(taken[-1])
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


def _fresh_boundary(everything: bytes, taken: t.Sequence[str] = ()) -> str:
    """A JavaMail-shaped boundary found in no payload and not in ``taken``."""
    while True:
        boundary = f"----=_Part_{secrets.randbelow(10**6)}_{secrets.randbelow(10**10)}.flask-mm7"
        if boundary not in taken and boundary.encode("ascii") not in everything:
            return boundary


def _authorization(auth: tuple[str, str] | str) -> str:
    if isinstance(auth, str):
        return auth
    user, password = auth
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"
