"""Requests shaped like those of real relays and MMSCs (see the field notes, §3), end to end.

Each body is written byte by byte after a public sample's described quirks, so the parser meets
them as a relay would send them: 3GPP's annex examples as instantcom keeps them, a Nokia MMS
Center, a Serbian MMSC, VectorCore, Vibes, Skycore, Mbuni and OpenMarket.
"""

from __future__ import annotations

import base64
import typing as t

import pytest
from conftest import Harness
from helpers import parse_reply

NS = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\n\r\n--\x00\xff\xd9"


class Case(t.NamedTuple):
    body: bytes
    content_type: str
    headers: dict[str, str]
    #: what the handler must see: field name -> value (callables get the message)
    expect: dict[str, t.Any]


def _3gpp_annex() -> Case:
    # instantcom deliver-req-post.txt: LF-only, a space after every delimiter, no space after
    # "Content-Type:", start with slashes, a comment before DeliverReq, a padded
    # TransactionID, VASPID/VASID, 6.7.0 with REL-6-MM7-1-4, and an href that misses the part
    soap = (
        '<?xml version="1.0" ?>\n'
        f'<env:Envelope xmlns:env="{SOAP}">\n<env:Header>\n'
        f'<mm7:TransactionID xmlns:mm7="{NS}REL-6-MM7-1-4" env:mustUnderstand="1">\n'
        "\t\tvas00001-sub\n\t</mm7:TransactionID>\n</env:Header>\n<env:Body>\n"
        "<!-- a deliver request -->\n"
        f'<DeliverReq xmlns="{NS}REL-6-MM7-1-4">\n<MM7Version>6.7.0</MM7Version>\n'
        "<VASPID>TNN</VASPID><VASID>News</VASID>\n"
        "<LinkedID>wthr8391</LinkedID>\n"
        "<Sender><RFC2822Address>97254265781@OMMS.com</RFC2822Address></Sender>\n"
        "<Recipients><To><Number>7255441234</Number><RFC2822Address displayOnly='true'>"
        "7255442222@OMMS.com</RFC2822Address></To></Recipients>\n"
        "<TimeStamp>2002-04-02T10:04:00-05:00</TimeStamp><Priority>Normal</Priority>\n"
        "<Subject>Weather Forecast</Subject>\n"
        '<Content href="cid:SaturnPics-01020302@mms.com" allowAdaptations="true"/>\n'
        "</DeliverReq>\n</env:Body>\n</env:Envelope>\n"
    ).encode()
    body = (
        b"--NextPart_000_0028_01C19839.84698430 \n"
        b"Content-Type:text/xml; charset=UTF-8\n"
        b"Content-ID: </cmvt256/mm7-deliver>\n\n" + soap + b"\n"
        b"--NextPart_000_0028_01C19839.84698430 \n"
        b"Content-Type: text/plain\n"
        b"Content-ID: <SaturnPics-0102030@mms.com>\n\n"
        b"Saturn is cloudy today\n"
        b"--NextPart_000_0028_01C19839.84698430-- \n"
    )
    content_type = (
        'multipart/related; boundary="NextPart_000_0028_01C19839.84698430"; '
        'type=text/xml; start="</cmvt256/mm7-deliver>"'
    )
    return Case(
        body,
        content_type,
        {"SOAPAction": '"DeliverReq"'},
        {
            "transaction_id": "vas00001-sub",
            "mm7_version": "6.7.0",
            "sender": "97254265781@OMMS.com",
            "recipients": [("7255441234", "Number", "To"), ("7255442222@OMMS.com", "RFC2822Address", "To")],
            "subject": "Weather Forecast",
            "text": "Saturn is cloudy today",
            "defects": lambda msg: "Content href names no part" in msg.defects,
        },
    )


