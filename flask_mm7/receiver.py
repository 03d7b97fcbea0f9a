"""The framework-free core: handler registry, dispatch, and the answer policy.

``Receiver.receive(stream, headers)`` turns one request body into one :class:`Reply`, calling
the registered handler in between. It never lets an exception out (but ``BaseException``
such as ``KeyboardInterrupt``): every outcome is an MM7 reply or a SOAP Fault.

Answer policy (README "Answer policy"):

* 1000 (or any status the handler returns) only after the handler returned;
* the handler raised :class:`MM7Error` with a final status -> HTTP 200, ``…Rsp`` with it;
* the handler raised ``MM7Error(3000)``/``MM7Error(4006)`` or returned those -> HTTP 500 Fault
  (Server), so the relay retries;
* the handler raised anything else, returned something invalid, or no handler is registered ->
  HTTP 500 Fault (Server, 3000), logged with its traceback, which is never sent;
* the request cannot be read as MM7 -> HTTP 400 Fault (Client, 2007; 4003 for an unknown
  operation), logged in one line.

With a ``dedupe`` store (see :mod:`flask_mm7.dedupe`), a retry (the same operation,
TransactionID, sender and decoded content) of a transaction answered with HTTP 200 gets that
answer again without a second handler call, and a retry arriving while the first is still in
the handler gets a retryable Fault (HTTP 503, 4006). The same TransactionID and sender with
other content is another message: it reaches the handler, with a warning logged.

Knows nothing of WSGI or Flask.
"""

from __future__ import annotations

import contextlib
import typing as t

from werkzeug.datastructures import Headers

from . import dedupe, soap
from .config import Settings
from .errors import MalformedRequest, MM7Error, Overloaded
from .logs import get_logger
from .messages import Message, build_message, safe_headers
from .parts import MimeBody, read_mime
from .status import StatusCode, default_text

logger = get_logger(__name__)

Handler = t.Callable[[t.Any], t.Any]
F = t.TypeVar("F", bound=Handler)


class Reply(t.NamedTuple):
    """An HTTP answer: status, headers, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class HandlerRegistry:
    """The ``on_deliver`` / ``on_delivery_report`` / ``on_read_reply`` decorators.

    Each stores the function and returns it unchanged, so handlers stay plain functions.
    """

    def __init__(self, handlers: dict[str, Handler] | None = None) -> None:
        #: operation name (``DeliverReq`` ...) -> handler; shared with the adapters
        self.handlers: dict[str, Handler] = handlers if handlers is not None else {}

    def _register(self, operation: str, function: F) -> F:
        if not callable(function):
            raise TypeError(f"an MM7 handler must be callable, not {function!r}")
        existing = self.handlers.get(operation)
        if existing is not None and existing is not function:
            raise RuntimeError(
                f"a handler for {operation} is already registered ({existing!r});"
                " register one function per operation and dispatch inside it"
            )
        self.handlers[operation] = function
        return function

    def on_deliver(self, function: F) -> F:
        """Register the handler of MM7 DeliverReq: ``function(msg: DeliverRequest)``."""
        return self._register("DeliverReq", function)

    def on_delivery_report(self, function: F) -> F:
        """Register the handler of DeliveryReportReq: ``function(msg: DeliveryReport)``."""
        return self._register("DeliveryReportReq", function)

    def on_read_reply(self, function: F) -> F:
        """Register the handler of ReadReplyReq: ``function(msg: ReadReply)``."""
        return self._register("ReadReplyReq", function)


class _HandlerBug(Exception):
    """The handler returned something that is not a status."""


def _normalise(result: object) -> tuple[int, str]:
    """A handler's return value as (status code, status text)."""
    if result is None:
        return StatusCode.SUCCESS, default_text(StatusCode.SUCCESS)
    code: object = result
    text: object = None
    if isinstance(result, tuple):
        if len(result) != 2:
            raise _HandlerBug(f"a handler may return (code, text), not a {len(result)}-tuple")
        code, text = result
    if isinstance(code, bool) or not isinstance(code, int) or not 1000 <= code <= 4999:
        raise _HandlerBug(f"a handler must return None, an MM7 status or (status, text): {code!r}")
    if text is None:
        text = default_text(code)
    if not isinstance(text, str):
        raise _HandlerBug(f"StatusText must be a str, not {type(text).__name__}")
    return int(code), text


