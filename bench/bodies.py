"""Deterministic MM7 DeliverReq bodies shaped like the seed example, for the benchmarks.

Every body is a ``multipart/related`` HTTP body with CRLF framing: a SOAP 1.1 root part
(``text/xml``, ``Content-ID: <soap-start>``, about 1.5 KB) followed by a nested
``multipart/mixed`` part (``Content-ID: <default.cid>``) that holds the media as ``binary``
leaf parts. Binary content is pseudo-random but seeded, so every run builds the same bytes;
the builder checks that no delimiter occurs by chance inside any part.

Relay shapes (``RELAY_SHAPES``), the typical content framed as relays frame it:
``typical-javamail`` (JavaMail boundaries: part counters one apart, same session suffix) and
``typical-kit`` (built by ``flask_mm7.testing.build_deliver``, its nested boundary made the
outer one plus ``.mixed``: a near-miss shape).

Sizes (``SIZES``): ``tiny`` (text only, ~2 KB), ``typical`` (one 60 KB JPEG + text),
``many`` (100 small leaf parts), ``large`` (~5 MB), ``huge`` (~50 MB). ``smoke=True`` builds
the same shapes scaled down so the whole suite runs in about a second.

Cliff bodies (``CLIFF_MIB``, :func:`make_cliff_body`): the ``large`` shape (a 60 KiB JPEG, an
MP4 and a text part) sized to exactly N MiB, along a curve that crosses flask-mm7's in-memory
threshold (``max_memory_body_size``, 8 MiB by default: the 8 MiB body is at it, 9 MiB above).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

OUTER_BOUNDARY = "----=_Part_139078_1411587550.1397492135426"
INNER_BOUNDARY = "----=_Part_139079_1300104441.1397492135426"
CONTENT_TYPE = (
    f'multipart/related; start="soap-start"; type="text/xml"; boundary="{OUTER_BOUNDARY}"'
)
TRANSACTION_ID = "369171411769819136"
MM7_NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4"

SIZES: Tuple[str, ...] = ("tiny", "typical", "many", "large", "huge")
#: the cliff section's body sizes in MiB (the media part grows; the body is exactly this size)
CLIFF_MIB: Tuple[float, ...] = (4, 6, 8, 9, 12, 16, 24)
#: the typical content framed as relays frame it (beside the synthetic ``typical``)
RELAY_SHAPES: Tuple[str, ...] = ("typical-javamail", "typical-kit")
#: a later JavaMail pair: part counters one apart, one session timestamp (shared prefix and
#: suffix, as the seed's ``----=_Part_139078_...`` / ``----=_Part_139079_...``)
JAVAMAIL_OUTER = "----=_Part_2187654_1938273645.1732981234567"
JAVAMAIL_INNER = "----=_Part_2187655_1938273645.1732981234567"

# The seed's envelope, well formed, with a few more optional elements so the root part is
# about 1.5 KB like real OpenMarket traffic.
SOAP_ENVELOPE = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<ns1:Envelope xmlns:ns1="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns3="{MM7_NS}">
   <ns1:Header>
      <ns3:TransactionID ns1:mustUnderstand="1">{TRANSACTION_ID}</ns3:TransactionID>
   </ns1:Header>
   <ns1:Body>
      <ns3:DeliverReq>
         <ns3:MM7Version>6.8.0</ns3:MM7Version>
         <ns3:MMSRelayServerID>mmsc.openmarket.example</ns3:MMSRelayServerID>
         <ns3:LinkedID>{TRANSACTION_ID}</ns3:LinkedID>
         <ns3:Sender>
            <ns3:Number>12125550123</ns3:Number>
         </ns3:Sender>
         <ns3:Recipients>
            <ns3:To>
            <ns3:Number displayOnly="false">222111</ns3:Number>
            </ns3:To>
            <ns3:Cc>
            <ns3:RFC2822Address displayOnly="true">someone@example.com</ns3:RFC2822Address>
            </ns3:Cc>
         </ns3:Recipients>
         <ns3:TimeStamp>2014-04-14T16:15:23.414Z</ns3:TimeStamp>
         <ns3:ReplyChargingID>{TRANSACTION_ID}</ns3:ReplyChargingID>
         <ns3:Priority>Normal</ns3:Priority>
         <ns3:Subject>ACME Rewards Voucher</ns3:Subject>
         <ns3:UACapabilities UAProf="Samsung Galaxy" TimeStamp="2014-04-14T16:15:23.414Z"/>
         <ns3:Content href="cid:default.cid" allowAdaptations="true"/>
      </ns3:DeliverReq>
   </ns1:Body>
</ns1:Envelope>""".encode()