def _saturn_pics() -> Case:
    # instantcom deliver-req2.txt: an inner boundary with spaces, an inner part without
    # Content-ID, "image/gif;" with a trailing semicolon, a base64 image
    soap = (
        f'<env:Envelope xmlns:env="{SOAP}"><env:Header><mm7:TransactionID xmlns:mm7='
        f'"{NS}REL-6-MM7-1-4">T2</mm7:TransactionID></env:Header><env:Body>'
        f'<mm7:DeliverReq xmlns:mm7="{NS}REL-6-MM7-1-4"><mm7:MM7Version>6.8.0</mm7:MM7Version>'
        "<mm7:Sender><mm7:Number>123</mm7:Number></mm7:Sender>"
        '<mm7:Content href="cid:SaturnPics-01020302@mms.com"/></mm7:DeliverReq>'
        "</env:Body></env:Envelope>"
    ).encode()
    encoded = base64.encodebytes(GIF * 20)
    body = (
        b"--outer\r\nContent-Type: text/xml\r\nContent-ID: <soap>\r\n\r\n" + soap + b"\r\n"
        b"--outer\r\n"
        b'Content-Type: multipart/mixed; boundary="StoneSeparator xyz"\r\n'
        b"Content-ID: <SaturnPics-01020302@mms.com>\r\n\r\n"
        b"--StoneSeparator xyz\r\nContent-Type: image/gif;\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"\r\n"
        b"--StoneSeparator xyz\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        b"Saturn's rings\r\n"
        b"--StoneSeparator xyz--\r\n"
        b"--outer--\r\n"
    )
    return Case(
        body,
        'multipart/related; boundary=outer; type="text/xml"; start="<soap>"',
        {},
        {
            "attachments": [("image/gif", GIF * 20), ("text/plain", b"Saturn's rings")],
            "text": "Saturn's rings",
        },
    )


def _nokia_mc5() -> Case:
    # instantcom deliver-req3.txt: a real Nokia MMS Center MC5.0: a leading blank line, prefix
    # mm7p6a0, encodingStyle on TransactionID, /TYPE=PLMN, a nested multipart/related with
    # capitalised Type=/Start=, "Content-Id", BASE64, Name= and a Content-Location-only part,
    # whitespace inside <Content>
    ns = f"{NS}REL-6-MM7-1-0"
    soap = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:mm7p6a0="{ns}"><soap:Header>'
        '<mm7p6a0:TransactionID soap:encodingStyle="" soap:mustUnderstand="1">'
        "0710100925404980</mm7p6a0:TransactionID></soap:Header><soap:Body>"
        "<mm7p6a0:DeliverReq><mm7p6a0:MM7Version>6.3.0</mm7p6a0:MM7Version>"
        "<mm7p6a0:MMSRelayServerID>MMSC</mm7p6a0:MMSRelayServerID>"
        "<mm7p6a0:Sender><mm7p6a0:Number>385981234567/TYPE=PLMN</mm7p6a0:Number></mm7p6a0:Sender>"
        "<mm7p6a0:Recipients><mm7p6a0:To><mm7p6a0:ShortCode>12345</mm7p6a0:ShortCode>"
        "</mm7p6a0:To></mm7p6a0:Recipients>"
        "<mm7p6a0:TimeStamp>2010-01-07T10:09:25+01:00</mm7p6a0:TimeStamp>"
        '<mm7p6a0:Content href="cid:AAAA" allowAdaptations="true">\n  </mm7p6a0:Content>'
        "</mm7p6a0:DeliverReq></soap:Body></soap:Envelope>"
    ).encode()
    smil = b"<smil><body><par><img src='Bomb.gif'/></par></body></smil>"
    body = (
        b"\r\n--=_Part_1\r\nContent-Type: text/xml\r\nContent-Id: <SOAP>\r\n\r\n" + soap + b"\r\n"
        b"--=_Part_1\r\n"
        b'Content-Type: multipart/related; Type="application/smil"; Start="<AAAA>";\r\n'
        b'\tboundary="=_Part_2"\r\nContent-Id: <AAAA>\r\n\r\n'
        b"--=_Part_2\r\nContent-Type: application/smil; Name=mms.smil\r\n"
        b"Content-Id: <smil>\r\nContent-Transfer-Encoding: BASE64\r\n\r\n"
        + base64.encodebytes(smil)
        + b"\r\n--=_Part_2\r\nContent-Type: image/gif; Name=Bomb.gif\r\n"
        b"Content-Location: Bomb.gif\r\nContent-Transfer-Encoding: BASE64\r\n\r\n"
        + base64.encodebytes(GIF)
        + b"\r\n--=_Part_2--\r\n\r\n--=_Part_1--\r\n"
    )
    return Case(
        body,
        'multipart/related; type="text/xml"; boundary="=_Part_1"; start="<SOAP>"',
        {},
        {
            "mm7_version": "6.3.0",
            "namespace": ns,
            "sender": "385981234567",
            "recipients": [("12345", "ShortCode", "To")],
            "attachments": [("application/smil", smil), ("image/gif", GIF)],
            "filenames": ["mms.smil", "Bomb.gif"],
            "relay_server_id": "MMSC",
        },
    )


