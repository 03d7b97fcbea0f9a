"""Receive MMS over 3GPP MM7 in a Flask or WSGI app.

``MM7`` (the Flask extension) is imported on first use, so ``from flask_mm7 import
MM7Middleware`` never imports Flask.
"""

from __future__ import annotations

import typing as t

from ._attachments import Attachment, AttachmentReleased
from ._errors import MM7Error
from ._messages import Address, DeliverRequest, DeliveryReport, ReadReply
from ._middleware import MM7Middleware
from ._receiver import HandlerResult
from ._status import StatusCode

if t.TYPE_CHECKING:  # pragma: no cover
    from ._extension import MM7

__all__ = [
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


def __getattr__(name: str) -> t.Any:
    if name == "MM7":
        from ._extension import MM7

        return MM7
    raise AttributeError(f"module 'flask_mm7' has no attribute {name!r}")
