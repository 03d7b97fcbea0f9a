"""What observing costs: a typical delivery through the Flask test client, per request.

``python -m bench.overhead BASELINE_ROOT`` times, in interleaved rounds of fresh processes,
the code at ``BASELINE_ROOT`` (a checkout without metrics, logs and tracing) against this
checkout with everything off, with ``MM7_METRICS`` on, and with metrics, tracing (the
OpenTelemetry SDK, spans dropped) and the access log (to a null handler) on. Prints the median
microseconds per request of each, and each against the baseline.
"""

from __future__ import annotations

import pathlib
import statistics
import subprocess
import sys

ROOT = pathlib.Path(__file__).parent.parent
MODES = ("off", "metrics", "all")


def measure(root: str, mode: str) -> float:
    """Median µs per delivery in this process (run with ``root`` first on sys.path)."""
    import logging
    import time

    sys.path.insert(0, root)

    from flask import Flask

    import flask_mm7
    from bench.bodies import make_body
    from flask_mm7 import MM7

    assert flask_mm7.__file__.startswith(root), flask_mm7.__file__
    logging.disable(logging.CRITICAL)
    body = make_body("typical")
    app = Flask(__name__)
    app.config["MM7_ALLOW_ANONYMOUS"] = True
    if mode in ("metrics", "all"):
        from prometheus_client import CollectorRegistry

        app.config["MM7_METRICS"] = CollectorRegistry()
    if mode == "all":
        from opentelemetry.sdk.trace import TracerProvider

        logging.disable(logging.NOTSET)
        access = logging.getLogger("flask_mm7.access")
        access.setLevel(logging.INFO)
        access.addHandler(logging.NullHandler())
        access.propagate = False
        app.config["MM7_TRACING"] = TracerProvider()  # no processor: spans are dropped
    mm7 = MM7(app)

    @mm7.on_deliver
    def handler(msg: object) -> None:
        for attachment in msg.attachments:  # type: ignore[attr-defined]
            attachment.read()

    client = app.test_client()

    def once() -> None:
        response = client.post("/mm7", data=body.data, content_type=body.content_type)
        assert response.status_code == 200, response.data

    for _ in range(200):
        once()
    samples = []
    for _ in range(9):
        started = time.perf_counter()
        for _ in range(300):
            once()
        samples.append((time.perf_counter() - started) / 300 * 1e6)
    return statistics.median(samples)


def main() -> None:
    if sys.argv[1] == "--child":
        root, mode = sys.argv[2], sys.argv[3]
        print(f"{measure(root, mode):.2f}")
        return
    baseline = str(pathlib.Path(sys.argv[1]).resolve())
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    runs = [("baseline", baseline, "off")] + [(m, str(ROOT), m) for m in MODES]
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for _ in range(rounds):
        for name, root, mode in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--child", root, mode],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            times[name].append(float(out))
    base = statistics.median(times["baseline"])
    print("| code | median µs / delivery | vs baseline | rounds (µs) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {median:.1f} | {median / base:.3f}× | {shown} |")


if __name__ == "__main__":
    main()
