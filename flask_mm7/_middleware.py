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

from werkzeug.http import HTTP_STATUS_CODES

from . import _soap
from ._auth import BasicAuth, IPAllowlist
from ._config import Settings
from ._errors import Forbidden, MM7Error, Overloaded, Unauthorized
from ._logs import get_logger
from ._observe import Observer, Probe
from ._outcome import Outcome, Reply, render
from ._overload import ConcurrencyLimit
from ._receiver import Handler, Receiver
from ._request import Request

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: environ key under which the middleware leaves the reply's MM7 status for logging/tests
ENVIRON_STATUS = "flask_mm7._status"

logger = get_logger(__name__)


class MM7Middleware(Receiver):
    """Answer MM7 requests POSTed to ``path``; pass every other request to ``app``.

    :param app: the WSGI app to wrap; None answers 404 off the MM7 path.
    :param settings: a :class:`~flask_mm7._config.Settings`; or give its fields as keywords
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
        #: makes the probe of each MM7 request: metrics, tracing, access log
        self.observer = Observer(settings)
        self._metrics_path = settings.metrics_path
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
            if path == self._metrics_path:
                return self._serve_metrics(environ, start_response)
            if self.app is None:
                return _plain(start_response, 404)
            return self.app(environ, start_response)
        probe = self.observer.start(environ)
        outcome = self._refuse_access(environ)
        envelope = None
        if outcome is None:
            if environ.get("REQUEST_METHOD", "GET").upper() != "POST":
                probe.finish(405, None)
                return _plain(start_response, 405, [("Allow", "POST")])
            limit = self.concurrency
            if limit is None:
                outcome, envelope = self._handle(environ, probe)
            elif limit.try_acquire():
                try:
                    outcome, envelope = self._handle(environ, probe)
                finally:
                    limit.release()
            else:
                overload = Overloaded(
                    4006, f"More than {limit.limit} requests at once; retry later"
                )
                outcome = self.refusal(overload)
        reply = render(outcome, envelope)
        probe.finish(reply.status, outcome)
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
        outcome = self._refuse_access(environ)
        return None if outcome is None else render(outcome)

    def _refuse_access(self, environ: WSGIEnvironment) -> Outcome | None:
        if self.allowlist is not None and not self.allowlist.allows(environ.get("REMOTE_ADDR")):
            return self.refusal(Forbidden(4007, "Client address not allowed"))
        auth = self.basic_auth
        if auth is not None and not auth.check(environ.get("HTTP_AUTHORIZATION")):
            refused = Unauthorized(4001, "Authentication required")
            return self.refusal(refused, challenge=auth.challenge)
        return None

    def _handle(
        self, environ: WSGIEnvironment, probe: Probe
    ) -> tuple[Outcome, _soap.Envelope | None]:
        """Build the :class:`~flask_mm7._request.Request` of an MM7 POST (its HTTP framing
        checked), then :meth:`answer` it."""
        try:
            request = Request.from_environ(environ, self.settings.max_content_length)
        except MM7Error as error:
            return self.refusal(error), None
        return self.answer(request, probe)

    def _serve_metrics(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> list[bytes]:
        """Answer a GET on ``metrics_path`` with the metrics (``Observer`` has them)."""
        if environ.get("REQUEST_METHOD", "GET").upper() not in ("GET", "HEAD"):
            return _plain(start_response, 405, [("Allow", "GET, HEAD")])
        metrics = self.observer.metrics
        assert metrics is not None  # Settings refuses metrics_path without metrics
        body, content_type = metrics.exposition()
        start_response(
            "200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        )
        return [body]


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
