"""Helpers for the security tests: posting a stream as the body, fault reading."""

from __future__ import annotations

import typing as t

from conftest import Harness
from helpers import CountingInput, parse_reply
from werkzeug.test import TestResponse

__all__ = ["CountingInput", "fault", "post_stream"]


def post_stream(
    harness: Harness,
    stream: t.IO[bytes],
    content_type: str,
    *,
    content_length: int | None,
    headers: dict[str, str] | None = None,
    path: str = "/mm7",
    environ_overrides: dict[str, t.Any] | None = None,
    method: str = "POST",
) -> TestResponse:
    """Send ``stream`` as the body with the given Content-Length (None: chunked)."""
    overrides: dict[str, t.Any] = dict(environ_overrides or {})
    all_headers = {"Content-Type": content_type, **(headers or {})}
    if content_length is None:
        overrides["wsgi.input_terminated"] = True
        overrides["CONTENT_LENGTH"] = ""
    else:  # EnvironBuilder would measure the stream instead
        overrides["CONTENT_LENGTH"] = str(content_length)
    return harness.client.open(
        path,
        method=method,
        input_stream=stream,
        content_length=content_length,
        headers=all_headers,
        environ_base={"test.reached": harness.reached},
        environ_overrides=overrides,
    )


def fault(response: TestResponse) -> tuple[str | None, str | None]:
    """(faultcode without prefix, StatusCode) of a SOAP Fault reply."""
    reply = parse_reply(response.data)
    assert "Fault" in reply and reply["faultcode"], reply
    code = reply["faultcode"] or ""
    return code.rpartition(":")[2], reply["StatusCode"]
