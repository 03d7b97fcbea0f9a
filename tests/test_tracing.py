"""OpenTelemetry (``MM7_TRACING``): the spans of MM7 requests, read from the SDK's in-memory
exporter."""

from __future__ import annotations

import subprocess
import sys
import typing as t

import pytest
from flask import Flask
from helpers import mm7_body
from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.test import Client

from flask_mm7 import MM7, MM7Error, MM7Middleware


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _post(client: Client, **headers: str) -> t.Any:
    body, content_type = mm7_body()
    return client.post("/mm7", data=body, content_type=content_type, headers=headers)


def _by_name(spans: t.Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    names = [span.name for span in spans]
    assert len(set(names)) == len(names), names
    return {span.name: span for span in spans}


def test_a_delivery_is_one_span_with_its_facts_and_three_stages(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    inner: list[str] = []
    tracer = provider.get_tracer("handler")

    def handler(msg: t.Any) -> None:
        with tracer.start_as_current_span("store message"):
            inner.append(msg.transaction_id)

    client = Client(MM7Middleware(None, allow_anonymous=True, tracing=provider, on_deliver=handler))
    body, content_type = mm7_body()
    response = client.post(
        "/mm7", data=body, content_type=content_type,
        headers={"X-OpenMarket-Carrier-Id": "383"},
        environ_base={"REMOTE_ADDR": "198.51.100.4"},
    )  # fmt: skip
    assert response.status_code == 200 and inner == ["TID-1"]
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {
        "MM7 DeliverReq", "MM7 read body", "MM7 parse SOAP", "MM7 handler", "store message",
    }  # fmt: skip
    request = spans["MM7 DeliverReq"]
    assert request.kind == SpanKind.SERVER and request.parent is None
    assert request.status.status_code == StatusCode.UNSET
    assert dict(request.attributes or {}) == {
        "http.request.method": "POST",
        "url.path": "/mm7",
        "client.address": "198.51.100.4",
        "http.response.status_code": 200,
        "http.request.body.size": len(body),
        "mm7.transaction_id": "TID-1",
        "mm7.operation": "DeliverReq",
        "mm7.version": "6.8.0",
        "mm7.status_code": 1000,
        "mm7.attachments": 2,
        "mm7.carrier_id": "383",
        "mm7.duplicate": False,
    }
    trace_id = request.context.trace_id
    for name in ("MM7 read body", "MM7 parse SOAP", "MM7 handler"):
        stage = spans[name]
        assert stage.context.trace_id == trace_id
        assert stage.parent is not None and stage.parent.span_id == request.context.span_id
        assert request.start_time <= stage.start_time <= stage.end_time <= request.end_time
    assert spans["MM7 read body"].end_time <= spans["MM7 parse SOAP"].start_time
    assert spans["MM7 parse SOAP"].end_time <= spans["MM7 handler"].start_time
    store = spans["store message"]
    assert store.parent is not None
    assert store.parent.span_id == spans["MM7 handler"].context.span_id


def test_a_failing_handler_records_its_exception(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def handler(msg: t.Any) -> None:
        raise RuntimeError("database down")

    client = Client(MM7Middleware(None, allow_anonymous=True, tracing=provider, on_deliver=handler))
    assert _post(client).status_code == 500
    spans = _by_name(exporter.get_finished_spans())
    failed = spans["MM7 handler"]
    assert failed.status.status_code == StatusCode.ERROR
    [event] = failed.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "RuntimeError"
    assert (event.attributes or {})["exception.message"] == "database down"
    request = spans["MM7 DeliverReq"]
    assert request.status.status_code == StatusCode.ERROR
    assert (request.attributes or {})["mm7.fault_code"] == "Server"
    assert (request.attributes or {})["http.response.status_code"] == 500


def test_a_refusal_the_handler_raises_is_an_answer_not_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    def handler(msg: t.Any) -> None:
        raise MM7Error(2004, "unknown recipient")

    client = Client(MM7Middleware(None, allow_anonymous=True, tracing=provider, on_deliver=handler))
    assert _post(client).status_code == 200
    spans = _by_name(exporter.get_finished_spans())
    assert spans["MM7 handler"].status.status_code == StatusCode.UNSET
    assert [e.name for e in spans["MM7 handler"].events] == ["exception"]
    assert spans["MM7 DeliverReq"].status.status_code == StatusCode.UNSET
    assert (spans["MM7 DeliverReq"].attributes or {})["mm7.status_code"] == 2004


def test_a_malformed_body_is_recorded_on_the_stage_that_found_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client = Client(MM7Middleware(None, allow_anonymous=True, tracing=provider))
    response = client.post("/mm7", data=b"junk", content_type="multipart/related; boundary=b")
    assert response.status_code == 400
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {"MM7", "MM7 read body"}  # no envelope: no operation in the name
    assert [e.name for e in spans["MM7 read body"].events] == ["exception"]
    assert (spans["MM7"].attributes or {})["mm7.fault_code"] == "Client"
    assert spans["MM7"].status.status_code == StatusCode.UNSET  # the sender's fault, not ours


def test_it_joins_the_trace_wsgi_instrumentation_started(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = Flask("traced")
    MM7(app, allow_anonymous=True, tracing=provider).on_deliver(lambda msg: None)
    app.wsgi_app = OpenTelemetryMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, tracer_provider=provider
    )
    assert _post(app.test_client()).status_code == 200  # type: ignore[arg-type]
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind == SpanKind.SERVER]
    [request] = [s for s in spans if s.name == "MM7 DeliverReq"]
    assert server.name != request.name and request.kind == SpanKind.INTERNAL
    assert request.parent is not None and request.parent.span_id == server.context.span_id
    assert {s.context.trace_id for s in spans} == {server.context.trace_id}
    assert len(spans) == 5  # the server span, ours and its three stages


def test_it_joins_a_current_span_and_leaves_the_context_as_it_was(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    client = Client(
        MM7Middleware(None, allow_anonymous=True, tracing=provider, on_deliver=lambda m: None)
    )
    with provider.get_tracer("test").start_as_current_span("outer") as outer:
        _post(client)
        assert trace.get_current_span() is outer
    [request] = [s for s in exporter.get_finished_spans() if s.name == "MM7 DeliverReq"]
    assert request.parent is not None
    assert request.parent.span_id == outer.get_span_context().span_id


def test_tracing_without_opentelemetry_names_the_extra() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['opentelemetry'] = None\n"
            "from flask_mm7 import MM7Middleware\n"
            "try:\n    MM7Middleware(None, tracing=True)\n"
            "except ImportError as exc:\n    print(exc)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "pip install 'flask-mm7[otel]'" in run.stdout, run.stderr
