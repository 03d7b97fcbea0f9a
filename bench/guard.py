"""This checkout against another, side by side: a delivery through the Flask extension.

``python -m bench.guard BASELINE_ROOT [BODY ...] [--rounds 15] [--batch 300]``

Two worker processes, one importing ``flask_mm7`` from ``BASELINE_ROOT`` (any checkout, e.g.
``git worktree add /tmp/base 0bef25e``) and one from this checkout, each with a Flask app
whose ``on_deliver`` handler reads every attachment. Each round asks both, in alternating
order, to POST the body ``batch`` times through the Flask test client and report the CPU
time per request (``time.process_time``). Printed per body (``bench.bodies.make_body`` names,
default ``typical``): each side's fastest round and the median of the per-round ratios
(this checkout / baseline; below 1 is faster). The bodies are built here, so both sides
parse the same bytes whatever the baseline's own bench holds.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys
from typing import List, Optional, Sequence

from bench.bodies import make_body

ROOT = pathlib.Path(__file__).parent.parent

WORKER = r"""
import sys, time, logging
root, content_type = sys.argv[1], sys.argv[2]
sys.path.insert(0, root)
logging.disable(logging.CRITICAL)
from flask import Flask
import flask_mm7
assert flask_mm7.__file__.startswith(root), flask_mm7.__file__
data = sys.stdin.buffer.read(int(sys.stdin.buffer.readline()))
app = Flask("guard")
app.config["MM7_ALLOW_ANONYMOUS"] = True
mm7 = flask_mm7.MM7(app)

@mm7.on_deliver
def receive(msg):
    for part in msg.attachments:
        part.read()

client = app.test_client()

def post():
    reply = client.post("/mm7", data=data, content_type=content_type)
    assert reply.status_code == 200, reply.data

for _ in range(100):
    post()
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    t0 = time.process_time()
    for _ in range(n):
        post()
    print((time.process_time() - t0) / n * 1e6, flush=True)
"""


class _Worker:
    def __init__(self, root: str, data: bytes, content_type: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, root, content_type],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"%d\n" % len(data) + data)
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the worker for {root} did not start")

    def batch(self, n: int) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"%d\n" % n)
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait()
        self.proc.stdout.close()


def compare(baseline: str, body_name: str, rounds: int, batch: int) -> List[List[float]]:
    """[baseline µs, this µs] per round."""
    body = make_body(body_name)
    workers = [_Worker(root, body.data, body.content_type) for root in (baseline, str(ROOT))]
    try:
        times = []
        for r in range(rounds):
            order = workers if r % 2 == 0 else workers[::-1]
            got = {id(w): w.batch(batch) for w in order}
            times.append([got[id(w)] for w in workers])
        return times
    finally:
        for worker in workers:
            worker.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", help="root of the checkout to compare with")
    parser.add_argument("bodies", nargs="*", default=["typical"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=300)
    args = parser.parse_args(argv)
    print("| body | baseline µs (fastest round) | this µs | this / baseline (median of rounds) |")
    print("|---|---|---|---|")
    for name in args.bodies:
        times = compare(str(pathlib.Path(args.baseline).resolve()), name, args.rounds, args.batch)
        base = min(t[0] for t in times)
        this = min(t[1] for t in times)
        ratio = statistics.median(t[1] / t[0] for t in times)
        print(f"| {name} | {base:.1f} | {this:.1f} | {ratio:.3f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
