"""Import boundaries: only the extension imports Flask."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "flask_mm7",
        "flask_mm7._mime",
        "flask_mm7._parts",
        "flask_mm7._soap",
        "flask_mm7._messages",
        "flask_mm7._receiver",
        "flask_mm7._middleware",
    ],
)
def test_core_modules_do_not_import_flask(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "from flask_mm7 import MM7Middleware\n"
        "assert 'flask' not in sys.modules, sorted(m for m in sys.modules if 'flask' == m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names() -> None:
    import flask_mm7

    assert sorted(flask_mm7.__all__) == sorted(
        [
            "MM7",
            "MM7Middleware",
            "MM7Error",
            "StatusCode",
            "DeliverRequest",
            "DeliveryReport",
            "ReadReply",
            "Address",
            "Attachment",
            "AttachmentReleased",
            "HandlerResult",
        ]
    )
    for name in flask_mm7.__all__:
        value = getattr(flask_mm7, name)
        assert name == "HandlerResult" or value.__name__ == name  # a type alias has none
    with pytest.raises(AttributeError):
        flask_mm7.Nope  # noqa: B018


def test_internal_modules_have_private_names() -> None:
    """The public API is ``flask_mm7.__all__``, the testing kit, the CLI, the pytest plugin,
    the signals, the dedupe store protocol and the hand-off; everything else is internal."""
    import pkgutil

    import flask_mm7

    public = {"access", "cli", "dedupe", "handoff", "pytest_plugin", "signals", "testing"}
    names = {module.name for module in pkgutil.iter_modules(flask_mm7.__path__)}
    assert public <= names
    assert {name for name in names - public if not name.startswith("_")} == set()
