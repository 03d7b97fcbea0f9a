"""The framework-free core: one request in, one reply out, through one pipeline of values.

:class:`~flask_mm7._request.Request` (built by an adapter) -> its parts, read under the limits
(:func:`flask_mm7._parts.read_body`) -> the SOAP envelope (:func:`flask_mm7._soap.read_envelope`)
-> the message (:func:`flask_mm7._messages.build_message`) -> the handler, through the dedupe
store when there is one -> one :class:`~flask_mm7._outcome.Outcome`, which the adapter writes
with :func:`~flask_mm7._outcome.render`. It never lets an exception out (but
``BaseException`` such as ``KeyboardInterrupt``).

Answer policy (README "Answer policy"):

* 1000 (or any status the handler returns) only after the handler returned;
* the handler returned or raised :class:`MM7Error` with a final status -> HTTP 200, ``…Rsp``
  with it (returning an MM7Error answers exactly as raising it);
* the handler returned or raised 3000/4006 -> HTTP 500 Fault (Server), so the relay retries;
* the handler raised anything else, returned something that is no status (an MM7Error with a
  success code included), or no handler is registered -> HTTP 500 Fault (Server, 3000),
  logged with its traceback, which is never sent;
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

from . import _soap, dedupe
from ._config import Settings
from ._errors import MM7Error, Overloaded
from ._logs import get_logger
from ._messages import (
    DeliverRequest,
    DeliveryReport,
    Message,
    ReadReply,
    build_message,
    safe_headers,
)
from ._observe import NO_PROBE, Probe
from ._outcome import ACCEPTED, REFUSED, Outcome, Reply
from ._parts import MimeBody, read_body
from ._request import Request
from ._status import RETRYABLE, StatusCode, default_text

logger = get_logger(__name__)

#: what a handler may return: None (1000), a status, (status, text), or an :class:`MM7Error`
HandlerResult = t.Union[None, int, t.Tuple[int, str], MM7Error]
Handler = t.Callable[[t.Any], HandlerResult]
_Deliver = t.TypeVar("_Deliver", bound=t.Callable[[DeliverRequest], HandlerResult])
_Report = t.TypeVar("_Report", bound=t.Callable[[DeliveryReport], HandlerResult])
_ReadReply = t.TypeVar("_ReadReply", bound=t.Callable[[ReadReply], HandlerResult])


class HandlerRegistry:
    """The ``on_deliver`` / ``on_delivery_report`` / ``on_read_reply`` decorators.

    Each stores the function and returns it unchanged, so handlers stay plain functions; the
    decorators are typed, so a type checker catches a handler for the wrong message type.
    """

    def __init__(self, handlers: dict[str, Handler] | None = None) -> None:
        #: operation name (``DeliverReq`` ...) -> handler; shared with the adapters
        self.handlers: dict[str, Handler] = handlers if handlers is not None else {}

    def _register(self, operation: str, function: Handler) -> None:
        if not callable(function):
            raise TypeError(f"an MM7 handler must be callable, not {function!r}")
        existing = self.handlers.get(operation)
        if existing is not None and existing is not function:
            raise RuntimeError(
                f"a handler for {operation} is already registered ({existing!r});"
                " register one function per operation and dispatch inside it"
            )
        self.handlers[operation] = function

    def on_deliver(self, function: _Deliver) -> _Deliver:
        """Register the handler of MM7 DeliverReq: ``function(msg: DeliverRequest)``."""
        self._register("DeliverReq", function)
        return function

    def on_delivery_report(self, function: _Report) -> _Report:
        """Register the handler of DeliveryReportReq: ``function(msg: DeliveryReport)``."""
        self._register("DeliveryReportReq", function)
        return function

    def on_read_reply(self, function: _ReadReply) -> _ReadReply:
        """Register the handler of ReadReplyReq: ``function(msg: ReadReply)``."""
        self._register("ReadReplyReq", function)
        return function


class _HandlerBug(Exception):
    """The handler returned something that is not a status."""


def handler_outcome(result: object) -> Outcome:
    """The outcome of what a handler returned (or raised: an :class:`MM7Error`).

    :raises _HandlerBug: for anything that is not a status, and for an MM7Error carrying a
        success code (an error that says "success" is a bug, not an answer).
    """
    if result is None:
        return Outcome.answer(StatusCode.SUCCESS, default_text(StatusCode.SUCCESS))
    if isinstance(result, MM7Error):
        if result.status_code < 2000:
            raise _HandlerBug(f"an MM7Error carries a failure, not {result.status_code}")
        code: object = result.status_code
        text: object = result.status_text
    elif isinstance(result, tuple):
        if len(result) != 2:
            raise _HandlerBug(f"a handler may return (code, text), not a {len(result)}-tuple")
        code, text = result
    else:
        code, text = result, None
    if isinstance(code, bool) or not isinstance(code, int) or not 1000 <= code <= 4999:
        raise _HandlerBug(f"a handler must return None, an MM7 status or (status, text): {code!r}")
    code = int(code)
    if text is None:
        text = default_text(code)
    if not isinstance(text, str):
        raise _HandlerBug(f"StatusText must be a str, not {type(text).__name__}")
    if code in RETRYABLE:
        return Outcome.retry(code, text)
    return Outcome.answer(code, text)


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

    # -- what adapters may override ------------------------------------------------------------

    def call_handler(self, handler: Handler, message: Message) -> HandlerResult:
        """Run ``handler(message)``; adapters override this to add context (Flask's app)."""
        return handler(message)

    def handler_failed(self, message: Message, exception: Exception) -> None:
        """Called when the handler raised (or returned no status): adapters tell their
        framework (Flask's signals); the failure is logged and answered by the receiver."""

    def answered(self, message: Message, outcome: Outcome) -> None:
        """Called once the handler's answer (or a retry's recorded one) is known."""

    # -- the pipeline --------------------------------------------------------------------------

    def answer(
        self, request: Request, probe: Probe = NO_PROBE
    ) -> tuple[Outcome, _soap.Envelope | None]:
        """The outcome of one MM7 request, with its envelope when it was read (what
        :func:`~flask_mm7._outcome.render` needs); ``probe`` is told each step."""
        probe.saw_request(request)
        try:
            with probe.stage("read_body"):
                body = read_body(
                    request.input,
                    request.mimetype,
                    request.options,
                    self.settings.limits,
                    request.content_length,
                )
        except MM7Error as error:
            return self.refusal(error), None
        except Exception:
            logger.exception("MM7 request could not be read")
            return Outcome.retry(), None
        with body:
            envelope: _soap.Envelope | None = None
            try:
                with probe.stage("parse_soap"):
                    envelope = _soap.read_envelope(
                        body.root.getvalue(),
                        body.root.mimetype_params.get("charset"),
                        max_size=self.settings.max_soap_size,
                        max_depth=self.settings.max_xml_depth,
                    )
                    probe.saw_envelope(envelope)
                    headers = safe_headers(request.headers)
                    message = build_message(envelope, body, headers, envelope.mm7_version)
            except MM7Error as error:
                return self.refusal(error), envelope
            except Exception:
                logger.exception("MM7 request failed inside flask_mm7")
                return Outcome.retry(), envelope
            probe.saw_message(message)
            try:
                outcome = self._dispatch(envelope, message, body, probe)
            except Exception:  # the dedupe store failed before the handler ran
                logger.exception("MM7 request failed inside flask_mm7")
                return Outcome.retry(), envelope
            if outcome.kind in (ACCEPTED, REFUSED):
                self.answered(message, outcome)
            return outcome, envelope

    def refusal(self, error: MM7Error, *, challenge: str | None = None) -> Outcome:
        """The outcome of a request refused with ``error``, logged in one line."""
        if error.fault_code == "Server":
            logger.error("MM7 request refused: %s", error)
        else:
            logger.warning("MM7 request refused: %s", error)
        return Outcome.from_error(error, retry_after=self.settings.retry_after, challenge=challenge)

    def _dispatch(
        self, envelope: _soap.Envelope, message: Message, body: MimeBody, probe: Probe
    ) -> Outcome:
        """Call the operation's handler, through the dedupe store when there is one."""
        operation = envelope.operation
        handler = self.handlers.get(operation)
        if handler is None:
            logger.error(
                "MM7 %s %s refused with a retryable fault: no handler is registered for it",
                operation,
                envelope.transaction_id,
            )
            return Outcome.retry()
        store = self.dedupe
        if store is None or not envelope.transaction_id:
            return self._run(handler, envelope, message, probe)
        sender = getattr(message, "sender", None)
        key = dedupe.make_key(operation, envelope.transaction_id, str(sender or ""))
        content = dedupe.fingerprint(body.root.getvalue(), body.parts)
        claim = store.claim(key, content)
        if claim.state != dedupe.NEW and claim.digest == content:
            probe.saw_duplicate()
            return self._duplicate(claim, envelope)
        if claim.reused or claim.state != dedupe.NEW:
            logger.warning(
                "MM7 %s %s: TransactionID and sender of an earlier message with other content;"
                " handled as a new message",
                operation,
                envelope.transaction_id,
            )
        if claim.state != dedupe.NEW:  # a store keeping one record per key: no claim to take
            return self._run(handler, envelope, message, probe)
        outcome: Outcome | None = None
        try:
            outcome = self._run(handler, envelope, message, probe)
        finally:
            final = outcome is not None and outcome.kind in (ACCEPTED, REFUSED)
            if not final:  # a Fault (or an escaping BaseException): let the retry through
                store.release(key, claim.token)
        assert outcome is not None
        if not final:
            return outcome
        try:
            store.complete(key, claim.token, outcome.status_code, outcome.status_text)
        except Exception:  # the handler succeeded: still answer it; a retry may repeat it
            logger.exception(
                "MM7 %s %s: the answer could not be recorded in the dedupe store",
                operation,
                envelope.transaction_id,
            )
            with contextlib.suppress(Exception):  # free the claim now, not when it runs out
                store.release(key, claim.token)
        return outcome

    def _duplicate(self, claim: dedupe.Claim, envelope: _soap.Envelope) -> Outcome:
        """The answer to a retry of a transaction that another request claimed."""
        operation, transaction_id = envelope.operation, envelope.transaction_id
        if claim.state == dedupe.BUSY or claim.status_code is None:
            logger.warning(
                "MM7 %s %s: a retry arrived while the first request is still being handled;"
                " answering a retryable fault",
                operation,
                transaction_id,
            )
            return Outcome.retry(
                Overloaded.status_code,
                "Request still in progress",
                retry_after=self.settings.retry_after,
            )
        logger.info(
            "MM7 %s %s is a retry: answered %s again without calling the handler",
            operation,
            transaction_id,
            claim.status_code,
        )
        text = claim.status_text or default_text(claim.status_code)
        return Outcome.answer(claim.status_code, text)

    def _run(
        self, handler: Handler, envelope: _soap.Envelope, message: Message, probe: Probe
    ) -> Outcome:
        """Call the handler and turn what it returned or raised into an outcome."""
        try:
            try:
                with probe.stage("handler"):
                    result: object = self.call_handler(handler, message)
            except MM7Error as error:
                result = error  # raising it answers exactly as returning it
            outcome = handler_outcome(result)
        except Exception as exc:
            self.handler_failed(message, exc)
            logger.exception(
                "MM7 %s handler failed for TransactionID %s; answering a retryable fault",
                envelope.operation,
                envelope.transaction_id,
            )
            return Outcome.retry()
        return outcome  # the access log (flask_mm7.access) records the answer


__all__ = ["Handler", "HandlerRegistry", "HandlerResult", "Receiver", "Reply", "handler_outcome"]
