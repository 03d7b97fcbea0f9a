"""``max_concurrency``: requests over the cap get 503 + Retry-After at once, through both
adapters, and every slot comes back however the request ends."""

from __future__ import annotations

import threading
import typing as t

import pytest
from conftest import Harness
from flask import Flask
from helpers import mm7_body, parse_reply
from sec_helpers import CountingInput, fault, post_stream

from flask_mm7 import MM7, MM7Middleware
from flask_mm7._config import Settings
from flask_mm7._overload import ConcurrencyLimit

KINDS = ["middleware", "extension"]


def middleware_of(harness: Harness) -> MM7Middleware:
    if harness.flask_app is not None:
        return t.cast(MM7Middleware, harness.flask_app.extensions["mm7"].middleware)
    return t.cast(MM7Middleware, harness.receiver)


def deliver(harness: Harness) -> t.Any:
    body, content_type = mm7_body()
    return harness.post(body, content_type)


class Blocked:
    """A handler that holds its request until released."""

    def __init__(self) -> None:
        self.inside = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, msg: t.Any) -> None:
        self.inside.release()
        assert self.release.wait(10)


@pytest.mark.parametrize("kind", KINDS)
def test_requests_over_the_cap_get_503_with_retry_after(kind: str) -> None:
    harness = Harness(kind, max_concurrency=2, retry_after=30)
    blocked = Blocked()
    harness.behaviour = blocked
    results: list[t.Any] = []
    threads = [threading.Thread(target=lambda: results.append(deliver(harness))) for _ in "ab"]
    for thread in threads:
        thread.start()
    try:
        for _ in threads:
            assert blocked.inside.acquire(timeout=10)
        assert middleware_of(harness).concurrency.active == 2  # type: ignore[union-attr]
        stream = CountingInput(b"x" * 100)
        response = post_stream(harness, stream, "text/xml", content_length=10_000)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "30"
        assert fault(response) == ("Server", "4006")
        assert stream.bytes_read == 0
    finally:
        blocked.release.set()
        for thread in threads:
            thread.join(10)
    assert [r.status_code for r in results] == [200, 200]
    assert len(harness.calls) == 2
    assert middleware_of(harness).concurrency.active == 0  # type: ignore[union-attr]
    assert deliver(harness).status_code == 200


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "outcome",
    ["raise", "mm7-error", "bad-content-type", "bad-xml"],
)
def test_slot_is_released_however_the_request_ends(kind: str, outcome: str) -> None:
    harness = Harness(kind, max_concurrency=1)

    def fail(msg: t.Any) -> None:
        if outcome == "raise":
            raise RuntimeError("boom")
        from flask_mm7 import MM7Error

        raise MM7Error(4006)

    harness.behaviour = fail
    body, content_type = mm7_body()
    if outcome == "bad-content-type":
        content_type = "application/json"
    elif outcome == "bad-xml":
        body = b"<not xml"
        content_type = "text/xml"
    for _ in range(3):
        assert harness.post(body, content_type).status_code in (400, 415, 500)
    assert middleware_of(harness).concurrency.active == 0  # type: ignore[union-attr]


def test_slot_is_released_when_a_base_exception_escapes() -> None:
    def interrupted(msg: t.Any) -> None:
        raise KeyboardInterrupt

    middleware = MM7Middleware(max_concurrency=1, on_deliver=interrupted, allow_anonymous=True)
    body, content_type = mm7_body()
    from werkzeug.test import Client

    with pytest.raises(KeyboardInterrupt):
        Client(middleware).post("/mm7", data=body, content_type=content_type)
    assert middleware.concurrency is not None and middleware.concurrency.active == 0


@pytest.mark.parametrize("kind", KINDS)
def test_refused_and_other_requests_take_no_slot(kind: str) -> None:
    harness = Harness(kind, max_concurrency=1, basic_auth="u:p")
    blocked = Blocked()
    harness.behaviour = blocked
    body, content_type = mm7_body()
    holder = threading.Thread(
        target=lambda: harness.post(body, content_type, headers={"Authorization": "Basic dTpw"})
    )
    holder.start()
    try:
        assert blocked.inside.acquire(timeout=10)
        assert harness.post(body, content_type).status_code == 401  # not 503
        assert harness.post(b"hi", "text/plain", path="/other").status_code == 200
        assert (
            harness.client.get("/mm7", headers={"Authorization": "Basic dTpw"}).status_code == 405
        )
    finally:
        blocked.release.set()
        holder.join(10)


@pytest.mark.parametrize("kind", KINDS)
def test_no_cap_by_default(kind: str) -> None:
    harness = Harness(kind)
    assert middleware_of(harness).concurrency is None
    assert deliver(harness).status_code == 200


def test_cap_from_flask_config() -> None:
    app = Flask("cfg")
    app.config.update(MM7_MAX_CONCURRENCY="1", MM7_RETRY_AFTER="12", MM7_ALLOW_ANONYMOUS=True)
    mm7 = MM7(app)
    blocked = Blocked()
    mm7.on_deliver(blocked)
    body, content_type = mm7_body()
    client = app.test_client()
    holder = threading.Thread(
        target=lambda: app.test_client().post("/mm7", data=body, content_type=content_type)
    )
    holder.start()
    try:
        assert blocked.inside.acquire(timeout=10)
        response = client.post("/mm7", data=body, content_type=content_type)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "12"
        assert parse_reply(response.data)["StatusCode"] == "4006"
    finally:
        blocked.release.set()
        holder.join(10)


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "two"])
def test_invalid_cap_fails_at_setup(value: t.Any) -> None:
    with pytest.raises(ValueError):
        Settings(max_concurrency=value)


@pytest.mark.parametrize(("value", "expected"), [("", None), ("None", None), ("8", 8)])
def test_cap_string_forms(value: str, expected: int | None) -> None:
    assert Settings.from_mapping({"MM7_MAX_CONCURRENCY": value}).max_concurrency == expected


def test_concurrency_limit_unit() -> None:
    limit = ConcurrencyLimit(2)
    assert limit.try_acquire() and limit.try_acquire()
    assert not limit.try_acquire()
    assert limit.active == 2
    limit.release()
    assert limit.try_acquire()
    limit.release()
    limit.release()
    assert limit.active == 0
    with pytest.raises(ValueError):
        limit.release()  # BoundedSemaphore: more releases than acquires is a bug
    assert limit.active == 0
    with pytest.raises(ValueError):
        ConcurrencyLimit(0)