def _instantcom_output() -> Case:
    # instantcom deliver-req4.txt: no XML declaration, only MM7Version + Content, a nested
    # multipart/related with Start=/Type= and SMIL after the image, base64 with CRLF inside an
    # LF-framed body
    soap = (
        f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Header><TransactionID xmlns="{NS}'
        'REL-6-MM7-1-4">ic-1</TransactionID></soap:Header><soap:Body>'
        f'<DeliverReq xmlns="{NS}REL-6-MM7-1-4"><MM7Version>6.8.0</MM7Version>'
        '<Content href="cid:mm7-content"/></DeliverReq></soap:Body></soap:Envelope>'
    ).encode()
    encoded = base64.encodebytes(JPEG * 50).replace(b"\n", b"\r\n")
    body = (
        b"--==MM7-SOAP==abc\nContent-Type: text/xml; charset=utf-8\nContent-ID: <mm7-soap>\n\n"
        + soap
        + b"\n--==MM7-SOAP==abc\n"
        b'Content-Type: multipart/related; Start=<img>; Type=image/jpeg; boundary="==inner=="\n'
        b"Content-ID: <mm7-content>\n\n"
        b"--==inner==\nContent-Type: image/jpeg\nContent-ID: <img>\n"
        b"Content-Transfer-Encoding: base64\n\n" + encoded + b"\n"
        b"--==inner==\nContent-Type: application/smil\nContent-ID: <smil>\n\n<smil/>\n"
        b"--==inner==--\n--==MM7-SOAP==abc--\n"
    )
    return Case(
        body,
        'multipart/related; type="text/xml"; start="<mm7-soap>"; boundary="==MM7-SOAP==abc"',
        {},
        {
            "sender": None,
            "attachments": [("image/jpeg", JPEG * 50), ("application/smil", b"<smil/>")],
        },
    )


def _serbian_mmsc() -> Case:
    # instantcom deliver-req5.txt: CRLF, no start, a SOAP part without Content-ID, the envelope
    # on one line with SOAP-ENV/mm7 prefixes, mm7:href "cid: content_15", a bare Content-ID,
    # a folded Content-Type header (its tab kept), raw 8-bit JPEG without Content-Transfer-Encoding
    ns = f"{NS}REL-6-MM7-1-0"
    soap = (
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP}" xmlns:mm7="{ns}"><SOAP-ENV:Header>'
        '<mm7:TransactionID SOAP-ENV:mustUnderstand="1">xmmc1-77</mm7:TransactionID>'
        "</SOAP-ENV:Header><SOAP-ENV:Body><mm7:DeliverReq><mm7:MM7Version>5.3.0</mm7:MM7Version>"
        "<mm7:MMSRelayServerID>xmmc1</mm7:MMSRelayServerID><mm7:Sender><mm7:Number>+381641234567"
        "</mm7:Number></mm7:Sender><mm7:Recipients><mm7:To><mm7:ShortCode>1234</mm7:ShortCode>"
        "</mm7:To></mm7:Recipients><mm7:TimeStamp>2011-05-10T13:22:01.123+02:00</mm7:TimeStamp>"
        '<mm7:Content mm7:href="cid: content_15"/></mm7:DeliverReq></SOAP-ENV:Body>'
        "</SOAP-ENV:Envelope>"
    ).encode()
    body = (
        b"------=_Part_5_1234.5678\r\nContent-Type: text/xml; charset=utf-8\r\n\r\n" + soap + b"\r\n"
        b"------=_Part_5_1234.5678\r\nContent-Type: image/jpeg\r\nContent-ID: content_15\r\n\r\n"
        + JPEG * 30
        + b"\r\n------=_Part_5_1234.5678--\r\n"
    )
    return Case(
        body,
        # folded on the wire; the HTTP server hands it over unfolded, the tab left in place
        'multipart/related;\tboundary="----=_Part_5_1234.5678"',
        {},
        {
            "sender": "+381641234567",
            "timestamp": "2011-05-10T11:22:01.123000+00:00",
            "attachments": [("image/jpeg", JPEG * 30)],
            "defects": lambda msg: "Content href names no part" not in msg.defects,
        },
    )


