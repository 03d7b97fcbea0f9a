"""The access log: one INFO record per answered MM7 request, its facts as record attributes."""

from __future__ import annotations

import base64
import json
import logging
import pathlib
import re
import typing as t

import pytest
from flask import Flask
from helpers import envelope, mm7_body
from werkzeug.test import Client

from flask_mm7 import MM7, MM7Middleware
from flask_mm7.access import FIELDS, LOGGER_NAME

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()

SECRET = "s3cret-pass"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"relay:{SECRET}".encode()).decode()}


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER_NAME]


def _client(handler: t.Any = None, **options: t.Any) -> Client:
    return Client(MM7Middleware(None, basic_auth=f"relay:{SECRET}", on_deliver=handler, **options))


def test_an_answered_delivery_is_one_record_with_its_facts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body, content_type = mm7_body()
    client = _client(lambda msg: None)
    with caplog.at_level(logging.INFO, logger="flask_mm7"):
        response = client.post(
            "/mm7",
            data=body,
            content_type=content_type,
            headers={**AUTH, "X-OpenMarket-Carrier-Id": "383"},
            environ_base={"REMOTE_ADDR": "203.0.113.7"},
        )
    assert response.status_code == 200
    [record] = _records(caplog)
    assert record.levelno == logging.INFO
    facts = {name: getattr(record, name) for name in FIELDS}
    duration = facts.pop("duration")
    assert isinstance(duration, float) and 0 < duration < 5
    assert facts == {
        "transaction_id": "TID-1",
        "operation": "DeliverReq",
        "mm7_version": "6.8.0",
        "http_status": 200,
        "status_code": 1000,
        "fault_code": None,
        "body_size": len(body),
        "attachments": 2,
        "remote_addr": "203.0.113.7",
        "carrier_id": "383",
    }
    assert record.getMessage().startswith("MM7 DeliverReq TID-1 from 203.0.113.7: HTTP 200")
    # the handler's answer is this record, not a second line
    assert [r.getMessage() for r in caplog.records if "TID-1" in r.getMessage()] == [
        record.getMessage()
    ]


def test_refusals_and_faults_are_recorded_too(caplog: pytest.LogCaptureFixture) -> None:
    def broken(msg: t.Any) -> None:
        raise RuntimeError("database down")

    client = _client(broken)
    body, content_type = mm7_body()
    with caplog.at_level(logging.INFO, logger="flask_mm7"):
        assert client.post("/mm7", data=body, content_type=content_type).status_code == 401
        assert client.get("/mm7", headers=AUTH).status_code == 405
        client.post("/mm7", data=b"x", content_type="multipart/related; boundary=b", headers=AUTH)
        client.post("/mm7", data=body, content_type=content_type, headers=AUTH)
    seen = [(r.http_status, r.status_code, r.fault_code, r.operation) for r in _records(caplog)]
    assert seen == [
        (401, 4001, "Client", None),
        (405, None, None, None),
        (400, 2007, "Client", None),
        (500, 3000, "Server", "DeliverReq"),
    ]


def test_never_credentials_nor_content(caplog: pytest.LogCaptureFixture) -> None:
    body, content_type = mm7_body(
        [(["Content-Type: text/plain", "Content-ID: <t>"], b"my private words")]
    )
    with caplog.at_level(logging.INFO, logger="flask_mm7"):
        _client(lambda msg: None).post("/mm7", data=body, content_type=content_type, headers=AUTH)
    [record] = _records(caplog)
    everything = json.dumps(vars(record), default=str)
    assert SECRET not in everything and "relay:" not in everything
    assert AUTH["Authorization"].split()[1] not in everything
    assert "private words" not in everything and "12125550123" not in everything


def test_values_from_the_sender_are_escaped_and_cut(caplog: pytest.LogCaptureFixture) -> None:
    forged = "T1&#10;MM7 DeliverReq FORGED" + "x" * 500
    body, content_type = mm7_body(soap=envelope(transaction_id=forged))
    with caplog.at_level(logging.INFO, logger="flask_mm7"):
        _client(lambda msg: None).post("/mm7", data=body, content_type=content_type, headers=AUTH)
    [record] = _records(caplog)
    assert record.transaction_id.startswith("T1\\nMM7 DeliverReq FORGED")
    assert len(record.transaction_id) < 260
    assert "\n" not in record.getMessage()


def test_the_access_logger_can_be_silenced_alone(caplog: pytest.LogCaptureFixture) -> None:
    body, content_type = mm7_body()
    client = _client(lambda msg: None)
    with caplog.at_level(logging.INFO, logger="flask_mm7"):
        logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
        try:
            client.post("/mm7", data=body, content_type=content_type, headers=AUTH)
        finally:
            logging.getLogger(LOGGER_NAME).setLevel(logging.NOTSET)
    assert _records(caplog) == []


def test_a_failing_log_handler_does_not_change_the_reply() -> None:
    class Broken(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise OSError("disk full")

        def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
            raise OSError("disk full")

    access = logging.getLogger(LOGGER_NAME)
    handler = Broken()
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        body, content_type = mm7_body()
        response = _client(lambda msg: None).post(
            "/mm7", data=body, content_type=content_type, headers=AUTH
        )
    finally:
        access.removeHandler(handler)
        access.setLevel(logging.NOTSET)
    assert response.status_code == 200 and b"1000" in response.data


def _json_logging_snippet() -> str:
    section = README[README.index("### Access log") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


def test_the_readmes_json_logging_setup_writes_the_facts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README's JSON formatter, run as written, writes one JSON object with the facts."""
    root = logging.getLogger("flask_mm7")
    before = list(root.handlers), root.level
    try:
        exec(compile(_json_logging_snippet(), "README.md", "exec"), {})
        app = Flask("json")
        MM7(app, allow_anonymous=True).on_deliver(lambda msg: None)
        body, content_type = mm7_body()
        app.test_client().post("/mm7", data=body, content_type=content_type)
    finally:
        for handler in root.handlers[:]:
            if handler not in before[0]:
                root.removeHandler(handler)
        root.setLevel(before[1])
    lines = [line for line in capsys.readouterr().err.splitlines() if '"operation"' in line]
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["operation"] == "DeliverReq" and record["status_code"] == 1000
    assert record["transaction_id"] == "TID-1" and record["http_status"] == 200
    assert re.match(r"MM7 DeliverReq TID-1 from ", record["message"])
