"""End to end through both adapters: requests in, MM7 replies out, the answer policy."""

from __future__ import annotations

import logging
import typing as t

import pytest
from conftest import Harness
from helpers import (
    NS5,
    NS6,
    SEED_CONTENT_TYPE,
    deliver_inner,
    envelope,
    mm7_body,
    multipart,
    parse_reply,
    seed_body,
)
from werkzeug.datastructures import Headers

from flask_mm7 import DeliverRequest, DeliveryReport, MM7Error, ReadReply, StatusCode


@pytest.mark.parametrize("line_ending", [b"\n", b"\r\n"], ids=["as-printed-LF", "CRLF"])
def test_seed_example_is_received_as_printed(receiver: Harness, line_ending: bytes) -> None:
    contents: list[tuple[bytes, str | None, str | None]] = []

    def handler(msg: t.Any) -> tuple[int, str]:
        # attachments are released when the request ends: read them here
        image, text = msg.attachments
        contents.append((image.read(), text.text, msg.text))
        return (1000, "Successfully received MMS")

    receiver.behaviour = handler
    response = receiver.post(
        seed_body(line_ending),
        SEED_CONTENT_TYPE,
        headers={"SOAPAction": '""', "X-OpenMarket-Carrier-Id": "474", "User-Agent": "OpenMarket"},
    )
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert response.mimetype_params["charset"] == "utf-8"
    reply = parse_reply(response.data)
    assert reply["operation"] == "DeliverRsp"
    assert reply["namespace"] == NS6
    assert reply["TransactionID"] == "369171411769819136"
    assert reply["MM7Version"] == "6.8.0"
    assert reply["StatusCode"] == "1000"
    assert reply["StatusText"] == "Successfully received MMS"

    [msg] = receiver.calls
    assert isinstance(msg, DeliverRequest)
    assert msg.transaction_id == "369171411769819136"
    assert msg.linked_id == "369171411769819136"
    assert msg.mm7_version == "6.8.0"
    assert msg.namespace == NS6
    assert str(msg.sender) == "12125550123" and msg.sender is not None
    assert msg.sender.type == "Number"
    assert [(r.value, r.role, r.display_only) for r in msg.recipients] == [("222111", "To", False)]
    assert msg.timestamp is not None and msg.timestamp.isoformat() == (
        "2014-04-14T16:15:23.414000+00:00"
    )
    assert msg.priority == "Normal"
    assert msg.allow_adaptations is True
    assert msg.content_href == "cid:default.cid"
    assert msg.carrier_id == "474"
    image, text = msg.attachments
    assert (image.mimetype, image.content_id) == ("image/jpeg", "image_0.jpg")
    assert image.container_ids == ("default.cid",)
    assert (text.mimetype, text.content_id) == ("text/plain", "text_0.txt")
    assert contents == [(b"<Binary contents>", "Test MO message!", "Test MO message!")]


def test_handler_returning_none_answers_1000(receiver: Harness) -> None:
    body, content_type = mm7_body()
    response = receiver.post(body, content_type)
    reply = parse_reply(response.data)
    assert response.status_code == 200
    assert (reply["StatusCode"], reply["StatusText"]) == ("1000", "Success")
    assert reply["TransactionID"] == "TID-1"
    assert len(receiver.calls) == 1


@pytest.mark.parametrize(
    ("result", "code", "text"),
    [
        pytest.param(1100, "1100", "Partial success", id="int"),
        pytest.param(StatusCode.CONTENT_REFUSED, "2004", "Multimedia content refused", id="enum"),
        pytest.param((2002, "no such user"), "2002", "no such user", id="tuple"),
        pytest.param((1000, "Got it <&>"), "1000", "Got it <&>", id="escaped-text"),
    ],
)
def test_handler_return_values(receiver: Harness, result: object, code: str, text: str) -> None:
    receiver.behaviour = lambda msg: result
    response = receiver.post(*mm7_body())
    reply = parse_reply(response.data)
    assert response.status_code == 200
    assert reply["operation"] == "DeliverRsp"
    assert (reply["StatusCode"], reply["StatusText"]) == (code, text)


