"""What reaches the log: one line per event, sender values escaped and cut short."""

from __future__ import annotations

import logging

import pytest
from helpers import envelope, mm7_body, parse_reply
from werkzeug.test import Client

from flask_mm7 import MM7Middleware
from flask_mm7._logs import MAX_LOGGED_CHARS, get_logger, loggable


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("a\r\nb", "a\\r\\nb"),
        ("x\u2028y\x00z", "x\\u2028y\\x00z"),
        (1000, 1000),
        (None, None),
        (b"\xff\n", "b'\\xff\\n'"),
    ],
)
def test_loggable(value: object, expected: object) -> None:
    assert loggable(value) == expected


def test_long_values_are_cut() -> None:
    text = loggable("x" * 10_000)
    assert isinstance(text, str)
    assert text.startswith("x" * MAX_LOGGED_CHARS) and text.endswith("(10000 characters)")
    assert len(text) < MAX_LOGGED_CHARS + 40


def test_a_transaction_id_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    app = MM7Middleware(None, allow_anonymous=True, on_deliver=lambda msg: (2004, "no\nthanks"))
    body, content_type = mm7_body(
        soap=envelope(transaction_id="T1&#10;MM7 DeliverReq FORGED answered 1000&#13;")
    )
    with caplog.at_level(logging.INFO, logger="flask_mm7"):
        response = Client(app).post("/mm7", data=body, content_type=content_type)
    assert parse_reply(response.data)["StatusCode"] == "2004"
    messages = [record.getMessage() for record in caplog.records]
    assert messages and all("\n" not in m and "\r" not in m for m in messages), messages
    assert any("T1\\nMM7 DeliverReq FORGED" in m for m in messages), messages


def test_logger_still_takes_formatting_arguments(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flask_mm7.test"):
        get_logger("flask_mm7.test").info("%s answered %d", "T\n1", 1000)
    assert caplog.records[0].getMessage() == "T\\n1 answered 1000"