def _vectorcore() -> Case:
    # VectorCore MMSC: boundary only, a root without Content-ID, flat attachments, children in
    # no namespace, SenderAddress instead of Sender, 5.3.0 with REL-5-MM7-1-0
    ns = f"{NS}REL-5-MM7-1-0"
    soap = (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}" '
        f'xmlns:mm7="{ns}"><soapenv:Header><mm7:TransactionID>vc-9</mm7:TransactionID>'
        "</soapenv:Header><soapenv:Body><mm7:DeliverReq><MM7Version>5.3.0</MM7Version>"
        "<MessageID>m-1</MessageID><SenderAddress><Number>15551234567</Number></SenderAddress>"
        "<Recipients><To><Number>15557654321</Number></To></Recipients>"
        "<Subject>Hi</Subject>"
        '<Content href="cid:message-content"/></mm7:DeliverReq></soapenv:Body>'
        "</soapenv:Envelope>"
    ).encode()
    body = (
        b"--vc\r\nContent-Type: text/xml; charset=utf-8\r\n\r\n" + soap + b"\r\n"
        b"--vc\r\nContent-Type: text/plain; charset=utf-8\r\nContent-ID: <part-1>\r\n\r\n"
        b"hello \xe2\x98\x95\r\n"
        b"--vc\r\nContent-Type: image/gif\r\nContent-ID: <part-2>\r\n\r\n" + GIF + b"\r\n--vc--\r\n"
    )
    return Case(
        body,
        "multipart/related; boundary=vc",
        {},
        {
            "namespace": ns,
            "sender": "15551234567",
            "subject": "Hi",
            "text": "hello \u2615",
            "attachments": [("text/plain", "hello \u2615".encode()), ("image/gif", GIF)],
        },
    )


def _vibes_report() -> Case:
    # Vibes: no start, "Content-Id:" without brackets, 8bit, and an XML declaration claiming
    # UTF-16 over UTF-8 bytes; a delivery report in REL-5-MM7-1-2 with 5.3.0
    ns = f"{NS}REL-5-MM7-1-2"
    soap = (
        '<?xml version="1.0" encoding="utf-16"?>'
        f'<env:Envelope xmlns:env="{SOAP}"><env:Header><TransactionID xmlns="{ns}">vb-3'
        f'</TransactionID></env:Header><env:Body><DeliveryReportReq xmlns="{ns}">'
        "<MM7Version>5.3.0</MM7Version><MessageID>041234</MessageID>"
        "<Recipient><Number>12125550123</Number></Recipient><Sender><ShortCode>222111</ShortCode>"
        "</Sender><Date>2020-01-02T03:04:05Z</Date><MMStatus>Retrieved</MMStatus>"
        "<StatusText>Délivré</StatusText></DeliveryReportReq></env:Body></env:Envelope>"
    ).encode()
    body = (
        b"--vibes\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Id: "
        b"sun-soap-12@local\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + soap + b"\r\n--vibes--\r\n"
    )
    return Case(
        body,
        'multipart/related; type="text/xml"; boundary="vibes"',
        {},
        {"namespace": ns, "message_id": "041234", "mm_status": "Retrieved", "status_text": "Délivré"},
    )


def _skycore_report() -> Case:
    # Skycore's DR example: multipart/related with no boundary over a bare XML body
    ns = f"{NS}REL-6-MM7-1-4"
    soap = (
        f'<soap-env:Envelope xmlns:soap-env="{SOAP}"><soap-env:Header>'
        f'<mm7:TransactionID xmlns:mm7="{ns}">sky-1</mm7:TransactionID></soap-env:Header>'
        f'<soap-env:Body><mm7:DeliveryReportReq xmlns:mm7="{ns}"><mm7:MM7Version>6.8.0'
        "</mm7:MM7Version><mm7:MessageID>m9</mm7:MessageID><mm7:Recipient><mm7:Number>1"
        "</mm7:Number></mm7:Recipient><mm7:Sender><mm7:ShortCode>2</mm7:ShortCode></mm7:Sender>"
        "<mm7:Date>2020-01-02T03:04:05Z</mm7:Date><mm7:MMStatus>Expired</mm7:MMStatus>"
        "</mm7:DeliveryReportReq></soap-env:Body></soap-env:Envelope>"
    ).encode()
    return Case(soap, 'multipart/related; type="text/xml";', {}, {"mm_status": "Expired"})


