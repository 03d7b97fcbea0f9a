"""``read_envelope`` and ``xmltree.fromstring`` against ``defusedxml.ElementTree``.

Envelopes are generated with any prefixes (or default namespaces), REL-5 and REL-6 MM7
namespaces, whitespace, comments, processing instructions, CDATA, character references and
several encodings. The oracle is defusedxml's own ``fromstring`` plus a plain walk by local
name, written here from TS 23.140's layout (Envelope/Header/TransactionID,
Envelope/Body/<operation>/MM7Version); both must also refuse the same DTD and entity attacks.
"""

from __future__ import annotations

import typing as t
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DefusedET
import pytest
from defusedxml import DefusedXmlException
from helpers import parse_reply
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_mm7 import _soap as soap
from flask_mm7 import _xmltree as xmltree
from flask_mm7 import testing
from flask_mm7._errors import MalformedRequest

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
ARCHIVE = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/"
NAMESPACES = [
    ARCHIVE + v for v in ("REL-5-MM7-1-0", "REL-5-MM7-1-2", "REL-6-MM7-1-0", "REL-6-MM7-1-4")
]
OPERATIONS = ["DeliverReq", "DeliveryReportReq", "ReadReplyReq"]
#: whitespace the reader trims around a text value (XML's S; U+00A0 is trimmed by ours only)
BLANKS = " \t\r\n"

