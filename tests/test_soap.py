"""Reading envelopes (defused, tolerant) and writing replies and Faults."""

from __future__ import annotations

import defusedxml.ElementTree as DefusedET
import pytest
from helpers import NS5, NS6, SOAP, deliver_inner, envelope, parse_reply
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_mm7 import _soap as soap
from flask_mm7._errors import MalformedRequest, UnsupportedOperation, VersionMismatch


@pytest.mark.parametrize(
    ("soap_prefix", "mm7_prefix"),
    [("env", "mm7"), ("SOAP-ENV", "mm7"), ("ns1", "ns3"), ("soapenv", "mm7p6a0"), ("env", "")],
    ids=["env-mm7", "SOAP-ENV", "ns1-ns3", "nokia", "default-ns"],
)
def test_any_prefix(soap_prefix: str, mm7_prefix: str) -> None:
    data = envelope(soap_prefix=soap_prefix, mm7_prefix=mm7_prefix)
    parsed = soap.read_envelope(data)
    assert (parsed.transaction_id, parsed.operation) == ("TID-1", "DeliverReq")
    assert (parsed.namespace, parsed.mm7_version) == (NS6, "6.8.0")


def test_unqualified_children_take_the_transaction_id_namespace() -> None:
    # VectorCore: only the operation and TransactionID are prefixed... or only TransactionID
    data = (
        f'<e:Envelope xmlns:e="{SOAP}" xmlns:mm7="{NS5}"><e:Header>'
        "<mm7:TransactionID>\n\t  T-9 \u00a0\n</mm7:TransactionID></e:Header><e:Body>"
        "<DeliverReq><MM7Version>5.3.0</MM7Version></DeliverReq></e:Body></e:Envelope>"
    ).encode()
    parsed = soap.read_envelope(data)
    assert (parsed.transaction_id, parsed.namespace, parsed.mm7_version) == ("T-9", NS5, "5.3.0")


def test_comments_and_processing_instructions_are_ignored() -> None:
    data = envelope(deliver_inner()).replace(b"<env:Body>", b"<env:Body><!-- hi --><?pi x?>")
    assert soap.read_envelope(data).operation == "DeliverReq"


def test_split_values_cdata_and_character_references() -> None:
    data = envelope(version="6.<!-- x -->8<![CDATA[.]]>&#48;", transaction_id="&#49;2")
    parsed = soap.read_envelope(data)
    assert (parsed.transaction_id, parsed.mm7_version) == ("12", "6.8.0")


@pytest.mark.parametrize(
    ("declaration", "charset"),
    [
        ('<?xml version="1.0" encoding="utf-16"?>', None),  # Vibes: a lie over UTF-8 bytes
        ('<?xml version="1.0" encoding="utf-16"?>', "utf-8"),
        ("<?xml version='1.0' encoding='ISO-8859-1'?>", "utf-8"),  # MIME charset wins
        ("", "utf-8"),
        ("", None),
    ],
)
def test_lying_or_missing_declaration(declaration: str, charset: str | None) -> None:
    data = envelope(
        deliver_inner(extra="<mm7:Subject>Caf\u00e9 \u2615</mm7:Subject>"), declaration=declaration
    )
    parsed = soap.read_envelope(data, charset)
    subject = soap.text_of(soap.child(parsed.element, "Subject"))
    assert subject == "Caf\u00e9 \u2615"


def test_latin1_charset_from_mime() -> None:
    text = envelope(deliver_inner(extra="<mm7:Subject>Caf\u00e9</mm7:Subject>"), declaration="")
    data = text.decode().encode("latin-1")
    parsed = soap.read_envelope(data, "iso-8859-1")
    assert soap.text_of(soap.child(parsed.element, "Subject")) == "Caf\u00e9"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(
            b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>',
            id="billion-laughs",
        ),
        pytest.param(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', id="xxe"),
        pytest.param(b'<!DOCTYPE x SYSTEM "http://127.0.0.1:1/x.dtd"><x/>', id="external-dtd"),
        pytest.param(b"<!DOCTYPE x><x/>", id="doctype"),
        pytest.param(b"<a><b></a>", id="not-well-formed"),
        pytest.param(b"", id="empty"),
        pytest.param(b"<a/><b/>", id="two-roots"),
        pytest.param(b"<a>\x00</a>", id="nul"),
        pytest.param(b"<a>\xff\xfe\xfd</a>", id="invalid-utf8"),
    ],
)
def test_hostile_or_broken_xml_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedRequest) as info:
        soap.read_envelope(data)
    assert info.value.status_code == 2007
    assert "passwd" not in str(info.value)


@pytest.mark.parametrize(("depth", "ok"), [(63, True), (64, True), (65, False)])
def test_depth_limit(depth: int, ok: bool) -> None:
    # Envelope, Body and DeliverReq are three levels; the rest is padding inside DeliverReq
    padding = depth - 3
    inner = "<x>" * padding + "</x>" * padding
    data = envelope(inner)
    if ok:
        soap.read_envelope(data, max_depth=64)
    else:
        with pytest.raises(MalformedRequest):
            soap.read_envelope(data, max_depth=64)


