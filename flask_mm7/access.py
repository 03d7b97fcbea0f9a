"""The access log: one INFO record per answered MM7 request, on the ``flask_mm7.access`` logger.

Its facts are record attributes (:data:`FIELDS`), so any JSON formatter can write them as
fields; the message is a short line for people. Values from the sender are escaped and cut
(:func:`flask_mm7._logs.loggable`); credentials and message content are never in it. Silence
it with ``logging.getLogger("flask_mm7.access").setLevel(logging.WARNING)``: then no facts are
gathered for it at all.
"""

from __future__ import annotations

import logging
import typing as t

from ._logs import loggable

if t.TYPE_CHECKING:  # pragma: no cover
    from ._observe import Facts

#: the name of the access logger (a child of ``flask_mm7``)
LOGGER_NAME = "flask_mm7.access"
#: the record attributes each access record carries
FIELDS = (
    "transaction_id",
    "operation",
    "mm7_version",
    "http_status",
    "status_code",
    "fault_code",
    "duration",
    "body_size",
    "attachments",
    "remote_addr",
    "carrier_id",
)

#: a plain logger: a LoggerAdapter (the library's QuietLogger) drops ``extra``
logger = logging.getLogger(LOGGER_NAME)


def enabled() -> bool:
    """Whether an access record would be written (one cached level lookup)."""
    return logger.isEnabledFor(logging.INFO)


def log(facts: Facts) -> None:
    """Write the access record of one answered request; a failing log handler cannot fail
    the request (see :mod:`flask_mm7._logs`)."""
    if not enabled():
        return
    extra = {name: loggable(getattr(facts, name)) for name in FIELDS}
    try:
        logger.info(
            "MM7 %s %s from %s: HTTP %s, status %s in %.1f ms",
            extra["operation"] or "-",
            extra["transaction_id"] or "-",
            extra["remote_addr"] or "-",
            facts.http_status,
            "-" if facts.status_code is None else facts.status_code,
            facts.duration * 1000,
            extra=extra,
        )
    except Exception:
        pass