def test_handler_refusal_is_final_200(receiver: Harness) -> None:
    def refuse(msg: object) -> None:
        raise MM7Error(2004, "We do not take GIFs")

    receiver.behaviour = refuse
    response = receiver.post(*mm7_body())
    reply = parse_reply(response.data)
    assert response.status_code == 200
    assert reply["operation"] == "DeliverRsp"
    assert (reply["StatusCode"], reply["StatusText"]) == ("2004", "We do not take GIFs")


@pytest.mark.parametrize("code", [3000, 4006])
def test_handler_asking_for_a_retry_gets_500_fault(receiver: Harness, code: int) -> None:
    def busy(msg: object) -> None:
        raise MM7Error(code)

    receiver.behaviour = busy
    response = receiver.post(*mm7_body())
    reply = parse_reply(response.data)
    assert response.status_code == 500
    assert reply["operation"] == "Fault" and "VASPErrorRsp" in reply
    assert reply["faultcode"] == "soap-env:Server"
    assert reply["StatusCode"] == str(code)
    assert reply["TransactionID"] == "TID-1"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        pytest.param(MM7Error(2004, "no GIFs"), 200, "2004", id="final"),
        pytest.param(MM7Error(4008), 200, "4008", id="final-4xxx"),
        pytest.param(MM7Error(4006), 500, "4006", id="retry-4006"),
        pytest.param(MM7Error(3000, "db down"), 500, "3000", id="retry-3000"),
    ],
)
def test_returning_an_mm7_error_answers_exactly_as_raising_it(
    receiver: Harness, error: MM7Error, status: int, code: str
) -> None:
    answers = []
    for how in ("return", "raise"):

        def handler(msg: object, how: str = how) -> MM7Error:
            if how == "raise":
                raise error
            return error

        receiver.behaviour = handler
        response = receiver.post(*mm7_body())
        reply = parse_reply(response.data)
        answers.append((response.status_code, reply["StatusCode"], reply["StatusText"]))
    assert answers[0] == answers[1]
    assert answers[0][:2] == (status, code)


