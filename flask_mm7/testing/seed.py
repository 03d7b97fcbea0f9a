"""The aggregator's printed "Example request including MIME parts", byte for byte."""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:  # pragma: no cover
    pass

from .requests import MM7Request

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
