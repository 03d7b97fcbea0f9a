"""``MM7Middleware``: the WSGI adapter that answers MM7 POSTs on one path.

Wrap any WSGI app; requests for other paths reach it untouched (their body unread)::

    from flask_mm7 import MM7Middleware

    def receive(msg):
        print(msg.sender, msg.text)

    application = MM7Middleware(other_wsgi_app, path="/mm7", on_deliver=receive)

On the MM7 path it answers 403 to a client outside ``allowed_ips`` and 401 to one without the
``basic_auth`` credentials (both before reading the body), 405 to anything but POST, 503 with
``Retry-After`` above ``max_concurrency`` requests at once, 415 to a body that is neither
multipart nor XML, 400 to a malformed or short Content-Length, 411 when the length cannot be
known, and 413 to a body above ``max_content_length`` (chunked bodies are counted as they are
read, so an oversized one is refused, never parsed truncated). Every such answer but the 405 is
a SOAP Fault. Needs Werkzeug only; never imports Flask.
"""

from __future__ import annotations

import dataclasses
import typing as t

from werkzeug.datastructures import EnvironHeaders
from werkzeug.http import HTTP_STATUS_CODES

from .auth import BasicAuth, IPAllowlist
from .config import Settings
from .errors import (
    BodyTooLarge,
    Forbidden,
    IncompleteBody,
    MM7Error,
    Overloaded,
    Unauthorized,
    UnsupportedMediaType,
)
from .headers import parse_mimetype
from .logs import get_logger
from .overload import ConcurrencyLimit
from .parts import is_xml_type
from .receiver import Handler, Receiver, Reply

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: environ key under which the middleware leaves the reply's MM7 status for logging/tests
ENVIRON_STATUS = "flask_mm7.status"

logger = get_logger(__name__)


class _BoundedInput:
    """``wsgi.input`` read no further than Content-Length, or counted up to the size limit.

    Hand-written rather than ``werkzeug.wsgi.get_input_stream``: that one reads an invalid
    Content-Length (``-1``, ``abc``) as an empty body, and refuses a chunked body of exactly
    the limit; MM7 needs both told apart (400 vs a valid request; "at the limit" is allowed).
    """

    def __init__(self, raw: t.IO[bytes], length: int | None, limit: int) -> None:
        self._raw = raw
        #: the Content-Length, or None for a chunked body
        self.length = length
        self._remaining = length
        self._limit = limit
        self._total = 0

    def read(self, size: int = -1) -> bytes:
        if self._remaining is not None:
            if self._remaining <= 0:
                return b""
            size = self._remaining if size < 0 else min(size, self._remaining)
        else:  # chunked: never read more than one byte past the limit
            room = self._limit + 1 - self._total
            size = room if size < 0 else min(size, room)
        try:
            data = self._raw.read(size)
        except Exception as exc:  # noqa: BLE001
            # a reset connection, a closed socket, or the server's own error for broken
            # chunked framing (gunicorn's and Werkzeug's are not all OSErrors): the sender's
            # fault, answered with a Client Fault and logged in one line, never a traceback
            raise IncompleteBody(
                2007, f"Request body could not be read ({type(exc).__name__}: {exc})"[:200]
            ) from None
        if self._remaining is not None:
            if not data:
                raise IncompleteBody(2007, "Request body shorter than its Content-Length")
            self._remaining -= len(data)
        else:
            self._total += len(data)
            if self._total > self._limit:
                raise BodyTooLarge(2007, f"Request body larger than {self._limit} bytes")
        return data


def _acceptable_type(content_type: str | None) -> bool:
    mimetype = parse_mimetype(content_type)
    if mimetype.startswith("multipart/"):
        return mimetype != "multipart/form-data"
    return is_xml_type(mimetype)


