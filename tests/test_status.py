"""Status codes: texts, success class, vendor codes."""

from __future__ import annotations

from flask_mm7 import StatusCode
from flask_mm7._status import default_text


def test_codes_texts_and_success_class() -> None:
    assert (StatusCode(1000).text, StatusCode.SUCCESS.is_success) == ("Success", True)
    assert StatusCode.PARTIAL_SUCCESS.is_success and not StatusCode.CONTENT_REFUSED.is_success
    assert default_text(2007) == "Message format corrupt"
    assert default_text(3005) == "Server Error"  # Mbuni's vendor code: its class's text
    assert default_text(4999) == "General service error"