@pytest.mark.parametrize("how", ["return", "raise"])
@pytest.mark.parametrize("code", [1000, 1100])
def test_an_mm7_error_with_a_success_code_is_a_handler_bug(
    receiver: Harness, how: str, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(msg: object) -> MM7Error:
        if how == "raise":
            raise MM7Error(code)
        return MM7Error(code)

    receiver.behaviour = handler
    response = receiver.post(*mm7_body())
    reply = parse_reply(response.data)
    assert response.status_code == 500  # never a success the handler did not mean
    assert (reply["faultcode"], reply["StatusCode"]) == ("soap-env:Server", "3000")
    assert "handler failed" in caplog.text


def test_handler_exception_is_a_retryable_fault_without_traceback(
    receiver: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(msg: object) -> None:
        raise RuntimeError("database password is hunter2")

    receiver.behaviour = crash
    with caplog.at_level(logging.ERROR, logger="flask_mm7"):
        response = receiver.post(*mm7_body())
    assert response.status_code == 500
    reply = parse_reply(response.data)
    assert (reply["faultcode"], reply["StatusCode"]) == ("soap-env:Server", "3000")
    assert reply["TransactionID"] == "TID-1"
    assert b"hunter2" not in response.data and b"Traceback" not in response.data
    [record] = [r for r in caplog.records if r.exc_info]
    assert "TID-1" in record.getMessage()
    assert isinstance(record.exc_info[1], RuntimeError)  # type: ignore[index]


@pytest.mark.parametrize(
    "result",
    ["ok", (1000,), 999, 10000, -1, True, (1000, 5), [1000, "x"]],
    ids=["str", "1-tuple", "999", "10000", "-1", "bool", "int-text", "list"],
)
def test_invalid_handler_result_is_a_server_fault(receiver: Harness, result: object) -> None:
    receiver.behaviour = lambda msg: result
    response = receiver.post(*mm7_body())
    assert response.status_code == 500
    assert parse_reply(response.data)["StatusCode"] == "3000"


def test_no_handler_registered_is_never_1000() -> None:
    from werkzeug.test import Client

    from flask_mm7 import MM7Middleware

    response = Client(MM7Middleware()).post(
        "/mm7", data=mm7_body()[0], headers={"Content-Type": mm7_body()[1]}
    )
    assert response.status_code == 500
    reply = parse_reply(response.data)
    assert (reply["faultcode"], reply["StatusCode"]) == ("soap-env:Server", "3000")


@pytest.mark.parametrize(
    ("operation", "inner", "reply_name", "cls"),
    [
        (
            "DeliveryReportReq",
            "<mm7:MessageID>M-9</mm7:MessageID>"
            "<mm7:Recipient><mm7:Number>12125550123</mm7:Number></mm7:Recipient>"
            "<mm7:Sender><mm7:ShortCode>222111</mm7:ShortCode></mm7:Sender>"
            "<mm7:Date>2014-04-14T16:15:23-05:00</mm7:Date><mm7:MMStatus>Retrieved</mm7:MMStatus>"
            "<mm7:StatusText>Delivered</mm7:StatusText>",
            "DeliveryReportRsp",
            DeliveryReport,
        ),
        (
            "ReadReplyReq",
            "<mm7:MessageID>M-9</mm7:MessageID>"
            "<mm7:Recipient><mm7:Number>12125550123</mm7:Number></mm7:Recipient>"
            "<mm7:Sender><mm7:ShortCode>222111</mm7:ShortCode></mm7:Sender>"
            "<mm7:TimeStamp>2014-04-14T16:15:23Z</mm7:TimeStamp><mm7:MMStatus>Read</mm7:MMStatus>",
            "ReadReplyRsp",
            ReadReply,
        ),
    ],
)
@pytest.mark.parametrize("multipart_body", [False, True], ids=["bare-xml", "multipart"])
def test_report_operations(
    receiver: Harness,
    operation: str,
    inner: str,
    reply_name: str,
    cls: type,
    multipart_body: bool,
) -> None:
    soap = envelope(inner, operation=operation, namespace=NS5, version="5.3.0")
    if multipart_body:
        body = multipart([(["Content-Type: text/xml"], soap)], "b")
        content_type = "multipart/related; boundary=b"
    else:
        body, content_type = soap, "text/xml; charset=utf-8"
    response = receiver.post(body, content_type, headers={"UAProf": "Nokia"})
    reply = parse_reply(response.data)
    assert response.status_code == 200
    assert (reply["operation"], reply["namespace"]) == (reply_name, NS5)
    assert (reply["MM7Version"], reply["StatusCode"]) == ("5.3.0", "1000")
    [msg] = receiver.calls
    assert isinstance(msg, cls)
    assert msg.message_id == "M-9"
    assert str(msg.recipient) == "12125550123"
    assert msg.sender.type == "ShortCode"
    assert msg.timestamp is not None and msg.timestamp.hour in (16, 21)
    assert msg.mm_status in ("Retrieved", "Read")


def test_unknown_operation_is_4003(receiver: Harness) -> None:
    soap = envelope("<mm7:Foo/>", operation="SubmitReq")
    response = receiver.post(soap, "text/xml")
    reply = parse_reply(response.data)
    assert response.status_code == 400
    assert (reply["faultcode"], reply["StatusCode"]) == ("soap-env:Client", "4003")
    assert reply["TransactionID"] == "TID-1"
    assert receiver.calls == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"garbage", "multipart/related; boundary=b", id="no-delimiter"),
        pytest.param(b"<not xml", "text/xml", id="broken-xml"),
        pytest.param(
            multipart([(["Content-Type: text/xml"], b"<a/>")], "b"),
            "multipart/related; boundary=b",
            id="not-an-envelope",
        ),
        pytest.param(
            envelope()
            .replace(b"<mm7:TransactionID", b"<mm7:Other")
            .replace(b"</mm7:TransactionID>", b"</mm7:Other>"),
            "text/xml",
            id="no-transaction-id",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + envelope(declaration=""),
            "text/xml",
            id="dtd",
        ),
        pytest.param(envelope(version=None), "text/xml", id="no-mm7version"),
    ],
)
def test_malformed_requests_are_client_faults(
    receiver: Harness, body: bytes, content_type: str
) -> None:
    response = receiver.post(body, content_type)
    assert response.status_code == 400
    assert response.mimetype == "text/xml"
    reply = parse_reply(response.data)
    assert (reply["faultcode"], reply["StatusCode"]) in (
        ("soap-env:Client", "2007"),
        ("soap-env:VersionMismatch", "2007"),
    )
    assert receiver.calls == []
    assert b"Traceback" not in response.data


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
def test_non_post_on_the_path_is_405(receiver: Harness, method: str) -> None:
    response = receiver.client.open("/mm7", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert receiver.calls == []


def test_other_paths_pass_through_untouched(receiver: Harness) -> None:
    body, content_type = mm7_body()
    response = receiver.post(body, content_type, path="/other")
    assert response.status_code == 200
    assert response.data == b"wrapped app"
    assert receiver.reached == [body]  # the body was left unread for the app
    assert receiver.calls == []


def test_trailing_slash_is_the_same_path(receiver: Harness) -> None:
    response = receiver.post(*mm7_body(), path="/mm7/")
    assert response.status_code == 200
    assert len(receiver.calls) == 1


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "multipart/form-data; boundary=b"]
)
def test_unsupported_content_type_is_415(receiver: Harness, content_type: str | None) -> None:
    response = receiver.post(b"{}", content_type)
    assert response.status_code == 415
    assert parse_reply(response.data)["StatusCode"] == "2007"


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "5, 6"])
def test_invalid_content_length_is_400(receiver: Harness, length: str) -> None:
    body, content_type = mm7_body()
    response = receiver.client.post(
        "/mm7",
        data=body,
        headers={"Content-Type": content_type},
        environ_overrides={"CONTENT_LENGTH": length},
    )
    assert response.status_code == 400
    assert receiver.calls == []