def _retryable(code: int) -> bool:
    return code in (StatusCode.SERVER_ERROR, StatusCode.SERVICE_UNAVAILABLE)


class Receiver(HandlerRegistry):
    """Parse one MM7 request, call its handler, and build the reply.

    :param settings: limits and options; defaults are safe for a public endpoint.
    :param handlers: a registry to share (the Flask extension shares its own).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        handlers: dict[str, Handler] | None = None,
        on_deliver: Handler | None = None,
        on_delivery_report: Handler | None = None,
        on_read_reply: Handler | None = None,
    ) -> None:
        super().__init__(handlers)
        self.settings = settings or Settings()
        #: where answered transactions are remembered, or None (``settings.dedupe``)
        self.dedupe: dedupe.DedupeStore | None = dedupe.make_store(
            self.settings.dedupe,
            ttl=self.settings.dedupe_ttl,
            max_entries=self.settings.dedupe_max_entries,
            claim_timeout=self.settings.dedupe_claim_timeout,
            lease=self.settings.dedupe_lease,
        )
        if on_deliver is not None:
            self.on_deliver(on_deliver)
        if on_delivery_report is not None:
            self.on_delivery_report(on_delivery_report)
        if on_read_reply is not None:
            self.on_read_reply(on_read_reply)

    def call_handler(self, handler: Handler, message: Message) -> t.Any:
        """Run ``handler(message)``; adapters override this to add context (Flask's app)."""
        return handler(message)

    def receive(
        self, stream: t.IO[bytes], headers: Headers, content_length: int | None = None
    ) -> Reply:
        """Answer one request whose body is ``stream`` and whose HTTP headers are ``headers``.

        ``content_length``, when known, lets a small body be parsed in memory.
        """
        try:
            body = read_mime(
                stream,
                headers.get("Content-Type"),
                limits=self.settings.limits,
                content_length=content_length,
            )
        except MM7Error as error:
            return self._error_reply(error)
        except Exception:
            logger.exception("MM7 request could not be read")
            return self._fault("Server", StatusCode.SERVER_ERROR, "Server Error")
        envelope: soap.Envelope | None = None
        try:
            with body:
                soap_data = body.root.getvalue()
                envelope = soap.read_envelope(
                    soap_data,
                    body.root.mimetype_params.get("charset"),
                    max_size=self.settings.max_soap_size,
                    max_depth=self.settings.max_xml_depth,
                )
                if envelope.mm7_version is None:
                    raise MalformedRequest(2007, "No MM7Version in the request")
                message = build_message(envelope, body, safe_headers(headers), envelope.mm7_version)
                return self._dispatch(envelope, message, body)
        except MM7Error as error:
            if envelope is not None:
                error.transaction_id = error.transaction_id or envelope.transaction_id
                error.namespace = error.namespace or envelope.namespace
            return self._error_reply(error, envelope)
        except Exception:
            logger.exception("MM7 request failed inside flask_mm7")
            return self._fault("Server", StatusCode.SERVER_ERROR, "Server Error", envelope)

    def _dispatch(self, envelope: soap.Envelope, message: Message, body: MimeBody) -> Reply:
        """Call the operation's handler, through the dedupe store when there is one."""
        operation = envelope.operation
        handler = self.handlers.get(operation)
        if handler is None:
            logger.error(
                "MM7 %s %s refused with a retryable fault: no handler is registered for it",
                operation,
                envelope.transaction_id,
            )
            return self._fault("Server", StatusCode.SERVER_ERROR, "Server Error", envelope)
        store = self.dedupe
        if store is None or not envelope.transaction_id:
            return self._run(handler, envelope, message)[0]
        sender = getattr(message, "sender", None)
        key = dedupe.make_key(operation, envelope.transaction_id, str(sender or ""))
        content = dedupe.fingerprint(body.root.getvalue(), body.parts)
        claim = store.claim(key, content)
        if claim.state != dedupe.NEW and claim.digest == content:
            return self._duplicate(claim, envelope, message)
        if claim.reused or claim.state != dedupe.NEW:
            logger.warning(
                "MM7 %s %s: TransactionID and sender of an earlier message with other content;"
                " handled as a new message",
                operation,
                envelope.transaction_id,
            )
        if claim.state != dedupe.NEW:  # a store keeping one record per key: no claim to take
            return self._run(handler, envelope, message)[0]
        answer: tuple[int, str] | None = None
        try:
            reply, answer = self._run(handler, envelope, message)
        finally:
            if answer is None:  # a Fault (or an escaping BaseException): let the retry through
                store.release(key, claim.token)
        if answer is None:
            return reply
        try:
            store.complete(key, claim.token, *answer)
        except Exception:  # the handler succeeded: still answer it; a retry may repeat it
            logger.exception(
                "MM7 %s %s: the answer could not be recorded in the dedupe store",
                operation,
                envelope.transaction_id,
            )
            with contextlib.suppress(Exception):  # free the claim now, not when it runs out
                store.release(key, claim.token)
        return reply

    def _duplicate(self, claim: dedupe.Claim, envelope: soap.Envelope, message: Message) -> Reply:
        """The answer to a retry of a transaction that another request claimed."""
        operation, transaction_id = envelope.operation, envelope.transaction_id
        if claim.state == dedupe.BUSY or claim.status_code is None:
            logger.warning(
                "MM7 %s %s: a retry arrived while the first request is still being handled;"
                " answering a retryable fault",
                operation,
                transaction_id,
            )
            reply = self._fault(
                "Server",
                StatusCode.SERVICE_UNAVAILABLE,
                "Request still in progress",
                envelope,
                http_status=Overloaded.http_status,
            )
            reply.headers.append(("Retry-After", str(self.settings.retry_after)))
            return reply
        logger.info(
            "MM7 %s %s is a retry: answered %s again without calling the handler",
            operation,
            transaction_id,
            claim.status_code,
        )
        return self._response(
            envelope,
            message,
            claim.status_code,
            claim.status_text or default_text(claim.status_code),
        )

    def _run(
        self, handler: Handler, envelope: soap.Envelope, message: Message
    ) -> tuple[Reply, tuple[int, str] | None]:
        """Call the handler and turn its outcome into a reply (answer policy above), with the
        (status, text) answered when the reply is a final HTTP 200 one."""
        operation = envelope.operation
        try:
            result = self.call_handler(handler, message)
            code, text = _normalise(result)
        except MM7Error as error:
            code, text = error.status_code, error.status_text
        except Exception:
            logger.exception(
                "MM7 %s handler failed for TransactionID %s; answering a retryable fault",
                operation,
                envelope.transaction_id,
            )
            return self._fault("Server", StatusCode.SERVER_ERROR, "Server Error", envelope), None
        logger.info("MM7 %s %s answered %s", operation, envelope.transaction_id, code)
        if _retryable(code):
            return self._fault("Server", code, text, envelope), None
        return self._response(envelope, message, code, text), (code, text)

    def _response(self, envelope: soap.Envelope, message: Message, code: int, text: str) -> Reply:
        body = soap.write_response(
            envelope.operation,
            transaction_id=envelope.transaction_id,
            namespace=envelope.namespace,
            mm7_version=message.mm7_version,
            status_code=code,
            status_text=text,
        )
        return Reply(200, [("Content-Type", soap.CONTENT_TYPE)], body)

    def _error_reply(self, error: MM7Error, envelope: soap.Envelope | None = None) -> Reply:
        if error.fault_code == "Server":
            logger.error("MM7 request refused: %s", error)
        else:
            logger.warning("MM7 request refused: %s", error)
        reply = self._fault(
            error.fault_code,
            error.status_code,
            error.status_text,
            envelope,
            http_status=error.http_status,
            transaction_id=error.transaction_id,
            namespace=error.namespace,
        )
        if error.http_status == 503:
            reply.headers.append(("Retry-After", str(self.settings.retry_after)))
        return reply

    def _fault(
        self,
        fault_code: str,
        status_code: int,
        status_text: str,
        envelope: soap.Envelope | None = None,
        *,
        http_status: int = 500,
        transaction_id: str | None = None,
        namespace: str | None = None,
    ) -> Reply:
        if envelope is not None:
            transaction_id = transaction_id or envelope.transaction_id
            namespace = namespace or envelope.namespace
        body = soap.write_fault(
            fault_code=fault_code,
            fault_string=status_text,
            status_code=status_code,
            status_text=status_text,
            transaction_id=transaction_id,
            namespace=namespace or soap.DEFAULT_NAMESPACE,
            mm7_version=envelope.mm7_version if envelope is not None else None,
        )
        return Reply(http_status, [("Content-Type", soap.CONTENT_TYPE)], body)