def test_very_deep_nesting_is_refused_without_recursion() -> None:
    data = envelope("<x>" * 100_000 + "</x>" * 100_000)
    with pytest.raises(MalformedRequest):
        soap.read_envelope(data, max_size=len(data))


def test_size_cap() -> None:
    data = envelope()
    soap.read_envelope(data, max_size=len(data))
    with pytest.raises(MalformedRequest):
        soap.read_envelope(data, max_size=len(data) - 1)


def test_soap_1_2_and_non_envelope_roots_are_version_mismatch() -> None:
    soap12 = envelope().replace(SOAP.encode(), b"http://www.w3.org/2003/05/soap-envelope")
    for data in (soap12, b"<Envelopes/>"):
        with pytest.raises(VersionMismatch) as info:
            soap.read_envelope(data)
        assert info.value.fault_code == "VersionMismatch"


@pytest.mark.parametrize(
    "body",
    ["", "<mm7:SubmitReq/>", "<mm7:DeliverReq/><mm7:DeliverReq/>"],
    ids=["empty-body", "submit", "two-operations"],
)
def test_unsupported_operations_keep_the_transaction_id(body: str) -> None:
    data = envelope("").replace(
        b"<mm7:DeliverReq><mm7:MM7Version>6.8.0</mm7:MM7Version></mm7:DeliverReq>", body.encode()
    )
    with pytest.raises(UnsupportedOperation) as info:
        soap.read_envelope(data)
    assert (info.value.status_code, info.value.transaction_id) == (4003, "TID-1")


def test_missing_or_huge_transaction_id() -> None:
    with pytest.raises(MalformedRequest):
        soap.read_envelope(envelope(transaction_id=" "))
    with pytest.raises(MalformedRequest):
        soap.read_envelope(envelope(transaction_id="x" * 1025))
    assert soap.read_envelope(envelope(transaction_id="x" * 1024)).transaction_id == "x" * 1024


@pytest.mark.parametrize("operation", ["DeliverReq", "DeliveryReportReq", "ReadReplyReq"])
def test_write_response_shape(operation: str) -> None:
    body = soap.write_response(
        operation,
        transaction_id="T<&>\x01",
        namespace=NS5,
        mm7_version="5.3.0",
        status_code=1000,
        status_text="Fine & <dandy>",
    )
    reply = parse_reply(body)
    assert reply["operation"] == soap.OPERATIONS[operation]
    assert reply["namespace"] == NS5
    assert (reply["TransactionID"], reply["MM7Version"]) == ("T<&>", "5.3.0")
    assert (reply["StatusCode"], reply["StatusText"]) == ("1000", "Fine & <dandy>")
    assert b'mustUnderstand="1"' in body
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


def test_write_response_template_is_per_operation_namespace_and_version() -> None:
    """The reply template is built once per (operation, namespace, version): replies in turn
    to requests in other namespaces and versions each echo their own, and a sender's values
    holding template-like text (braces, percent signs, NUL) are echoed as text."""
    odd_namespace = "urn:x%s\x00"  # expat refuses braces in a namespace
    cases = [
        ("DeliverReq", NS5, "5.3.0", "A"),
        ("DeliverReq", NS6, "6.8.0", "B"),
        ("ReadReplyReq", NS6, "6.8.0", "C{}"),
        ("DeliverReq", NS5, "5.3.0", "D\x00%s"),
        ("DeliverReq", odd_namespace, "{v}\x00", "E"),
    ]
    for _ in range(2):  # the second round answers from the templates built by the first
        for operation, namespace, version, tid in cases:
            reply = parse_reply(
                soap.write_response(
                    operation,
                    transaction_id=tid,
                    namespace=namespace,
                    mm7_version=version,
                    status_code=2000 + len(tid),
                    status_text=f"text {tid}",
                )
            )
            clean = tid.replace("\x00", "")
            assert reply["operation"] == soap.OPERATIONS[operation]
            assert reply["namespace"] == namespace.replace("\x00", "")
            assert reply["MM7Version"] == version.replace("\x00", "")
            assert (reply["TransactionID"], reply["StatusCode"], reply["StatusText"]) == (
                clean,
                str(2000 + len(tid)),
                f"text {clean}",
            )