HTTP_HEADERS: Dict[str, str] = {
    "SOAPAction": '""',
    "User-Agent": "OpenMarket",
    "X-OpenMarket-Carrier-Id": "474",
}


@dataclass
class Body:
    """One benchmark body: the HTTP entity, its Content-Type and what a parser must find."""

    name: str
    content_type: str
    data: bytes
    #: the SOAP root part's bytes
    soap: bytes
    #: the leaf parts' payloads, in order (the root not included)
    leaves: List[bytes] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def expected(self) -> List[bytes]:
        """What a contender must return: the root, then every leaf, in document order."""
        return [self.soap, *self.leaves]


def _leaf(ctype: str, cid: str, payload: bytes) -> bytes:
    return (
        f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{cid}>\r\n\r\n"
    ).encode() + payload


def build(
    name: str,
    leaves: List[Tuple[str, str, bytes]],
    outer_boundary: str = OUTER_BOUNDARY,
    inner_boundary: str = INNER_BOUNDARY,
) -> Body:
    """Frame ``leaves`` (content type, content id, payload) as an MM7 DeliverReq body."""
    outer = b"--" + outer_boundary.encode()
    inner = b"--" + inner_boundary.encode()
    for _, _, payload in leaves:
        # a delimiter inside a payload would make every parser disagree with ``expected``
        if outer in payload or inner in payload:
            raise AssertionError("a delimiter occurs inside a generated payload")
    chunks = [
        outer,
        b"\r\nContent-Type: text/xml; charset=UTF-8\r\nContent-ID: <soap-start>\r\n\r\n",
        SOAP_ENVELOPE,
        b"\r\n",
        outer,
        b'\r\nContent-Type: multipart/mixed; boundary="',
        inner_boundary.encode(),
        b'"\r\nContent-ID: <default.cid>\r\n\r\n',
    ]
    for ctype, cid, payload in leaves:
        chunks += [inner, b"\r\n", _leaf(ctype, cid, payload), b"\r\n"]
    chunks += [inner, b"--\r\n", outer, b"--\r\n"]
    return Body(
        name=name,
        content_type=CONTENT_TYPE.replace(OUTER_BOUNDARY, outer_boundary),
        data=b"".join(chunks),
        soap=SOAP_ENVELOPE,
        leaves=[payload for _, _, payload in leaves],
    )


def _text(rng: random.Random, n: int) -> bytes:
    words = [b"ACME", b"rewards", b"voucher", b"Test", b"MO", b"message!", b"see", b"you"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def _kit_body(leaves: List[Tuple[str, str, bytes]]) -> Body:
    """The typical content built by ``flask_mm7.testing.build_deliver`` (no parser code),
    its random boundaries replaced by fixed ones so every run gets the same bytes: the outer
    one, and the outer one plus ``.mixed`` for the nested one (the kit's nested boundary
    before 0.1.0, kept as the benchmark's near-miss shape: the outer delimiter is a prefix of
    the inner one). What a parser must find is read back by the stdlib ``email`` parser (the
    root part as framed, CRLF included)."""
    import email

    from flask_mm7.testing import Media, build_deliver

    (jtype, jcid, jpeg), (_, _, text) = leaves
    req = build_deliver(
        attachments=[Media(jpeg, jtype, content_id=jcid)],
        text=text.decode(),
        transaction_id=TRANSACTION_ID,
        timestamp="2014-04-14T16:15:23.414Z",
        priority="Normal",
        subject="ACME Rewards Voucher",
    )
    built = email.message_from_bytes(
        b"Content-Type: " + req.content_type.encode() + b"\r\n\r\n" + req.body
    )
    old, old_inner = (part.get_boundary() for part in built.walk() if part.is_multipart())
    fixed = "----=_Part_139078_1411587550.flask-mm7"
    for boundary in (old, old_inner):
        assert isinstance(boundary, str) and len(boundary) >= len("----=_Part_0_0.flask-mm7")
    # the inner one first: the replaced outer boundary is a prefix of the new inner one
    data = req.body.replace(old_inner.encode(), (fixed + ".mixed").encode())
    data = data.replace(old.encode(), fixed.encode())
    ctype = req.content_type.replace(old, fixed)
    msg = email.message_from_bytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + data)
    found = [p.get_payload(decode=True) for p in msg.walk() if not p.is_multipart()]
    if found[1:] != [jpeg, text]:
        raise AssertionError("the testing kit's body does not carry the leaves as given")
    return Body("typical-kit", ctype, data, soap=found[0], leaves=found[1:])


