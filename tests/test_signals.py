"""The Flask extension's signals and the one per-app state in ``app.extensions["mm7"]``."""

from __future__ import annotations

import typing as t

import pytest
from flask import Flask, current_app, got_request_exception
from helpers import mm7_body, parse_reply

from flask_mm7 import MM7, MM7Error, MM7Middleware
from flask_mm7.signals import handler_failed, message_answered, message_received


@pytest.fixture
def app() -> Flask:
    return Flask("signals")


def _post(app: Flask) -> t.Any:
    body, content_type = mm7_body()
    return app.test_client().post("/mm7", data=body, content_type=content_type)


def _record(signal: t.Any, app: Flask, seen: list[tuple[str, t.Any]], name: str) -> t.Any:
    def receiver(sender: Flask, **extra: t.Any) -> None:
        assert sender is app and current_app._get_current_object() is app
        seen.append((name, extra))

    signal.connect(receiver, app)
    return receiver


@pytest.mark.parametrize(
    ("result", "code"), [(None, 1000), ((2004, "no GIFs"), 2004), (MM7Error(4008), 4008)]
)
def test_a_delivery_sends_received_then_answered(app: Flask, result: object, code: int) -> None:
    mm7 = MM7(app, allow_anonymous=True)
    order: list[str] = []

    @mm7.on_deliver
    def deliver(msg: t.Any) -> t.Any:
        order.append("handler")
        return result

    seen: list[tuple[str, t.Any]] = []
    keep = [
        _record(message_received, app, seen, "received"),
        _record(message_answered, app, seen, "answered"),
        _record(handler_failed, app, seen, "failed"),
    ]
    message_received.connect(lambda sender, **extra: order.append("received"), app, weak=False)
    response = _post(app)
    assert response.status_code == 200 and parse_reply(response.data)["StatusCode"] == str(code)
    assert [name for name, _ in seen] == ["received", "answered"]
    assert order == ["received", "handler"]
    received, answered = seen[0][1], seen[1][1]
    assert received["message"].transaction_id == "TID-1"
    assert answered["message"] is received["message"]
    assert answered["status_code"] == code
    assert keep  # the receivers stay referenced while the request runs


def test_a_failing_handler_sends_handler_failed_and_got_request_exception(app: Flask) -> None:
    mm7 = MM7(app, allow_anonymous=True)
    boom = RuntimeError("database down")

    @mm7.on_deliver
    def deliver(msg: t.Any) -> None:
        raise boom

    seen: list[tuple[str, t.Any]] = []
    keep = [
        _record(handler_failed, app, seen, "failed"),
        _record(got_request_exception, app, seen, "flask"),
        _record(message_answered, app, seen, "answered"),
    ]
    response = _post(app)
    assert response.status_code == 500  # a retryable fault: no answered signal
    assert [name for name, _ in seen] == ["failed", "flask"]
    assert seen[0][1]["exception"] is boom and seen[1][1]["exception"] is boom
    assert keep


def test_the_plain_middleware_sends_no_signal() -> None:
    seen: list[object] = []

    def anything(sender: object, **extra: t.Any) -> None:
        seen.append(sender)

    message_received.connect(anything)
    try:
        middleware = MM7Middleware(allow_anonymous=True, on_deliver=lambda msg: None)
        from werkzeug.test import Client

        body, content_type = mm7_body()
        assert (
            Client(middleware).post("/mm7", data=body, content_type=content_type).status_code == 200
        )
    finally:
        message_received.disconnect(anything)
    assert seen == []


def test_one_state_object_per_app(app: Flask) -> None:
    mm7 = MM7(app, allow_anonymous=True, max_parts=12)
    state = app.extensions["mm7"]
    assert state.extension is mm7
    assert app.wsgi_app is state.middleware
    assert state.settings.max_parts == 12 and MM7.settings_for(app) is state.settings
    assert [key for key in app.extensions if key.startswith("mm7")] == ["mm7"]