class MM7Middleware(Receiver):
    """Answer MM7 requests POSTed to ``path``; pass every other request to ``app``.

    :param app: the WSGI app to wrap; None answers 404 off the MM7 path.
    :param settings: a :class:`~flask_mm7.config.Settings`; or give its fields as keywords
        (``path="/mm7"``, ``max_content_length=...``, see the README's table).
    :param on_deliver: handler for DeliverReq (or use the ``@on_deliver`` decorator).
    :param on_delivery_report: handler for DeliveryReportReq.
    :param on_read_reply: handler for ReadReplyReq.
    """

    def __init__(
        self,
        app: WSGIApplication | None = None,
        *,
        settings: Settings | None = None,
        handlers: dict[str, Handler] | None = None,
        on_deliver: Handler | None = None,
        on_delivery_report: Handler | None = None,
        on_read_reply: Handler | None = None,
        **options: t.Any,
    ) -> None:
        if settings is None:
            settings = Settings(**options)
        elif options:
            settings = dataclasses.replace(settings, **options)
        super().__init__(
            settings,
            handlers=handlers,
            on_deliver=on_deliver,
            on_delivery_report=on_delivery_report,
            on_read_reply=on_read_reply,
        )
        self.app = app
        self._path = settings.path.rstrip("/") or "/"
        #: the Basic credentials check, or None when ``basic_auth`` is unset
        self.basic_auth = (
            BasicAuth(settings.basic_auth, settings.auth_realm) if settings.basic_auth else None
        )
        #: the source-address check, or None when ``allowed_ips`` is unset
        self.allowlist = IPAllowlist(settings.allowed_ips) if settings.allowed_ips else None
        #: the cap on requests in progress, or None when ``max_concurrency`` is unset
        self.concurrency = (
            ConcurrencyLimit(settings.max_concurrency) if settings.max_concurrency else None
        )
        if self.basic_auth is None and self.allowlist is None and not settings.allow_anonymous:
            logger.warning(
                "flask_mm7 accepts MM7 requests on %s from anyone: set basic_auth and/or"
                " allowed_ips (MM7_BASIC_AUTH, MM7_ALLOWED_IPS), or allow_anonymous=True if"
                " something in front of this app already restricts access",
                self._path,
            )

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path != self._path and (path.rstrip("/") or "/") != self._path:
            if self.app is None:
                return _plain(start_response, 404)
            return self.app(environ, start_response)
        reply = self.check_access(environ)
        if reply is None:
            if environ.get("REQUEST_METHOD", "GET").upper() != "POST":
                return _plain(start_response, 405, [("Allow", "POST")])
            limit = self.concurrency
            if limit is None:
                reply = self.handle(environ)
            elif limit.try_acquire():
                try:
                    reply = self.handle(environ)
                finally:
                    limit.release()
            else:
                reply = self._error_reply(
                    Overloaded(4006, f"More than {limit.limit} requests at once; retry later")
                )
        environ[ENVIRON_STATUS] = reply.status
        headers = [*reply.headers, ("Content-Length", str(len(reply.body)))]
        start_response(f"{reply.status} {HTTP_STATUS_CODES.get(reply.status, '')}", headers)
        return [reply.body]

    def check_access(self, environ: WSGIEnvironment) -> Reply | None:
        """The 403 or 401 reply for a client not allowed in, None for one that is.

        Reads ``REMOTE_ADDR`` and ``HTTP_AUTHORIZATION`` only, never the body.
        ``X-Forwarded-For`` counts only through ``werkzeug.middleware.proxy_fix.ProxyFix``
        wrapped *outside* this middleware, which rewrites ``REMOTE_ADDR``.
        """
        if self.allowlist is not None and not self.allowlist.allows(environ.get("REMOTE_ADDR")):
            return self._error_reply(Forbidden(4007, "Client address not allowed"))
        auth = self.basic_auth
        if auth is not None and not auth.check(environ.get("HTTP_AUTHORIZATION")):
            reply = self._error_reply(Unauthorized(4001, "Authentication required"))
            reply.headers.append(("WWW-Authenticate", auth.challenge))
            return reply
        return None

    def handle(self, environ: WSGIEnvironment) -> Reply:
        """Check the HTTP framing of an MM7 POST, then :meth:`receive` it."""
        headers = EnvironHeaders(environ)
        try:
            if not _acceptable_type(headers.get("Content-Type")):
                raise UnsupportedMediaType(2007, "Content-Type must be multipart/related or XML")
            stream = self._input(environ)
        except MM7Error as error:
            return self._error_reply(error)
        return self.receive(stream, headers, stream.length)  # type: ignore[arg-type]

    def _input(self, environ: WSGIEnvironment) -> _BoundedInput:
        limit = self.settings.max_content_length
        raw = environ.get("CONTENT_LENGTH", "").strip(" \t")  # HTTP's optional whitespace
        if raw:
            # 1*DIGIT, ASCII only: -1, abc, 1e3, "1, 2" are never read as empty, and
            # str.isdigit() alone passes "²" (int() then raises) and "٣" (int() reads 3)
            if not (raw.isascii() and raw.isdigit()):
                raise IncompleteBody(2007, "Invalid Content-Length")
            digits = raw.lstrip("0") or "0"
            # compared by length first: int() refuses more than 4300 digits (Python 3.11+)
            if len(digits) > len(str(limit)) or int(digits) > limit:
                raise BodyTooLarge(2007, f"Request body larger than {limit} bytes")
            return _BoundedInput(environ["wsgi.input"], int(digits), limit)
        if environ.get("wsgi.input_terminated"):  # chunked: count as we read
            return _BoundedInput(environ["wsgi.input"], None, limit)
        error = IncompleteBody(2007, "Content-Length required")
        error.http_status = 411
        raise error


def _plain(
    start_response: StartResponse, status: int, extra: list[tuple[str, str]] | None = None
) -> list[bytes]:
    reason = HTTP_STATUS_CODES[status]
    body = f"{status} {reason}\n".encode()
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *(extra or []),
        ],
    )
    return [body]