def make_body(name: str, *, smoke: bool = False) -> Body:
    """Build the named body (one of ``SIZES`` or ``RELAY_SHAPES``); the same name always
    gives the same bytes. The relay shapes carry the same content as ``typical``."""
    if name in RELAY_SHAPES:
        leaves = make_body("typical", smoke=smoke)
        typical = [("image/jpeg", "image_0.jpg", leaves.leaves[0]),
                   ("text/plain; charset=utf-8", "text_0.txt", leaves.leaves[1])]  # fmt: skip
        if name == "typical-kit":
            return _kit_body(typical)
        return build(name, typical, JAVAMAIL_OUTER, JAVAMAIL_INNER)
    rng = random.Random(f"flask-mm7-bench-{name}")
    scale = 1 / 100 if smoke else 1.0
    text = ("text/plain; charset=utf-8", "text_0.txt", _text(rng, 160))
    if name == "tiny":
        leaves = [text]
    elif name == "typical":
        leaves = [("image/jpeg", "image_0.jpg", rng.randbytes(60 * 1024)), text]
    elif name == "many":
        count = 5 if smoke else 99
        leaves = [
            ("image/gif", f"image_{i}.gif", rng.randbytes(rng.randrange(512, 3072)))
            for i in range(count)
        ] + [text]
    elif name in ("large", "huge"):
        total = int((5 if name == "large" else 50) * 1024 * 1024 * scale)
        image = 4096 if smoke else 60 * 1024
        leaves = [
            ("image/jpeg", "image_0.jpg", rng.randbytes(image)),
            ("video/mp4", "video_0.mp4", rng.randbytes(total - image - 2048)),
            text,
        ]
    else:
        raise ValueError(f"unknown body size {name!r}; pick one of {', '.join(SIZES)}")
    return build(name, leaves)


def make_cliff_body(mib: float, *, smoke: bool = False) -> Body:
    """The ``large`` shape with the MP4 sized so the whole body is exactly ``mib`` MiB (a
    hundredth of that with ``smoke``); the same ``mib`` always gives the same bytes."""
    rng = random.Random(f"flask-mm7-bench-cliff-{mib:g}")
    total = int(mib * 1024 * 1024 / (100 if smoke else 1))
    image = ("image/jpeg", "image_0.jpg", rng.randbytes(4096 if smoke else 60 * 1024))
    text = ("text/plain; charset=utf-8", "text_0.txt", _text(rng, 160))
    media = rng.randbytes(total)  # cut to size once the framing's size is known
    framing = build("cliff", [image, ("video/mp4", "video_0.mp4", b""), text]).size
    if framing >= total:
        raise ValueError(f"a {mib:g} MiB body cannot hold its framing ({framing} bytes)")
    body = build(f"cliff-{mib:g}", [image, ("video/mp4", "video_0.mp4", media[: total - framing]),
                                    text])  # fmt: skip
    assert body.size == total
    return body


def http_request_bytes(body: Body, path: str = "/mm7", host: str = "127.0.0.1") -> bytes:
    """The whole HTTP/1.1 request for ``body`` (used to write files for load generators)."""
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Type: {body.content_type}"]
    head += [f"{k}: {v}" for k, v in HTTP_HEADERS.items()]
    head.append(f"Content-Length: {body.size}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body.data
