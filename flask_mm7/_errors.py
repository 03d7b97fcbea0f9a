"""The exception hierarchy: every error carries the MM7 status and SOAP fault code to answer.

The parsing layers (``mime``, ``parts``, ``soap``, ``messages``) raise only these, never
Werkzeug HTTP exceptions; the adapters turn them into HTTP replies. Knows nothing of WSGI.
"""

from __future__ import annotations

from ._status import RETRYABLE, StatusCode, default_text


class MM7Error(Exception):
    """Raise from a handler to answer an MM7 status other than 1000.

    ``MM7Error(2004, "content refused")`` answers HTTP 200 with a DeliverRsp carrying
    StatusCode 2004: a final refusal the relay will not retry. The retryable codes 3000 and
    4006 are answered as a SOAP Fault with HTTP 500 so the relay tries again.

    :param status_code: an MM7 status code (:class:`StatusCode` or any int 1000-4999).
    :param status_text: the StatusText; defaults to the spec's text for the code.
    """

    #: the MM7 status answered when this error is raised without a code
    status_code: int = StatusCode.SERVER_ERROR
    #: ``"Client"`` (the sender's fault) or ``"Server"`` (ours) when answered as a Fault
    fault_code: str = "Server"
    #: the HTTP status a Fault for this error goes out with
    http_status: int = 500

    def __init__(
        self,
        status_code: int | None = None,
        status_text: str | None = None,
        *,
        transaction_id: str | None = None,
        namespace: str | None = None,
    ) -> None:
        if status_code is not None:
            if isinstance(status_code, bool) or not isinstance(status_code, int):
                raise TypeError(f"status_code must be an int, not {type(status_code).__name__}")
            if not 1000 <= status_code <= 4999:
                raise ValueError(f"status_code {status_code} is not an MM7 status (1000-4999)")
            self.status_code = status_code
        self.status_text = (
            status_text if status_text is not None else default_text(self.status_code)
        )
        #: the request's TransactionID and MM7 namespace, when the error was found after
        #: they were read (the Fault echoes them)
        self.transaction_id = transaction_id
        self.namespace = namespace
        super().__init__(self.status_code, self.status_text)

    def __str__(self) -> str:
        return f"{self.status_code} {self.status_text}"

    @property
    def retryable(self) -> bool:
        """True for the codes that mean "try again later": answered with a 5xx Fault."""
        return self.status_code in RETRYABLE


class RequestError(MM7Error):
    """The request cannot be processed as MM7: answered with a Client Fault (HTTP 400).

    4xx, not SOAP 1.1's 500, because the request itself is at fault (WS-I Basic Profile
    R1113: a malformed request gets 400); a 5xx is kept for what a retry may cure.
    """

    status_code = StatusCode.MESSAGE_FORMAT_CORRUPT
    fault_code = "Client"
    http_status = 400


class MalformedRequest(RequestError):
    """Broken MIME framing, XML or envelope (2007)."""


class LimitExceeded(RequestError):
    """A configured limit (parts, depth, header or SOAP size) was exceeded (2007).

    ``http_status`` is 413 when the body itself is too large.
    """


class UnsupportedOperation(RequestError):
    """The Body holds an MM7 operation this receiver does not handle (4003)."""

    status_code = StatusCode.UNSUPPORTED_OPERATION


class VersionMismatch(RequestError):
    """The root is not a SOAP 1.1 Envelope (SOAP 1.1 §4.4.1 ``VersionMismatch`` fault)."""

    fault_code = "VersionMismatch"


class ServiceUnavailable(MM7Error):
    """We cannot take the message now (no handler, overload): retry later (4006, HTTP 500/503)."""

    status_code = StatusCode.SERVICE_UNAVAILABLE


class BodyTooLarge(LimitExceeded):
    """The request body is larger than ``max_content_length`` (HTTP 413)."""

    http_status = 413


class IncompleteBody(RequestError):
    """The client sent less than its Content-Length, or a Content-Length we cannot read (400)."""

    http_status = 400


class LengthRequired(IncompleteBody):
    """Neither a Content-Length nor a chunked body (HTTP 411)."""

    http_status = 411


class UnsupportedMediaType(RequestError):
    """The Content-Type is neither multipart nor XML (HTTP 415)."""

    http_status = 415


class Unauthorized(RequestError):
    """No or wrong HTTP Basic credentials (HTTP 401 with ``WWW-Authenticate``, 4001)."""

    status_code = StatusCode.IMPROPER_IDENTIFICATION
    http_status = 401


class Forbidden(RequestError):
    """The client's address is not in ``allowed_ips`` (HTTP 403, 4007)."""

    status_code = StatusCode.SERVICE_DENIED
    http_status = 403


class Overloaded(ServiceUnavailable):
    """Too many requests at once, or a duplicate still in its handler (HTTP 503, 4006)."""

    http_status = 503