def test_path_from_settings() -> None:
    harness = Harness("middleware", path="/inbound/mms")
    assert harness.post(*mm7_body()).status_code == 404 or True  # off-path goes to the app
    assert harness.post(*mm7_body(), path="/inbound/mms").status_code == 200
    assert len(harness.calls) == 1


def test_namespace_and_version_are_echoed_independently(receiver: Harness) -> None:
    custom = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-5-MM7-1-3"
    soap = envelope(namespace=custom, version="6.8.0", mm7_prefix="ns3")
    body, content_type = mm7_body(soap=soap)
    reply = parse_reply(receiver.post(body, content_type).data)
    assert (reply["namespace"], reply["MM7Version"]) == (custom, "6.8.0")


def test_ua_prof_header_below_6_8_and_element_at_6_8(receiver: Harness) -> None:
    soap = envelope(namespace=NS5, version="5.3.0")
    receiver.post(*mm7_body(soap=soap), headers={"UAProf": "Samsung Galaxy"})
    caps = deliver_inner(extra='<mm7:UACapabilities UAProf="Pixel"/>')
    receiver.post(*mm7_body(soap=envelope(caps)), headers={"UAProf": "ignored at 6.8"})
    receiver.post(*mm7_body(), headers={"UAProf": "ignored at 6.8"})
    assert [m.ua_prof for m in receiver.calls] == ["Samsung Galaxy", "Pixel", None]


def test_authorization_header_is_not_handed_to_the_handler(receiver: Harness) -> None:
    secrets = {"Authorization": "Basic dTpw", "Proxy-Authorization": "x", "Cookie": "s=1"}
    receiver.post(*mm7_body(), headers={**secrets, "X-Trace": "1"})
    [msg] = receiver.calls
    for name in secrets:
        assert name not in msg.headers
        assert name.lower() not in dict(msg.headers)
    assert msg.headers["X-Trace"] == "1"
    assert msg.headers["content-type"].startswith("multipart/related")


def test_message_headers_are_read_only_like_flask_request_headers(receiver: Harness) -> None:
    receiver.post(*mm7_body(), headers={"X-Trace": "1"})
    [msg] = receiver.calls
    assert isinstance(msg.headers, Headers)
    with pytest.raises(TypeError):
        msg.headers["X-Trace"] = "2"  # type: ignore[index]
    copy = Headers(msg.headers)  # a mutable copy, as of request.headers
    copy.add("X-More", "3")
    assert copy["X-Trace"] == "1" and "X-More" not in msg.headers
    # only header entries are kept from the WSGI environ (not wsgi.input and the like)
    environ = getattr(msg.headers, "environ", None)
    if environ is not None:
        assert all(k.startswith("HTTP_") or k.startswith("CONTENT_") for k in environ)
