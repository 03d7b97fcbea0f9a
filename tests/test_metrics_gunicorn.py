"""Metrics under gunicorn with two workers and ``PROMETHEUS_MULTIPROC_DIR`` (README's setup):
whichever worker answers the scrape, it counts every worker's requests."""

from __future__ import annotations

import concurrent.futures
import pathlib
import re
import urllib.request

from gunicorn_server import gunicorn
from helpers import mm7_body, parse_reply
from prometheus_client.parser import text_string_to_metric_families

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
REQUESTS = 24


def _gunicorn_config() -> str:
    block = README.split("<!-- gunicorn-metrics-config -->", 1)[1]
    start = block.index("```python\n") + len("```python\n")
    return block[start : block.index("```\n", start)]


def _post(port: int, body: bytes, content_type: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/mm7", data=body, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = parse_reply(response.read())["StatusText"]
    assert text is not None
    return text


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("mm7_requests_total", "mm7_request_duration_seconds_count"):
                samples[sample.name] = samples.get(sample.name, 0) + sample.value
            elif sample.name == "mm7_requests_in_progress":
                samples[sample.name] = sample.value
    return samples


def test_every_workers_requests_are_counted_whoever_answers_the_scrape(
    tmp_path: pathlib.Path,
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(_gunicorn_config())
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    args = ["-c", str(config), "--workers", "2"]
    body, content_type = mm7_body()
    with gunicorn("metrics_app:app", tmp_path, env, args) as (port, _, log):
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            texts = list(pool.map(lambda _: _post(port, body, content_type), range(REQUESTS)))
        workers = {re.fullmatch(r"stored by (\d+)", text)[1] for text in texts}  # type: ignore[index]
        assert len(workers) == 2, (texts, log.read_text()[-2000:])
        scrapes = [_scrape(port) for _ in range(6)]
    for samples in scrapes:
        assert samples["mm7_requests_total"] == REQUESTS, scrapes
        assert samples["mm7_request_duration_seconds_count"] == REQUESTS, scrapes
        assert samples["mm7_requests_in_progress"] == 0, scrapes
    assert len(list(metrics_dir.glob("*.db"))) >= 2  # each worker wrote its own file
