"""Receive MMS over 3GPP MM7 in a Flask or WSGI app."""

from __future__ import annotations

from .errors import MM7Error
from .status import StatusCode

__all__ = ["MM7Error", "StatusCode"]
