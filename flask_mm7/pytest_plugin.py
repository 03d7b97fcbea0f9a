"""Opt-in pytest fixtures over :mod:`flask_mm7.testing`; nothing happens unless a test asks.

``mm7_request`` hands out the request builders; ``mm7_post`` posts to the test's ``app``
fixture and returns the parsed reply. The plugin is registered through the ``pytest11`` entry
point (disable with ``-p no:flask_mm7.pytest_plugin``) and can also be listed in
``pytest_plugins``. It imports the testing kit, and so Flask, only when a fixture is used.

.. code-block:: python

    def test_receive(mm7_post):
        reply = mm7_post(subject="Hello", attachments=[b"GIF89a..."])
        assert reply.ok, reply.summary
"""

from __future__ import annotations

import typing as t

import pytest

if t.TYPE_CHECKING:  # pragma: no cover
    from .testing import MM7Reply, MM7Request

__all__ = ["MM7Poster", "MM7RequestFactory", "mm7_post", "mm7_request"]


class MM7RequestFactory:
    """The builders of :mod:`flask_mm7.testing` under short names."""

    def __init__(self) -> None:
        from . import testing

        self.deliver = testing.build_deliver
        self.delivery_report = testing.build_delivery_report
        self.read_reply = testing.build_read_reply
        self.seed_example = testing.seed_example
        self.Media = testing.Media


class MM7Poster:
    """Post to one WSGI target: ``poster(request)`` or ``poster(**build_deliver_kwargs)``."""

    def __init__(self, target: t.Any, path: str = "/mm7") -> None:
        self.target = target
        self.path = path

    def __call__(
        self,
        request: MM7Request | None = None,
        *,
        path: str | None = None,
        auth: tuple[str, str] | str | None = None,
        **deliver_kwargs: t.Any,
    ) -> MM7Reply:
        from .testing import build_deliver, post

        if request is None:
            request = build_deliver(**deliver_kwargs)
        elif deliver_kwargs:
            raise TypeError("pass either a built request or build_deliver() keywords, not both")
        return post(self.target, request, path=path or self.path, auth=auth)


@pytest.fixture
def mm7_request() -> MM7RequestFactory:
    """Request builders: ``mm7_request.deliver(...)``, ``.delivery_report(...)``,
    ``.read_reply(...)``, ``.seed_example()``, ``.Media``."""
    return MM7RequestFactory()


@pytest.fixture
def mm7_post(request: pytest.FixtureRequest) -> MM7Poster:
    """Post MM7 requests to the ``app`` fixture (a Flask app or any WSGI callable) at
    ``/mm7``; returns an :class:`~flask_mm7.testing.MM7Reply`."""
    try:
        app = request.getfixturevalue("app")
    except pytest.FixtureLookupError:
        pytest.fail(
            "mm7_post needs an `app` fixture returning your Flask app or WSGI callable; "
            "define one in conftest.py",
            pytrace=False,
        )
    return MM7Poster(app)
