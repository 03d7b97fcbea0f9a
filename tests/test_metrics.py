"""Prometheus metrics (``MM7_METRICS``): what each kind of answer counts, and the metrics path."""

from __future__ import annotations

import io
import pathlib
import re
import subprocess
import sys
import typing as t

import pytest
from flask import Flask
from helpers import mm7_body, parse_reply
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from flask_mm7 import MM7, MM7Error, MM7Middleware
from flask_mm7._metrics import NAMES

ROOT = pathlib.Path(__file__).parent.parent


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _app(registry: CollectorRegistry, handler: t.Any = None, **options: t.Any) -> Client:
    middleware = MM7Middleware(
        None, allow_anonymous=True, metrics=registry, on_deliver=handler or (lambda m: None),
        **options,
    )  # fmt: skip
    return Client(middleware)


def _post(client: Client, **kwargs: t.Any) -> t.Any:
    body, content_type = mm7_body(**kwargs)
    return client.post("/mm7", data=body, content_type=content_type)


def test_an_accepted_delivery_is_counted_timed_and_measured() -> None:
    registry = CollectorRegistry()
    in_progress: list[float] = []

    def handler(msg: t.Any) -> None:
        in_progress.append(_value(registry, "mm7_requests_in_progress"))

    client = _app(registry, handler)
    body, content_type = mm7_body()
    assert client.post("/mm7", data=body, content_type=content_type).status_code == 200
    op = {"operation": "DeliverReq"}
    assert _value(registry, "mm7_requests_total", http_status="200", status_code="1000", **op) == 1
    assert _value(registry, "mm7_request_duration_seconds_count", **op) == 1
    assert _value(registry, "mm7_handler_duration_seconds_count", **op) == 1
    assert _value(registry, "mm7_handler_duration_seconds_sum", **op) <= _value(
        registry, "mm7_request_duration_seconds_sum", **op
    )
    assert _value(registry, "mm7_request_body_bytes_count") == 1
    assert _value(registry, "mm7_request_body_bytes_sum") == len(body)
    assert in_progress == [1.0]
    assert _value(registry, "mm7_requests_in_progress") == 0
    assert _value(registry, "mm7_faults_total", fault_code="Server", status_code="3000") == 0


def test_a_refusal_is_counted_with_its_status_and_is_no_fault() -> None:
    registry = CollectorRegistry()
    client = _app(registry, lambda msg: (2004, "no"))
    assert parse_reply(_post(client).data)["StatusCode"] == "2004"
    assert (
        _value(
            registry,
            "mm7_requests_total",
            operation="DeliverReq",
            http_status="200",
            status_code="2004",
        )
        == 1
    )
    assert not [
        s for m in registry.collect() if m.name == "mm7_faults" for s in m.samples if s.value
    ]


def test_a_failing_handler_counts_a_server_fault_and_its_handler_time() -> None:
    registry = CollectorRegistry()

    def handler(msg: t.Any) -> None:
        raise RuntimeError("database down")

    response = _post(_app(registry, handler))
    assert response.status_code == 500
    assert _value(registry, "mm7_faults_total", fault_code="Server", status_code="3000") == 1
    assert (
        _value(
            registry,
            "mm7_requests_total",
            operation="DeliverReq",
            http_status="500",
            status_code="3000",
        )
        == 1
    )
    assert _value(registry, "mm7_handler_duration_seconds_count", operation="DeliverReq") == 1


def test_a_raised_retry_status_is_a_server_fault_too() -> None:
    registry = CollectorRegistry()

    def handler(msg: t.Any) -> None:
        raise MM7Error(4006, "busy")

    assert _post(_app(registry, handler)).status_code == 500
    assert _value(registry, "mm7_faults_total", fault_code="Server", status_code="4006") == 1


def test_refusals_before_the_envelope_have_no_operation() -> None:
    registry = CollectorRegistry()
    client = _app(registry, basic_auth="relay:secret")
    assert _post(client).status_code == 401
    response = client.post(
        "/mm7", data=b"not mime", content_type="multipart/related; boundary=x",
        headers={"Authorization": "Basic cmVsYXk6c2VjcmV0"},
    )  # fmt: skip
    assert response.status_code == 400
    assert (
        _value(registry, "mm7_requests_total", operation="", http_status="401", status_code="4001")
        == 1
    )
    assert (
        _value(registry, "mm7_requests_total", operation="", http_status="400", status_code="2007")
        == 1
    )
    assert _value(registry, "mm7_faults_total", fault_code="Client", status_code="4001") == 1
    assert _value(registry, "mm7_faults_total", fault_code="Client", status_code="2007") == 1
    assert _value(registry, "mm7_handler_duration_seconds_count", operation="") == 0
    assert (
        client.get("/mm7", headers={"Authorization": "Basic cmVsYXk6c2VjcmV0"}).status_code == 405
    )
    assert (
        _value(registry, "mm7_requests_total", operation="", http_status="405", status_code="") == 1
    )
    assert _value(registry, "mm7_requests_in_progress") == 0


