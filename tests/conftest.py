"""Shared fixtures: a ``receiver`` harness parametrised over the middleware and the extension."""

from __future__ import annotations

import os
import typing as t

import pytest
from flask import Flask
from hypothesis import settings
from werkzeug.middleware.lint import LintMiddleware
from werkzeug.test import Client, TestResponse

from flask_mm7 import MM7, MM7Middleware

# In CI every property test runs the same examples on every run (a red CI must be reproducible,
# never a new random find); locally they explore. HYPOTHESIS_PROFILE=ci reproduces CI's run.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)


def _fallback_app(environ: t.Any, start_response: t.Any) -> list[bytes]:
    """Stands for the user's own app: records that it was reached and what body was left."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["test.reached"].append(environ["wsgi.input"].read(length))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wrapped app"]


class Harness:
    """Posts requests to one adapter and records every handler call."""

    def __init__(self, kind: str, **options: t.Any) -> None:
        self.kind = kind
        self.calls: list[t.Any] = []
        self.reached: list[bytes] = []
        self.behaviour: t.Callable[[t.Any], t.Any] = lambda msg: None
        self.flask_app: Flask | None = None
        if kind == "middleware":
            receiver = MM7Middleware(_fallback_app, **options)
            wsgi: t.Any = receiver
        else:
            self.flask_app = Flask("harness")

            @self.flask_app.route("/other", methods=["GET", "POST"])
            def other() -> str:
                from flask import request

                self.reached.append(request.get_data())
                return "wrapped app"

            receiver = MM7(self.flask_app, **options)
            wsgi = self.flask_app
        self.receiver = receiver
        for register in (receiver.on_deliver, receiver.on_delivery_report, receiver.on_read_reply):
            register(self._handle)
        self.client = Client(LintMiddleware(wsgi))

    def _handle(self, msg: t.Any) -> t.Any:
        self.calls.append(msg)
        if self.flask_app is not None:
            from flask import current_app

            assert current_app.name == "harness"  # handlers run in the app context
        return self.behaviour(msg)

    def post(
        self,
        body: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
        path: str = "/mm7",
        **kwargs: t.Any,
    ) -> TestResponse:
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        return self.client.post(
            path,
            data=body,
            headers=all_headers,
            environ_base={"test.reached": self.reached},
            **kwargs,
        )


@pytest.fixture(params=["middleware", "extension"])
def receiver(request: pytest.FixtureRequest) -> Harness:
    return Harness(request.param)


@pytest.fixture
def make_receiver(request: pytest.FixtureRequest) -> t.Callable[..., Harness]:
    """Build a harness of either kind with settings, for parametrised tests."""
    return Harness
