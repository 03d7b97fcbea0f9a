"""Import boundaries: only the extension imports Flask."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "flask_mm7",
        "flask_mm7.mime",
        "flask_mm7.parts",
        "flask_mm7.soap",
        "flask_mm7.messages",
        "flask_mm7.receiver",
        "flask_mm7.middleware",
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
