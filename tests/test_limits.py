"""Every size limit just under, at and just over, through both adapters, with the exact HTTP
status and SOAP Fault; bodies above ``max_content_length`` are refused unread (Content-Length)
or as soon as they pass it (chunked), never parsed truncated."""

from __future__ import annotations

import typing as t

import pytest
from conftest import Harness
from flask import Flask
from helpers import envelope, mm7_body, parse_reply
from sec_helpers import CountingInput, fault, post_stream

from flask_mm7 import MM7
from flask_mm7.testing import build_deliver

KINDS = ["middleware", "extension"]
#: (name, offset from the exact size, expected outcome)
EDGES = [
    pytest.param(1, "ok", id="just-under"),
    pytest.param(0, "ok", id="at"),
    pytest.param(-1, "refused", id="just-over"),
]


def assert_ok(harness: Harness, response: t.Any, calls: int = 1) -> None:
    assert response.status_code == 200, response.data
    assert parse_reply(response.data)["StatusCode"] == "1000"
    assert len(harness.calls) == calls


def assert_limit_fault(harness: Harness, response: t.Any) -> None:
    assert response.status_code == 400
    assert fault(response) == ("Client", "2007")
    assert harness.calls == []


# --------------------------------------------------------------------------- body size


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("offset", "outcome"), EDGES)
def test_max_content_length_with_content_length(kind: str, offset: int, outcome: str) -> None:
    request = build_deliver(text="hello", attachments=[b"\x00" * 5000], transaction_id="T1")
    size = len(request.body)
    harness = Harness(kind, max_content_length=size + offset)
    stream = CountingInput(request.body)
    response = post_stream(harness, stream, request.content_type, content_length=size)
    if outcome == "ok":
        assert_ok(harness, response)
        assert stream.bytes_read == size
    else:
        assert response.status_code == 413
        assert fault(response) == ("Client", "2007")
        assert stream.bytes_read == 0  # refused on the header alone
        assert harness.calls == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("expect", [None, "100-continue"])
def test_content_length_over_the_limit_is_413_unread(kind: str, expect: str | None) -> None:
    harness = Harness(kind, max_content_length=1024 * 1024)
    stream = CountingInput(b"--b\r\n" * 1000)
    headers = {"Expect": expect} if expect else {}
    response = post_stream(
        harness,
        stream,
        "multipart/related; boundary=b",
        content_length=50 * 1024 * 1024,
        headers=headers,
    )
    assert response.status_code == 413
    assert fault(response) == ("Client", "2007")
    assert stream.bytes_read == 0
    assert harness.calls == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("offset", "outcome"), EDGES)
def test_max_content_length_chunked(kind: str, offset: int, outcome: str) -> None:
    request = build_deliver(text="hello", attachments=[b"\x01" * 200_000], transaction_id="T1")
    size = len(request.body)
    harness = Harness(kind, max_content_length=size + offset)
    stream = CountingInput(request.body)
    response = post_stream(harness, stream, request.content_type, content_length=None)
    if outcome == "ok":
        assert_ok(harness, response)
    else:  # the body minus its last byte would still parse: it must not be tried
        assert response.status_code == 413
        assert fault(response) == ("Client", "2007")
        assert harness.calls == []
        assert stream.bytes_read <= size


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_body_far_over_the_limit_stops_reading_early(kind: str) -> None:
    harness = Harness(kind, max_content_length=100_000)
    body, content_type = mm7_body(
        [(["Content-Type: application/octet-stream"], b"\x00" * 5_000_000)]
    )
    stream = CountingInput(body)
    response = post_stream(harness, stream, content_type, content_length=None)
    assert response.status_code == 413
    assert stream.bytes_read <= 100_000 + 1  # never a byte more than needed to know
    assert harness.calls == []


@pytest.mark.parametrize("kind", KINDS)
def test_no_length_and_no_terminated_input_is_411(kind: str) -> None:
    harness = Harness(kind)
    stream = CountingInput(b"<x/>")
    response = harness.client.open(
        "/mm7",
        method="POST",
        input_stream=stream,
        headers={"Content-Type": "text/xml"},
        environ_base={"test.reached": harness.reached},
        environ_overrides={"CONTENT_LENGTH": ""},
    )
    assert response.status_code == 411
    assert fault(response) == ("Client", "2007")
    assert stream.bytes_read == 0


# --------------------------------------------------------------------------- MIME limits


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("offset", "outcome"), EDGES)
def test_max_parts(kind: str, offset: int, outcome: str) -> None:
    # root + nested multipart/mixed container + 2 leaves = 4 parts
    body, content_type = mm7_body()
    harness = Harness(kind, max_parts=4 + offset)
    response = harness.post(body, content_type)
    if outcome == "ok":
        assert_ok(harness, response)
    else:
        assert_limit_fault(harness, response)


