"""docs/grafana-dashboard.json queries only what the library exports, and shows all of it."""

from __future__ import annotations

import json
import pathlib
import re

from helpers import mm7_body
from prometheus_client import CollectorRegistry, generate_latest
from werkzeug.test import Client

from flask_mm7 import MM7Middleware
from flask_mm7._metrics import NAMES

DASHBOARD = pathlib.Path(__file__).parent.parent / "docs" / "grafana-dashboard.json"
#: labels Prometheus adds to every scraped series, and the histogram bucket label
SCRAPE_LABELS = {"job", "instance", "le"}
#: PromQL words that look like identifiers
PROMQL = {"sum", "by", "rate", "histogram_quantile", "label_values", "without", "max", "avg"}


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return queries


def _exported() -> dict[str, set[str]]:
    """Every series name a real registry exposes after each kind of answer, with its labels."""
    registry = CollectorRegistry()
    client = Client(MM7Middleware(None, allow_anonymous=True, metrics=registry, dedupe="memory"))
    body, content_type = mm7_body()
    client.post("/mm7", data=body, content_type=content_type)  # no handler: a Server Fault
    series: dict[str, set[str]] = {}
    for line in generate_latest(registry).decode().splitlines():
        match = re.match(r"^([a-z_0-9]+)(?:\{(.*)\})? ", line)
        if match:
            labels = set(re.findall(r'(\w+)="', match[2] or ""))
            series.setdefault(match[1], set()).update(labels)
    return series


def test_every_query_names_exported_metrics_and_labels() -> None:
    exported = _exported()
    assert _queries()
    for query in _queries():
        names = set(re.findall(r"\b(mm7_[a-z_]+)\b", query))
        assert names, query
        for name in names:
            assert name in exported, (name, query)
        known = SCRAPE_LABELS.union(*(exported[name] for name in names))
        selectors = re.findall(r"\{([^}]*)\}", query)
        used = {label for s in selectors for label in re.findall(r"(\w+)\s*[!=]~?", s)}
        used |= {
            w for group in re.findall(r"by \(([^)]*)\)", query) for w in re.findall(r"\w+", group)
        }
        assert used <= known, (used - known, query)
        words = set(re.findall(r"\b([a-z_]+)\s*\(", query)) - PROMQL
        assert not words, (words, query)


def test_the_dashboard_shows_every_metric() -> None:
    text = " ".join(_queries())
    for name in NAMES:
        assert re.search(rf"\b{name}(_bucket|_sum|_count)?\b", text), name
