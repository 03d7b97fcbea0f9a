"""What one MM7 request comes to, and the one function that writes it as an HTTP reply.

Every step of the receive path ends in an :class:`Outcome`: the handler's answer (accepted
or refused: final), a retry (the handler failed or asked for one, no handler, overload, a
duplicate still in progress: the relay tries again) or a fault in the request itself.
:func:`render` turns an outcome, with the request's envelope when it was read, into the HTTP
status, headers and SOAP body. Nothing is changed after it is made. Knows nothing of WSGI,
MIME or handlers.
"""

from __future__ import annotations

import typing as t

from . import _soap
from ._errors import MM7Error
from ._status import StatusCode, default_text

#: the handler's answer, a success (1xxx): HTTP 200 ``…Rsp``
ACCEPTED = "accepted"
#: the handler's final refusal (2xxx-4xxx but 3000 and 4006): HTTP 200 ``…Rsp``
REFUSED = "refused"
#: try again later: HTTP 500 (503 with ``Retry-After``), a Server Fault
RETRY = "retry"
#: the request is at fault: HTTP 4xx, a Client (or VersionMismatch) Fault
FAULT = "fault"


class Reply(t.NamedTuple):
    """An HTTP answer: status, headers, body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Outcome(t.NamedTuple):
    """How one request ends: its kind, the MM7 status, and what the HTTP reply needs."""

    kind: str
    status_code: int
    status_text: str
    http_status: int = 200
    #: ``"Client"``, ``"Server"`` or ``"VersionMismatch"`` for a Fault
    fault_code: str | None = None
    #: seconds for ``Retry-After`` (a 503)
    retry_after: int | None = None
    #: the ``WWW-Authenticate`` challenge (a 401)
    challenge: str | None = None
    #: what to echo when no envelope was read whole (an error found after the TransactionID)
    transaction_id: str | None = None
    namespace: str | None = None

    @classmethod
    def answer(cls, status_code: int, status_text: str) -> Outcome:
        """The handler's final answer: accepted (1xxx) or refused, HTTP 200."""
        kind = ACCEPTED if status_code < 2000 else REFUSED
        return cls(kind, status_code, status_text)

    @classmethod
    def retry(
        cls,
        status_code: int = StatusCode.SERVER_ERROR,
        status_text: str | None = None,
        *,
        retry_after: int | None = None,
    ) -> Outcome:
        """Try again later: a Server Fault, HTTP 503 with ``retry_after``, else 500."""
        text = default_text(status_code) if status_text is None else status_text
        http_status = 503 if retry_after is not None else 500
        return cls(RETRY, status_code, text, http_status, "Server", retry_after)

    @classmethod
    def from_error(
        cls, error: MM7Error, *, retry_after: int | None = None, challenge: str | None = None
    ) -> Outcome:
        """The outcome of a refused request (``error`` raised by the receive path)."""
        kind = RETRY if error.fault_code == "Server" else FAULT
        return cls(
            kind,
            error.status_code,
            error.status_text,
            error.http_status,
            error.fault_code,
            retry_after if error.http_status == 503 else None,
            challenge,
            error.transaction_id,
            error.namespace,
        )

    @property
    def is_fault(self) -> bool:
        return self.kind in (RETRY, FAULT)


def render(outcome: Outcome, envelope: _soap.Envelope | None = None) -> Reply:
    """The HTTP reply for ``outcome``: a ``…Rsp`` (HTTP 200) or a SOAP Fault, in the
    request's namespace and MM7Version, with its TransactionID echoed when known."""
    headers = [("Content-Type", _soap.CONTENT_TYPE)]
    if outcome.retry_after is not None:
        headers.append(("Retry-After", str(outcome.retry_after)))
    if outcome.challenge is not None:
        headers.append(("WWW-Authenticate", outcome.challenge))
    if not outcome.is_fault and envelope is not None:
        body = _soap.write_response(
            envelope.operation,
            transaction_id=envelope.transaction_id,
            namespace=envelope.namespace,
            mm7_version=envelope.mm7_version,
            status_code=outcome.status_code,
            status_text=outcome.status_text,
        )
        return Reply(200, headers, body)
    body = _soap.write_fault(
        fault_code=outcome.fault_code or "Server",
        fault_string=outcome.status_text,
        status_code=outcome.status_code,
        status_text=outcome.status_text,
        transaction_id=envelope.transaction_id if envelope else outcome.transaction_id,
        namespace=(envelope.namespace if envelope else outcome.namespace)
        or _soap.DEFAULT_NAMESPACE,
        mm7_version=envelope.mm7_version if envelope is not None else None,
    )
    return Reply(outcome.http_status, headers, body)