prefixes = st.one_of(
    st.just(""),
    st.sampled_from(["env", "soap", "SOAP-ENV", "S", "mm7", "ns1", "m"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True).filter(
        lambda p: not p.lower().startswith("xml")
    ),
)
blanks = st.text(alphabet=BLANKS, max_size=3)
filler = st.sampled_from(["", "<!-- c -->", "<?pi data?>", "\n  ", "<!--x--> "])


@st.composite
def text_value(draw: st.DrawFn) -> tuple[str, str]:
    """(XML for a text value, the value a reader gets): CDATA, references, comments inside."""
    value = draw(st.text(alphabet="AZaz09-_.:@ <>&\"'é€", min_size=1, max_size=16))
    value = value.strip(BLANKS) or "x"
    pieces = []
    for ch in value:
        style = draw(st.sampled_from(["plain", "plain", "ref", "cdata"]))
        # (CDATA only for Latin-1: an ISO-8859-1 document writes the rest as references)
        if style == "cdata" and ch not in "]" and ord(ch) < 256:
            pieces.append(f"<![CDATA[{ch}]]>")
        elif style == "ref" or ch in "<&":
            pieces.append(
                f"&#{ord(ch)};" if ch not in "<&>" else {"<": "&lt;", "&": "&amp;", ">": "&gt;"}[ch]
            )
        else:
            pieces.append(ch)
        if draw(st.integers(0, 9)) == 0:
            pieces.append("<!-- inside -->")
    return draw(blanks) + "".join(pieces) + draw(blanks), value


class Generated(t.NamedTuple):
    data: bytes
    transaction_id: str
    operation: str
    namespace: str
    version: str | None


@st.composite
def envelopes(draw: st.DrawFn) -> Generated:
    s = draw(prefixes)
    p = draw(prefixes.filter(lambda x: x != s or x == ""))
    namespace = draw(st.sampled_from(NAMESPACES))
    operation = draw(st.sampled_from(OPERATIONS))
    sq = f"{s}:" if s else ""
    pq = f"{p}:" if p else ""
    # a default namespace can only be one of the two: the SOAP one if the SOAP prefix is empty
    if not s:
        soap_decl, mm7_decl = f'xmlns="{SOAP}"', f'xmlns:{p or "mm7"}="{namespace}"'
        pq = f"{p or 'mm7'}:"
    else:
        soap_decl = f'xmlns:{s}="{SOAP}"'
        mm7_decl = f'xmlns:{p}="{namespace}"' if p else f'xmlns="{namespace}"'
    # declarations on the root or on the elements that use them
    on_root = draw(st.booleans())
    tid_xml, tid = draw(text_value())
    version = draw(st.one_of(st.none(), st.sampled_from(["5.3.0", "6.8.0", "5.10.0"])))
    version_xml = ""
    if version is not None:
        version_xml = f"<{pq}MM7Version>{draw(blanks)}{version}{draw(blanks)}</{pq}MM7Version>"
    f = lambda: draw(filler)  # noqa: E731
    local_decl = "" if on_root else " " + mm7_decl
    xml = (
        f"<{sq}Envelope {soap_decl}{' ' + mm7_decl if on_root else ''}>{f()}"
        f'<{sq}Header>{f()}<{pq}TransactionID{local_decl} {sq}mustUnderstand="1">{tid_xml}'
        f"</{pq}TransactionID>{f()}</{sq}Header>{f()}"
        f"<{sq}Body>{f()}<{pq}{operation}{local_decl}>{f()}{version_xml}{f()}"
        f"<{pq}Sender><{pq}Number>1</{pq}Number></{pq}Sender></{pq}{operation}>{f()}"
        f"</{sq}Body>{f()}</{sq}Envelope>"
    )
    encoding = draw(st.sampled_from(["utf-8", "UTF-8", "utf-16", "iso-8859-1", None]))
    if encoding is None:
        data = xml.encode()
    else:
        data = f'<?xml version="1.0" encoding="{encoding}"?>{draw(blanks)}{xml}'.encode(
            "utf-16" if encoding == "utf-16" else encoding, "xmlcharrefreplace"
        )
    return Generated(data, tid, operation, namespace, version)


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _only(parent: Element, name: str) -> Element:
    found = [e for e in parent if _local(e.tag) == name]
    assert len(found) == 1, (name, found)
    return found[0]


def oracle(data: bytes) -> tuple[str, str, str, str | None]:
    """(TransactionID, operation, namespace, MM7Version) by defusedxml and a plain walk."""
    root = DefusedET.fromstring(data, forbid_dtd=True)
    assert root.tag == f"{{{SOAP}}}Envelope"
    tid = _only(_only(root, "Header"), "TransactionID")
    operation = next(e for e in _only(root, "Body") if isinstance(e.tag, str))
    versions = [e for e in operation if _local(e.tag) == "MM7Version"]
    return (
        "".join(tid.itertext()).strip(BLANKS),
        _local(operation.tag),
        operation.tag[1:].partition("}")[0],
        versions[0].text.strip(BLANKS) if versions and versions[0].text else None,
    )


def same_tree(a: Element, b: Element) -> None:
    assert (a.tag, a.attrib, a.text, a.tail) == (b.tag, b.attrib, b.text, b.tail)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        same_tree(x, y)


@settings(max_examples=600, deadline=None)
@given(envelopes())
def test_read_envelope_extracts_what_defusedxml_and_a_plain_walk_find(case: Generated) -> None:
    expected = oracle(case.data)
    assert expected == (case.transaction_id, case.operation, case.namespace, case.version)
    if case.version is None:  # refused, echoing what the Fault needs
        with pytest.raises(MalformedRequest, match="No MM7Version") as refused:
            soap.read_envelope(case.data)
        assert (refused.value.transaction_id, refused.value.namespace) == (
            case.transaction_id,
            case.namespace,
        )
    else:
        parsed = soap.read_envelope(case.data)
        found = (parsed.transaction_id, parsed.operation, parsed.namespace, parsed.mm7_version)
        assert found == expected
    same_tree(xmltree.fromstring(case.data), DefusedET.fromstring(case.data, forbid_dtd=True))


ATTACKS = {
    "billion laughs": '<!DOCTYPE e [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>',
    "internal entity": '<!DOCTYPE e [<!ENTITY t "TID-1">]>',
    "external entity": '<!DOCTYPE e [<!ENTITY t SYSTEM "file:///etc/passwd">]>',
    "parameter entity": '<!DOCTYPE e [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>',
    "external DTD": '<!DOCTYPE e SYSTEM "http://127.0.0.1:9/x.dtd">',
    "public DTD": '<!DOCTYPE e PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:9/x.dtd">',
    "empty DTD": "<!DOCTYPE e>",
    "element declaration": "<!DOCTYPE e [<!ELEMENT e ANY>]>",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", None])
@pytest.mark.parametrize("reference", ["", "&t;", "&b;"])
def test_both_refuse_the_same_dtd_and_entity_attacks(
    attack: str, encoding: str | None, reference: str
) -> None:
    xml = (
        f'{ATTACKS[attack]}\n<env:Envelope xmlns:env="{SOAP}" xmlns:mm7="{NAMESPACES[3]}">'
        f"<env:Header><mm7:TransactionID>TID{reference}</mm7:TransactionID></env:Header>"
        "<env:Body><mm7:DeliverReq/></env:Body></env:Envelope>"
    )
    if encoding is None:
        data = xml.encode()
    else:
        data = f'<?xml version="1.0" encoding="{encoding}"?>\n{xml}'.encode(encoding)
    with pytest.raises(DefusedXmlException):
        DefusedET.fromstring(data, forbid_dtd=True)
    with pytest.raises(DefusedXmlException):
        xmltree.fromstring(data)
    with pytest.raises(MalformedRequest):
        soap.read_envelope(data)


words = st.text(alphabet="AZaz09 -_.<>&\"'é€", min_size=1, max_size=20).map(str.strip).filter(bool)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([*OPERATIONS, "Fault"]),
    words,
    st.sampled_from(NAMESPACES),
    st.integers(1000, 4999),
    words,
)
def test_the_tests_reply_reader_and_the_public_one_agree(
    operation: str, tid: str, namespace: str, code: int, text: str
) -> None:
    """tests/helpers.parse_reply (a plain defusedxml walk) and flask_mm7.testing.parse_reply
    read the same fields from every reply the library writes."""
    if operation == "Fault":
        body = soap.write_fault(
            fault_code="Server", fault_string=text, status_code=code, status_text=text,
            transaction_id=tid, namespace=namespace, mm7_version="6.8.0",
        )  # fmt: skip
    else:
        body = soap.write_response(
            operation, transaction_id=tid, namespace=namespace, mm7_version="6.8.0",
            status_code=code, status_text=text,
        )  # fmt: skip
    plain = parse_reply(body)
    public = testing.parse_reply(200, {}, body)
    assert public.error is None
    assert (plain["operation"], plain["namespace"], plain["TransactionID"]) == (
        public.operation, public.namespace, public.transaction_id,
    )  # fmt: skip
    assert (plain["StatusCode"], plain["StatusText"], plain["MM7Version"]) == (
        str(public.status_code), public.status_text, public.mm7_version,
    )  # fmt: skip
    assert (plain.get("faultcode"), plain.get("faultstring")) == (
        public.fault_code, public.fault_string,
    )  # fmt: skip
    assert (plain["TransactionID"], plain["StatusText"]) == (tid, text)
