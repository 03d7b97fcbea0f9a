"""The one instrumentation seam of the receive path: a probe per MM7 request.

The middleware asks its :class:`Observer` for a probe when an MM7 request arrives; the pipeline
tells the probe what it learns (the request, the envelope, the message, a duplicate), wraps its
stages in :meth:`Probe.stage` (``read_body``, ``parse_soap``, ``handler``) and ends it with
:meth:`Probe.finish` once the reply is known. With metrics, tracing and the access log all off
the probe is :data:`NO_PROBE`, whose methods do nothing: the cost is a few empty calls. Else a
:class:`Recording` gathers the request's :class:`Facts` and hands them, at the end, to the
metrics (:mod:`flask_mm7._metrics`), the span (:mod:`flask_mm7._tracing`) and the access log
(:mod:`flask_mm7.access`). None of them can fail a request: their errors are logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import typing as t

from . import access
from ._logs import get_logger

if t.TYPE_CHECKING:  # pragma: no cover
    from _typeshed.wsgi import WSGIEnvironment

    from ._config import Settings
    from ._messages import Message
    from ._metrics import Metrics
    from ._outcome import Outcome
    from ._request import Request
    from ._soap import Envelope
    from ._tracing import Tracing

logger = get_logger(__name__)

#: shared and reentrant: the no-op probe's stages allocate nothing
_NOTHING: t.ContextManager[None] = contextlib.nullcontext()


class Probe:
    """What the pipeline tells about one request; this base class ignores all of it."""

    __slots__ = ()

    def stage(self, name: str) -> t.ContextManager[None]:
        """A context around one stage: ``read_body``, ``parse_soap`` or ``handler``."""
        return _NOTHING

    def saw_request(self, request: Request) -> None:
        """The request passed its HTTP checks; its body is about to be read."""

    def saw_envelope(self, envelope: Envelope) -> None:
        """The SOAP envelope was read."""

    def saw_message(self, message: Message) -> None:
        """The message was built; its handler (or the dedupe store) comes next."""

    def saw_duplicate(self) -> None:
        """The dedupe store recognised a retry: answered without the handler."""

    def finish(self, http_status: int, outcome: Outcome | None) -> None:
        """The reply is known (``outcome`` is None for an answer that is no SOAP reply, 405)."""


#: the probe of every request while nothing observes them
NO_PROBE = Probe()


@dataclasses.dataclass
class Facts:
    """What the access log, the metrics and the span say about one request. Never content,
    never credentials: the values below only (each sink escapes and cuts the sender's ones)."""

    remote_addr: str | None = None
    body_size: int | None = None
    transaction_id: str | None = None
    operation: str | None = None
    mm7_version: str | None = None
    attachments: int | None = None
    carrier_id: str | None = None
    duplicate: bool = False
    http_status: int = 0
    status_code: int | None = None
    fault_code: str | None = None
    #: seconds from the request's arrival at the middleware to its reply
    duration: float = 0.0
    #: seconds in the handler, None when it was not called
    handler_duration: float | None = None


class Observer:
    """Makes the probes of one middleware from its settings; imports ``prometheus_client``
    and ``opentelemetry`` only when metrics or tracing are on."""

    def __init__(self, settings: Settings) -> None:
        self.metrics: Metrics | None = None
        self.tracing: Tracing | None = None
        if settings.metrics is not False:
            from ._metrics import metrics_for

            self.metrics = metrics_for(settings.metrics)
        if settings.tracing is not False:
            from ._tracing import Tracing

            self.tracing = Tracing(None if settings.tracing is True else settings.tracing)
        self._always = self.metrics is not None or self.tracing is not None

    def start(self, environ: WSGIEnvironment) -> Probe:
        """The probe of the MM7 request ``environ``: :data:`NO_PROBE` when nothing observes
        it (no metrics, no tracing, the access logger not enabled for INFO)."""
        if self._always or access.enabled():
            return Recording(self, environ)
        return NO_PROBE


class Recording(Probe):
    """A probe that gathers the request's :class:`Facts` and reports them when it ends."""

    __slots__ = ("_observer", "_started", "_request", "_span", "facts")

    def __init__(self, observer: Observer, environ: WSGIEnvironment) -> None:
        self._observer = observer
        self._started = time.perf_counter()
        self._request: Request | None = None
        self.facts = Facts(remote_addr=environ.get("REMOTE_ADDR"))
        self._span: t.Any = None
        try:
            if observer.metrics is not None:
                observer.metrics.started()
            if observer.tracing is not None:
                self._span = observer.tracing.start(environ)
        except Exception:
            logger.exception("flask_mm7 could not start observing a request")

    @contextlib.contextmanager
    def _stage(self, name: str) -> t.Iterator[None]:
        tracing = self._observer.tracing
        span = tracing.child(name) if tracing is not None else None
        started = time.perf_counter()
        try:
            if span is None:
                yield
            else:
                with span:
                    yield
        finally:
            if name == "handler":
                self.facts.handler_duration = time.perf_counter() - started

    def stage(self, name: str) -> t.ContextManager[None]:
        if self._observer.tracing is not None:
            return self._stage(name)
        return _HandlerTimer(self.facts) if name == "handler" else _NOTHING

    def saw_request(self, request: Request) -> None:
        self._request = request
        self.facts.body_size = request.content_length

    def saw_envelope(self, envelope: Envelope) -> None:
        facts = self.facts
        facts.transaction_id = envelope.transaction_id
        facts.operation = envelope.operation  # one of the three the parser accepts
        facts.mm7_version = envelope.mm7_version

    def saw_message(self, message: Message) -> None:
        self.facts.attachments = len(getattr(message, "attachments", ()))
        self.facts.carrier_id = getattr(message, "carrier_id", None)

    def saw_duplicate(self) -> None:
        self.facts.duplicate = True

    def finish(self, http_status: int, outcome: Outcome | None) -> None:
        facts = self.facts
        facts.duration = time.perf_counter() - self._started
        facts.http_status = http_status
        if outcome is not None:
            facts.status_code = outcome.status_code
            if outcome.is_fault:
                facts.fault_code = outcome.fault_code
        if facts.body_size is None and self._request is not None:  # chunked: what was read
            facts.body_size = self._request.input.bytes_read
        observer = self._observer
        try:
            if observer.metrics is not None:
                observer.metrics.finished(facts)
        except Exception:
            logger.exception("flask_mm7 could not update its metrics")
        try:
            if observer.tracing is not None:
                observer.tracing.finish(self._span, facts, outcome)
        except Exception:
            logger.exception("flask_mm7 could not end its span")
        access.log(facts)


class _HandlerTimer:
    """The handler stage without tracing: its time only (cheaper than a generator)."""

    __slots__ = ("_facts", "_started")

    def __init__(self, facts: Facts) -> None:
        self._facts = facts
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc_info: object) -> None:
        self._facts.handler_duration = time.perf_counter() - self._started
