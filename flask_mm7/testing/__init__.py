"""Build MM7 requests the way a relay sends them, post them to an app, and read the reply.

This is the testing kit: it writes DeliverReq, DeliveryReportReq and ReadReplyReq requests with
the stdlib :mod:`email` package and reads replies with :mod:`defusedxml`, so it shares no code
with flask_mm7's own MIME and SOAP parsers and can check them independently. It imports neither
pytest nor (at import time) Flask.

.. code-block:: python

    from flask_mm7.testing import build_deliver, post

    reply = post(app, build_deliver(subject="Hi", text="Hello", attachments=[Path("cat.jpg")]))
    assert reply.ok, reply.summary
"""

from __future__ import annotations

from .replies import MM7Reply, parse_reply, post
from .requests import (
    Media,
    MM7Request,
    build_deliver,
    build_delivery_report,
    build_read_reply,
    default_namespace,
)
from .seed import SEED_EXAMPLE_RESPONSE, seed_example

__all__ = [
    "SEED_EXAMPLE_RESPONSE",
    "MM7Reply",
    "MM7Request",
    "Media",
    "build_deliver",
    "build_delivery_report",
    "build_read_reply",
    "default_namespace",
    "parse_reply",
    "post",
    "seed_example",
]