@pytest.mark.parametrize("kind", KINDS)
def test_max_parts_counts_many_empty_parts(kind: str) -> None:
    parts = [(["Content-Type: text/plain"], b"")] * 300
    body, content_type = mm7_body(parts, nested=False)
    harness = Harness(kind, max_parts=300)
    assert_limit_fault(harness, harness.post(body, content_type))
    harness = Harness(kind, max_parts=301)
    assert_ok(harness, harness.post(body, content_type))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("offset", "outcome"), EDGES)
def test_max_depth(kind: str, offset: int, outcome: str) -> None:
    body, content_type = mm7_body()  # the body's level + the nested multipart/mixed = 2
    harness = Harness(kind, max_depth=2 + offset)
    response = harness.post(body, content_type)
    if outcome == "ok":
        assert_ok(harness, response)
    else:
        assert_limit_fault(harness, response)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("offset", "outcome"), EDGES)
def test_max_part_header_size(kind: str, offset: int, outcome: str) -> None:
    header_lines = ["Content-Type: image/jpeg", "Content-ID: <img>", "X-Pad: " + "a" * 3000]
    # the block: each line with its CRLF, then the blank line
    block = sum(len(line) + 2 for line in header_lines) + 2
    body, content_type = mm7_body([(header_lines, b"JPEG")])
    harness = Harness(kind, max_part_header_size=block + offset)
    response = harness.post(body, content_type)
    if outcome == "ok":
        assert_ok(harness, response)
    else:
        assert_limit_fault(harness, response)


@pytest.mark.parametrize("kind", KINDS)
def test_part_header_without_end_is_refused_at_the_limit(kind: str) -> None:
    body = b"--b\r\nX-Endless: " + b"a" * 100_000
    harness = Harness(kind, max_part_header_size=1000)
    assert_limit_fault(harness, harness.post(body, "multipart/related; boundary=b"))


# --------------------------------------------------------------------------- SOAP limits


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("offset", "outcome"), EDGES)
@pytest.mark.parametrize("framing", ["multipart", "bare-xml"])
def test_max_soap_size(kind: str, offset: int, outcome: str, framing: str) -> None:
    soap = envelope()
    if framing == "multipart":
        body, content_type = mm7_body(soap=soap)
    else:
        body, content_type = soap, "text/xml; charset=utf-8"
    harness = Harness(kind, max_soap_size=len(soap) + offset)
    response = harness.post(body, content_type)
    if outcome == "ok":
        assert_ok(harness, response)
    else:
        assert_limit_fault(harness, response)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("offset", "outcome"), EDGES)
def test_max_xml_depth(kind: str, offset: int, outcome: str) -> None:
    # Envelope > Body > DeliverReq > Recipients > To > Number: 6 levels
    body, content_type = mm7_body()
    harness = Harness(kind, max_xml_depth=6 + offset)
    response = harness.post(body, content_type)
    if outcome == "ok":
        assert_ok(harness, response)
    else:
        assert_limit_fault(harness, response)
        assert "TransactionID" not in parse_reply(response.data)  # refused before reading it


@pytest.mark.parametrize("kind", KINDS)
def test_coercive_parsing_is_refused(kind: str) -> None:
    deep = "<mm7:X>" * 10_000 + "</mm7:X>" * 10_000
    body, content_type = mm7_body(soap=envelope(extra_inner(deep)))
    harness = Harness(kind)
    assert_limit_fault(harness, harness.post(body, content_type))


def extra_inner(xml: str) -> str:
    from helpers import deliver_inner

    return deliver_inner(extra=xml)


# --------------------------------------------------------------------------- configuration


def test_limits_from_flask_config_strings() -> None:
    app = Flask("cfg")
    app.config.update(
        MM7_MAX_CONTENT_LENGTH="2000",
        MM7_MAX_PARTS="3",
        MM7_MAX_DEPTH="2",
        MM7_MAX_PART_HEADER_SIZE="512",
        MM7_MAX_SOAP_SIZE="1500",
        MM7_MAX_XML_DEPTH="8",
        MM7_ALLOW_ANONYMOUS=True,
    )
    mm7 = MM7(app)
    mm7.on_deliver(lambda msg: None)
    settings = MM7.settings_for(app)
    assert (settings.max_content_length, settings.max_parts, settings.max_depth) == (2000, 3, 2)
    assert (settings.max_part_header_size, settings.max_soap_size) == (512, 1500)
    assert settings.max_xml_depth == 8
    body, content_type = mm7_body()
    response = app.test_client().post("/mm7", data=body, content_type=content_type)
    assert response.status_code == 400  # 4 parts > 3
    big = app.test_client().post("/mm7", data=b"x" * 2001, content_type="text/xml")
    assert big.status_code == 413


@pytest.mark.parametrize(
    "field",
    ["max_content_length", "max_parts", "max_depth", "max_part_header_size", "max_soap_size"],
)
@pytest.mark.parametrize("value", [0, -1, None, True, 1.5, "ten", "10 parts", "0"])
def test_invalid_limits_fail_at_setup(field: str, value: t.Any) -> None:
    with pytest.raises(ValueError, match=f"^{field}: expected "):
        MM7(**{field: value})
