"""OpenTelemetry spans of MM7 requests, through ``opentelemetry-api`` (extra ``[otel]``).

One span per MM7 request, ``MM7 DeliverReq`` (``MM7`` until the envelope names the operation),
with child spans ``MM7 read body``, ``MM7 parse SOAP`` and ``MM7 handler``; spans the handler
opens nest under the last. It joins the trace that is current when the request reaches the
middleware (Flask or WSGI instrumentation wrapped around it); without one, it starts a trace as
the server span. Attributes use the semantic names where they exist (``http.*``,
``client.address``) and ``mm7.*`` for the rest. An exception raised in a stage is recorded on
its span; a request answered with a 5xx ends with an error status. Imported only when
``tracing`` is on.
"""

from __future__ import annotations

import contextlib
import typing as t

try:
    from opentelemetry import context, trace
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("MM7_TRACING needs opentelemetry-api: pip install 'flask-mm7[otel]'") from exc

from ._errors import MM7Error
from ._logs import loggable

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

    from ._observe import Facts
    from ._outcome import Outcome

#: the stages' span names
STAGES = {"read_body": "MM7 read body", "parse_soap": "MM7 parse SOAP", "handler": "MM7 handler"}


class RequestSpan(t.NamedTuple):
    span: trace.Span
    #: the context token to detach when the request ends
    token: object


class Tracing:
    """Starts and ends the spans of MM7 requests with one tracer.

    :param provider: a ``TracerProvider``, or None for the global one (set by the SDK or an
        auto-instrumentation agent; looked up on each span, so it may be set after start-up).
    """

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        from . import __name__ as package

        self.tracer = trace.get_tracer(package, tracer_provider=provider)

    def start(self, environ: WSGIEnvironment) -> RequestSpan:
        """Start the request's span, as the current span."""
        # inside a trace (WSGI/Flask instrumentation outside us) a step of it, else the server
        joined = trace.get_current_span().get_span_context().is_valid
        kind = trace.SpanKind.INTERNAL if joined else trace.SpanKind.SERVER
        span = self.tracer.start_span(
            "MM7",
            kind=kind,
            attributes={
                "http.request.method": environ.get("REQUEST_METHOD", ""),
                "url.path": environ.get("PATH_INFO") or "/",
                "client.address": _sent(environ.get("REMOTE_ADDR")) or "",
            },
        )
        return RequestSpan(span, context.attach(trace.set_span_in_context(span)))

    @contextlib.contextmanager
    def child(self, name: str) -> t.Iterator[None]:
        """A child span around one stage, current while it runs; records what it raises."""
        span = self.tracer.start_span(STAGES.get(name, name))
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield
        except Exception as exc:
            span.record_exception(exc)
            # a refusal (the handler's MM7Error, a malformed request) is an answer, not an error
            if not isinstance(exc, MM7Error) or exc.retryable:
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            context.detach(token)
            span.end()

    def finish(self, request: RequestSpan | None, facts: Facts, outcome: Outcome | None) -> None:
        """End the request's span with its facts."""
        if request is None:
            return
        span = request.span
        try:
            if facts.operation:
                span.update_name(f"MM7 {facts.operation}")
            attributes: dict[str, t.Any] = {
                "http.response.status_code": facts.http_status,
                "http.request.body.size": facts.body_size,
                "mm7.transaction_id": _sent(facts.transaction_id),
                "mm7.operation": facts.operation,
                "mm7.version": _sent(facts.mm7_version),
                "mm7.status_code": facts.status_code,
                "mm7.fault_code": facts.fault_code,
                "mm7.attachments": facts.attachments,
                "mm7.carrier_id": _sent(facts.carrier_id),
                "mm7.duplicate": facts.duplicate,
            }
            span.set_attributes({k: v for k, v in attributes.items() if v is not None})
            if facts.http_status >= 500:
                text = outcome.status_text if outcome is not None else ""
                span.set_status(trace.Status(trace.StatusCode.ERROR, text))
        finally:
            context.detach(t.cast(t.Any, request.token))
            span.end()


def _sent(value: str | None) -> str | None:
    """A value from the sender as a span may carry it: escaped and cut."""
    return None if value is None else str(loggable(value))