def test_a_chunked_body_is_measured_as_read() -> None:
    registry = CollectorRegistry()
    middleware = MM7Middleware(
        None, allow_anonymous=True, metrics=registry, on_deliver=lambda m: None
    )
    body, content_type = mm7_body()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/mm7",
        "CONTENT_TYPE": content_type,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,  # a chunked body the server de-chunks: no length
    }
    statuses: list[str] = []
    middleware(environ, lambda status, headers: statuses.append(status))  # type: ignore[arg-type,return-value]
    assert statuses == ["200 OK"]
    assert _value(registry, "mm7_request_body_bytes_sum") == len(body)


def test_a_retry_answered_by_the_dedupe_store_is_a_duplicate() -> None:
    registry = CollectorRegistry()
    calls: list[str] = []
    client = _app(registry, lambda msg: calls.append(msg.transaction_id), dedupe="memory")
    for _ in range(3):
        assert parse_reply(_post(client).data)["StatusCode"] == "1000"
    assert calls == ["TID-1"]
    assert _value(registry, "mm7_duplicates_total") == 2
    assert _value(registry, "mm7_handler_duration_seconds_count", operation="DeliverReq") == 1
    assert (
        _value(
            registry,
            "mm7_requests_total",
            operation="DeliverReq",
            http_status="200",
            status_code="1000",
        )
        == 3
    )


def test_the_exported_names_are_the_documented_ones() -> None:
    registry = CollectorRegistry()
    _post(_app(registry))
    text = generate_latest(registry).decode()
    types = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    assert {name for name in types if not name.endswith("_created")} == set(NAMES)


def test_the_metrics_path_serves_them_from_the_flask_app() -> None:
    registry = CollectorRegistry()
    app = Flask("metrics")
    MM7(app, allow_anonymous=True, metrics=registry, metrics_path="/metrics")
    client = app.test_client()
    body, content_type = mm7_body()
    client.post("/mm7", data=body, content_type=content_type)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    requests = [s for s in families["mm7_requests"].samples if s.name == "mm7_requests_total"]
    assert [(s.labels["status_code"], s.value) for s in requests] == [("3000", 1.0)]  # no handler
    assert client.post("/metrics").status_code == 405
    assert client.get("/elsewhere").status_code == 404  # Flask's own routes are untouched


def test_the_metrics_path_needs_metrics_and_its_own_path() -> None:
    with pytest.raises(ValueError, match="metrics_path: set metrics"):
        MM7Middleware(None, metrics_path="/metrics")
    with pytest.raises(ValueError, match="must differ"):
        MM7Middleware(None, metrics=CollectorRegistry(), metrics_path="/mm7/")


def test_true_uses_the_default_registry_shared_by_every_app() -> None:
    before = _value(REGISTRY, "mm7_requests_in_progress")
    first = MM7Middleware(None, allow_anonymous=True, metrics=True)
    second = MM7Middleware(None, allow_anonymous=True, metrics="yes")  # no duplicate timeseries
    assert first.observer.metrics is second.observer.metrics
    assert first.observer.metrics is not None and first.observer.metrics.registry is REGISTRY
    assert _value(REGISTRY, "mm7_requests_in_progress") == before


def _imports(code: str) -> str:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_nothing_is_imported_while_metrics_and_tracing_are_off() -> None:
    out = _imports(
        "import sys; from flask import Flask; from flask_mm7 import MM7\n"
        "app = Flask('x'); MM7(app, allow_anonymous=True)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('prometheus', 'opentelemetry'))))"
    )
    assert out.strip() == "[]"


def test_metrics_without_prometheus_client_name_the_extra() -> None:
    out = _imports(
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from flask_mm7 import MM7Middleware\n"
        "try:\n    MM7Middleware(None, metrics=True)\n"
        "except ImportError as exc:\n    print(exc)"
    )
    assert "pip install 'flask-mm7[metrics]'" in out
