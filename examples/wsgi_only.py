"""MM7 in front of any WSGI app, no Flask needed: :class:`flask_mm7.MM7Middleware`.

The middleware answers ``POST /mm7`` itself and passes every other request to the wrapped app.
Serve it with gunicorn from the repository root::

    gunicorn --bind 127.0.0.1:5000 examples.wsgi_only:application

or with ``python examples/wsgi_only.py`` (Werkzeug's development server, same address).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask_mm7 import DeliverRequest, MM7Middleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def hello(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The application being wrapped: it never sees the MM7 POSTs."""
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Hello from the wrapped WSGI app. MM7 deliveries go to POST /mm7.\n"]


def receive(msg: DeliverRequest) -> None:
    print(f"MMS {msg.transaction_id} from {msg.sender}: {msg.text!r}", flush=True)
    for part in msg.attachments:
        print(f"  {part.mimetype} {part.safe_filename} ({part.size} bytes)", flush=True)


application = MM7Middleware(hello, path="/mm7", on_deliver=receive)


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", 5000, application)
