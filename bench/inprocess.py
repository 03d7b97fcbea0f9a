"""A whole delivery in process: the benchmark's WSGI apps called directly, side by side.

``python -m bench.inprocess [--bodies typical typical-javamail typical-kit] [--rounds 15]``

Each app of :mod:`bench.apps` (the fixed reply, the stdlib-email receivers, ours through the
Flask extension) answers the same POST of each body, called as a WSGI app with a fresh
``wsgi.input`` per request: no server, no sockets, so the figure is the receive path's own
CPU. Rounds alternate the apps (the order rotating) and each round times a batch of requests
per app with ``time.process_time``; the table gives each app's fastest batch (the least
disturbed by the shared machine) and the median over rounds of the per-round ratios.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from bench.apps import LABELS, make_app
from bench.bodies import Body, make_body

APPS = ("fixed", "stdlib", "stdlib-http", "ours")
#: the synthetic typical body and the same content framed as relays frame it
BODIES = ("typical", "typical-javamail", "typical-kit")
#: the target: a typical delivery in process at least this many times faster than compat32
T_VS_STDLIB = 8.0


def make_request(app: Any, body: Body) -> Callable[[], None]:
    """One POST of ``body`` to ``app`` per call, asserting a 200 answer."""
    from werkzeug.test import EnvironBuilder

    template = EnvironBuilder(
        path="/mm7", method="POST", data=body.data, content_type=body.content_type
    ).get_environ()

    def post() -> None:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(body.data)
        status: List[str] = []
        result = app(environ, lambda s, h, e=None: status.append(s))
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not status or not status[0].startswith("200"):
            raise RuntimeError(f"answered {status}")

    return post


def measure(
    bodies: Sequence[str], rounds: int, batch: int, smoke: bool = False
) -> Dict[str, Dict[str, List[float]]]:
    """µs per request of every app on every body, one list entry per round."""
    logging.getLogger("flask_mm7").setLevel(logging.ERROR)  # no "accepts from anyone" noise
    apps = {name: make_app(name) for name in APPS}
    apps["ours"].config["MM7_ALLOW_ANONYMOUS"] = True
    out: Dict[str, Dict[str, List[float]]] = {}
    for name in bodies:
        body = make_body(name, smoke=smoke)
        posts = {app: make_request(apps[app], body) for app in APPS}
        for post in posts.values():  # warm up: imports, caches
            for _ in range(3):
                post()
        times: Dict[str, List[float]] = {app: [] for app in APPS}
        for r in range(rounds):
            order = APPS[r % len(APPS) :] + APPS[: r % len(APPS)]
            for app in order:
                post = posts[app]
                n = batch if app not in ("stdlib", "stdlib-http") else max(1, batch // 8)
                t0 = time.process_time()
                for _ in range(n):
                    post()
                times[app].append((time.process_time() - t0) / n * 1e6)
        out[name] = times
    return out


def _ratio_median(times: Dict[str, List[float]], a: str, b: str) -> float:
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def render(results: Dict[str, Dict[str, List[float]]]) -> str:
    """The section's Markdown: µs per request (fastest round) and the ratios."""
    lines = [
        "| body | app | µs / request (fastest round) | ours / app (median of rounds) |",
        "| --- | --- | --- | --- |",
    ]
    for name, times in results.items():
        for app in APPS:
            ratio = _ratio_median(times, app, "ours")
            lines.append(
                f"| {name} | {LABELS[app]} | {min(times[app]):.1f} | "
                f"{'-' if app == 'ours' else f'{ratio:.2f}×'} |"
            )
    lines.append("")
    lines.append("(ours / app: how many times faster ours is; below 1, the app is faster)")
    return "\n".join(lines)


def targets(results: Dict[str, Dict[str, List[float]]]) -> List[tuple]:
    """(what, measured, target, verdict) for the Targets table."""
    rows = []
    for name, times in results.items():
        ratio = _ratio_median(times, "stdlib", "ours")
        rows.append(
            (
                f"in process {name}: stdlib-email (compat32) / ours",
                f"{ratio:.1f}×",
                f"≥ {T_VS_STDLIB:g}×",
                "ok" if ratio >= T_VS_STDLIB else "MISS",
            )
        )
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bodies", nargs="+", default=list(BODIES)
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=200, help="requests per app per round")
    parser.add_argument("--smoke", action="store_true", help="scaled-down bodies, 2 rounds")
    args = parser.parse_args(argv)
    rounds, batch = (2, 4) if args.smoke else (args.rounds, args.batch)
    results = measure(args.bodies, rounds, batch, smoke=args.smoke)
    print(render(results))
    print()
    for row in targets(results):
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