def test_write_fault_shape() -> None:
    body = soap.write_fault(
        fault_code="Client",
        fault_string="Message format corrupt",
        status_code=2007,
        status_text="Message format corrupt",
        transaction_id="T1",
        namespace=NS5,
    )
    reply = parse_reply(body)
    assert (reply["faultcode"], reply["faultstring"]) == (
        "soap-env:Client",
        "Message format corrupt",
    )
    assert (reply["operation"], reply["namespace"]) == ("Fault", NS5)
    assert "VASPErrorRsp" in reply  # the detail's element
    assert (reply["MM7Version"], reply["StatusCode"], reply["TransactionID"]) == (
        "5.3.0",
        "2007",
        "T1",
    )
    no_id = parse_reply(
        soap.write_fault(fault_code="Server", fault_string="x", status_code=3000, status_text="x")
    )
    assert "TransactionID" not in no_id and no_id["MM7Version"] == "6.8.0"


def test_whitespace_before_the_xml_declaration() -> None:
    parsed = soap.read_envelope(b"\r\n\r\n  " + envelope())
    assert parsed.transaction_id == "TID-1"


def test_transaction_id_outside_the_header_is_still_found() -> None:
    data = envelope().replace(b"<env:Header>", b"<env:Header><mm7:Other/>")
    moved = data.replace(
        b'<mm7:TransactionID env:mustUnderstand="1">TID-1</mm7:TransactionID>', b""
    ).replace(b"<mm7:MM7Version>", b"<mm7:TransactionID>TID-9</mm7:TransactionID><mm7:MM7Version>")
    assert b"TID-1" not in moved
    assert soap.read_envelope(moved).transaction_id == "TID-9"


def test_folded_content_type_keeps_its_boundary() -> None:
    from flask_mm7._headers import parse_options

    folded = 'multipart/related; start="soap-start"; type="text/xml";\r\n boundary="----=_Part_1"'
    assert parse_options(folded)[1] == {
        "start": "soap-start",
        "type": "text/xml",
        "boundary": "----=_Part_1",
    }


# -- echoed values read back exactly ------------------------------------------------------------

#: characters XML 1.0 carries, the whitespace a parser rewrites among them
_XML_CHARS = st.one_of(
    st.sampled_from("\t\n\r &<>]\"'\u00a0\u0085\u2028"),
    st.characters(blacklist_categories=("Cs",), min_codepoint=0x20, max_codepoint=0xFFFD),
)


def _reply_fields(body: bytes) -> dict[str, str | None]:
    """Each element's text exactly as a parser reads it (nothing trimmed), by local name."""
    return parse_reply(body, trimmed=False)


@pytest.mark.parametrize(
    "written", ["a&#13;b", "a&#13;&#10;b", "a&#9;&#13;b", "&#13;a&#13;&#13;b&#13;"]
)
def test_transaction_id_with_a_carriage_return_is_echoed_exactly(written: str) -> None:
    parsed = soap.read_envelope(envelope(transaction_id=written))
    assert "\r" in parsed.transaction_id
    for body in (
        soap.write_response(
            parsed.operation,
            transaction_id=parsed.transaction_id,
            namespace=parsed.namespace,
            mm7_version="6.8.0",
            status_code=1000,
            status_text="Success",
        ),
        soap.write_fault(
            fault_code="Client",
            fault_string="x",
            status_code=2007,
            status_text="x",
            transaction_id=parsed.transaction_id,
        ),
    ):
        assert _reply_fields(body)["TransactionID"] == parsed.transaction_id


@settings(max_examples=400, deadline=None)
@given(st.text(_XML_CHARS, max_size=60).filter(lambda v: v.strip(" \t\r\n\u00a0")))
def test_every_transaction_id_is_echoed_as_read(value: str) -> None:
    # sent as character references, so the request carries every character as it is
    written = "".join(f"&#{ord(c)};" for c in value)
    parsed = soap.read_envelope(envelope(transaction_id=written))
    body = soap.write_response(
        parsed.operation,
        transaction_id=parsed.transaction_id,
        namespace=parsed.namespace,
        mm7_version="6.8.0",
        status_code=1000,
        status_text="Success",
    )
    assert _reply_fields(body)["TransactionID"] == parsed.transaction_id


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(_XML_CHARS, max_size=80),
    version=st.text(_XML_CHARS, max_size=20),
    # as read from a request: expat refuses a "}" (its name separator) and an empty URI
    namespace=st.text(_XML_CHARS, min_size=1, max_size=40).filter(lambda v: "}" not in v),
)
def test_status_text_version_and_namespace_are_echoed_exactly(
    text: str, version: str, namespace: str
) -> None:
    response = soap.write_response(
        "DeliverReq",
        transaction_id="T",
        namespace=namespace,
        mm7_version=version,
        status_code=2004,
        status_text=text,
    )
    fields = _reply_fields(response)
    assert (fields["StatusText"] or "", fields["MM7Version"] or "") == (text, version)
    root = DefusedET.fromstring(response, forbid_dtd=True)
    assert root[1][0].tag == "{" + namespace + "}DeliverRsp"  # an attribute: TAB, LF, CR too
    fault = _reply_fields(
        soap.write_fault(fault_code="Client", fault_string=text, status_code=2007, status_text=text)
    )
    assert (fault["faultstring"] or "", fault["StatusText"] or "") == (text, text)