def _openmarket_report() -> Case:
    # OpenMarket's delivery report: bare text/xml, ns1/ns3, the UAProf header below 6.8
    ns = f"{NS}REL-5-MM7-1-0"
    soap = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<ns1:Envelope xmlns:ns1="{SOAP}" xmlns:ns3="{ns}"><ns1:Header>'
        '<ns3:TransactionID ns1:mustUnderstand="1">om-7</ns3:TransactionID></ns1:Header>'
        "<ns1:Body><ns3:DeliveryReportReq><ns3:MM7Version>5.3.0</ns3:MM7Version>"
        "<ns3:MessageID>041234</ns3:MessageID><ns3:Recipient><ns3:Number>12125550123"
        "</ns3:Number></ns3:Recipient><ns3:Sender><ns3:ShortCode>222111</ns3:ShortCode>"
        "</ns3:Sender><ns3:Date>2014-04-14T16:15:23.414Z</ns3:Date>"
        "<ns3:MMStatus>Retrieved</ns3:MMStatus></ns3:DeliveryReportReq></ns1:Body></ns1:Envelope>"
    ).encode()
    return Case(
        soap,
        "text/xml",
        {"X-OpenMarket-Carrier-Id": "474", "UAProf": "Samsung Galaxy", "SOAPAction": '""'},
        {"message_id": "041234", "mm_status": "Retrieved", "recipient": "12125550123"},
    )


def _mbuni() -> Case:
    # Mbuni's Ruby sender: SOAP-ENV prefix, a single-quoted declaration, start with slashes,
    # Comcel-style addresses
    ns = f"{NS}REL-5-MM7-1-2"
    soap = (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP}"><SOAP-ENV:Header>'
        f'<mm7:TransactionID xmlns:mm7="{ns}" SOAP-ENV:mustUnderstand="1">mb-1</mm7:TransactionID>'
        f'</SOAP-ENV:Header><SOAP-ENV:Body><mm7:DeliverReq xmlns:mm7="{ns}">'
        "<mm7:MM7Version>5.3.0</mm7:MM7Version><mm7:Sender><mm7:Number>"
        "+573001234567/TYPE=PLMN@mms.comcel.net</mm7:Number></mm7:Sender>"
        '<mm7:Content href="cid:c"/></mm7:DeliverReq></SOAP-ENV:Body></SOAP-ENV:Envelope>'
    ).encode()
    body = (
        b"--mbuni\r\nContent-Type: text/xml\r\nContent-ID: </soap-env/start>\r\n\r\n" + soap + b"\r\n"
        b"--mbuni\r\nContent-Type: text/plain\r\nContent-ID: <c>\r\n\r\nhola\r\n--mbuni--\r\n"
    )
    return Case(
        body,
        'multipart/related; type="text/xml"; start="</soap-env/start>"; boundary=mbuni',
        {},
        {"sender": "+573001234567", "text": "hola"},
    )


CASES = {
    "3gpp-annex": _3gpp_annex,
    "saturn-pics": _saturn_pics,
    "nokia-mc5": _nokia_mc5,
    "instantcom-output": _instantcom_output,
    "serbian-mmsc": _serbian_mmsc,
    "vectorcore": _vectorcore,
    "vibes-report": _vibes_report,
    "skycore-report": _skycore_report,
    "openmarket-report": _openmarket_report,
    "mbuni": _mbuni,
}


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_relay_requests_are_delivered(receiver: Harness, make: t.Callable[[], Case]) -> None:
    case = make()
    seen: dict[str, t.Any] = {}

    def handler(msg: t.Any) -> None:
        # read everything inside the handler: attachments are released when it returns
        seen["msg"] = msg
        seen["attachments"] = [(a.mimetype, a.read()) for a in getattr(msg, "attachments", [])]
        seen["filenames"] = [a.filename for a in getattr(msg, "attachments", [])]
        seen["text"] = getattr(msg, "text", None)

    receiver.behaviour = handler
    response = receiver.post(case.body, case.content_type, headers=case.headers)
    reply = parse_reply(response.data)
    assert response.status_code == 200, reply
    assert reply["StatusCode"] == "1000"
    msg = seen["msg"]
    assert reply["TransactionID"] == msg.transaction_id
    assert (reply["namespace"], reply["MM7Version"]) == (msg.namespace, msg.mm7_version)
    for name, wanted in case.expect.items():
        if callable(wanted):
            assert wanted(msg), name
        elif name in ("attachments", "filenames", "text"):
            assert seen[name] == wanted, name
        elif name == "recipients":
            assert [(r.value, r.type, r.role) for r in msg.recipients] == wanted
        elif name == "timestamp":
            assert msg.timestamp.isoformat() == wanted
        elif name in ("sender", "recipient"):
            value = getattr(msg, name)
            assert (str(value) if value is not None else None) == wanted, name
        else:
            assert getattr(msg, name) == wanted, name
