"""Prometheus metrics of MM7 requests, through ``prometheus_client`` (extra ``[metrics]``).

Registered once per registry (several apps on one registry share them):

* ``mm7_requests_total{operation,http_status,status_code}``: answered MM7 requests;
* ``mm7_request_duration_seconds{operation}``: from arrival to reply (histogram);
* ``mm7_handler_duration_seconds{operation}``: in the handler (histogram);
* ``mm7_request_body_bytes``: body sizes (histogram);
* ``mm7_requests_in_progress``: MM7 requests being handled (gauge);
* ``mm7_duplicates_total``: retries the dedupe store answered without the handler;
* ``mm7_faults_total{fault_code,status_code}``: SOAP Faults answered.

A label not known for a request (no envelope read, no MM7 status for a 405) is ``""``. Under
gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set, ``prometheus_client`` keeps every worker's
values in that directory and :func:`exposition` gathers them. Imported only when ``metrics``
is on.
"""

from __future__ import annotations

import os
import threading
import typing as t

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(
        "MM7_METRICS needs prometheus_client: pip install 'flask-mm7[metrics]'"
    ) from exc

if t.TYPE_CHECKING:  # pragma: no cover
    from ._observe import Facts

#: every metric name this module exports, as Prometheus sees them (the dashboard's test)
NAMES = (
    "mm7_requests_total",
    "mm7_request_duration_seconds",
    "mm7_handler_duration_seconds",
    "mm7_request_body_bytes",
    "mm7_requests_in_progress",
    "mm7_duplicates_total",
    "mm7_faults_total",
)
#: body sizes: 1 KiB to 64 MiB (the default max_content_length), by powers of 4
BODY_BUCKETS = tuple(float(4**power * 1024) for power in range(9))


class Metrics:
    """The metrics in one registry, and how a request's facts update them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        #: (operation, HTTP status, MM7 status, fault code) -> the labelled children
        self._children: dict[tuple[t.Any, ...], tuple[t.Any, ...]] = {}
        self.requests = Counter(
            "mm7_requests",
            "MM7 requests answered",
            ["operation", "http_status", "status_code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "mm7_request_duration_seconds",
            "Time from an MM7 request's arrival to its reply",
            ["operation"],
            registry=registry,
        )
        self.handler_duration = Histogram(
            "mm7_handler_duration_seconds",
            "Time spent in the MM7 handler",
            ["operation"],
            registry=registry,
        )
        self.body_bytes = Histogram(
            "mm7_request_body_bytes",
            "Size of MM7 request bodies",
            buckets=BODY_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "mm7_requests_in_progress",
            "MM7 requests being handled",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.duplicates = Counter(
            "mm7_duplicates",
            "Retries answered from the dedupe store without calling the handler",
            registry=registry,
        )
        self.faults = Counter(
            "mm7_faults",
            "SOAP Faults answered",
            ["fault_code", "status_code"],
            registry=registry,
        )

    def started(self) -> None:
        self.in_progress.inc()

    def finished(self, facts: Facts) -> None:
        self.in_progress.dec()
        operation = facts.operation or ""
        key = (operation, facts.http_status, facts.status_code, facts.fault_code)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and checks names: once per label set
            status_code = "" if facts.status_code is None else str(facts.status_code)
            children = self._children[key] = (
                self.requests.labels(operation, str(facts.http_status), status_code),
                self.request_duration.labels(operation),
                self.handler_duration.labels(operation),
                None
                if facts.fault_code is None
                else self.faults.labels(facts.fault_code, status_code),
            )
        requests, request_duration, handler_duration, faults = children
        requests.inc()
        request_duration.observe(facts.duration)
        if facts.handler_duration is not None:
            handler_duration.observe(facts.handler_duration)
        if facts.body_size is not None:
            self.body_bytes.observe(facts.body_size)
        if facts.duplicate:
            self.duplicates.inc()
        if faults is not None:
            faults.inc()

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its Content-Type: this registry's, or
        with ``PROMETHEUS_MULTIPROC_DIR`` set, every process's from that directory."""
        registry = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST


_metrics: dict[CollectorRegistry, Metrics] = {}
_lock = threading.Lock()


def metrics_for(spec: object) -> Metrics:
    """The metrics registered in ``spec`` (a registry, or True: the default one), made on
    first use: a registry refuses a metric name twice."""
    registry = prometheus_client.REGISTRY if spec is True else t.cast(CollectorRegistry, spec)
    with _lock:
        if registry not in _metrics:
            _metrics[registry] = Metrics(registry)
        return _metrics[registry]
