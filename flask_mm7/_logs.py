"""The library's loggers: standard ``logging`` loggers that a broken handler cannot break.

A logging handler that raises (a full disk, a dead log shipper) must not change an MM7 reply:
a message the handler stored must still get its 1000, not the WSGI server's bare 500, or the
relay retries and the message arrives twice. Values from the sender (a TransactionID, a
handler's answer) are logged escaped and cut to :data:`MAX_LOGGED_CHARS`: a line break in them
cannot forge a second log line, and a huge value cannot flood the log. No handlers or levels
are set here; configure the ``flask_mm7`` logger as usual.
"""

from __future__ import annotations

import logging
import re
import typing as t

#: the most characters of one value written to a log line
MAX_LOGGED_CHARS = 200
#: control characters (line breaks included) and Unicode line separators
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def loggable(value: object) -> object:
    """``value`` as it may appear in a log line: numbers as they are, anything else as text
    with control characters escaped (``\\n``), cut to :data:`MAX_LOGGED_CHARS`."""
    if value is None or isinstance(value, (int, float)):
        return value
    text = repr(value) if isinstance(value, (bytes, bytearray)) else str(value)
    if len(text) > MAX_LOGGED_CHARS:
        text = text[:MAX_LOGGED_CHARS] + f"... ({len(text)} characters)"
    return _UNPRINTABLE.sub(lambda match: repr(match.group())[1:-1], text)


if t.TYPE_CHECKING:  # pragma: no cover
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:
    _LoggerAdapter = logging.LoggerAdapter


class QuietLogger(_LoggerAdapter):
    """A logger whose calls never raise."""

    def log(self, level: int, msg: object, *args: t.Any, **kwargs: t.Any) -> None:
        # checked before the arguments are escaped: no work for a line nobody will see
        if not self.isEnabledFor(level):
            return
        kwargs.setdefault("stacklevel", 2)  # report the caller, not this method
        try:
            super().log(level, msg, *map(loggable, args), **kwargs)
        except Exception:
            pass


def get_logger(name: str) -> QuietLogger:
    """``logging.getLogger(name)``, wrapped so that logging can never fail a request."""
    return QuietLogger(logging.getLogger(name), {})
