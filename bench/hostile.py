"""Time per byte on hostile bodies: ``python -m bench.hostile [--size MB] [--out FILE]``.

The hardening target: content made of the parser's own pieces (dashes, line ends, blanks,
delimiters cut one byte short), at nesting depth 1 and 2, CRLF and LF framing, read whole or
streamed, costs at most 5x what random bytes of the same size cost. Each cell is one in-process
WSGI call of :class:`flask_mm7.MM7Middleware` (a handler that reads every attachment), the
median of interleaved rounds, divided by the random-content call of the same shape.

Boundaries: the seed's JavaMail pair (they share ``------=_Part_13907``), the testing kit's
(the inner one extends the outer one), and a short pair chosen by an attacker (``a-b-c-d`` /
``e``, where ``bytes.find`` itself slows down on ``-`` bytes).

It also times header blocks made of blanks after ``X-A: v`` (8 KB, 32 KB and 300 KB: the shape
that made the previous header regex take 0.7 s, 5 s and minutes) and bodies made of
near-delimiters (refused after 16,384).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

if __package__ in (None, ""):  # ``python bench/hostile.py``
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flask_mm7 import MM7Middleware  # noqa: E402

SOAP = (
    b'<?xml version="1.0"?><env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"'
    b' xmlns:mm7="http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/REL-6-MM7-1-4">'
    b'<env:Header><mm7:TransactionID env:mustUnderstand="1">T1</mm7:TransactionID></env:Header>'
    b"<env:Body><mm7:DeliverReq><mm7:MM7Version>6.8.0</mm7:MM7Version>"
    b'<mm7:Content href="cid:c"/></mm7:DeliverReq></env:Body></env:Envelope>'
)
BOUNDARIES = {
    "javamail": (b"----=_Part_139078_1411587550.1397492135426",
                 b"----=_Part_139079_1300104441.1397492135426"),
    "testing-kit": (b"----=_Part_984680_5351773841.flask-mm7",
                    b"----=_Part_984680_5351773841.flask-mm7.mixed"),
    "attacker": (b"a-b-c-d", b"e"),
}  # fmt: skip
TARGET = 5.0


def body(fill: bytes, outer: bytes, inner: bytes, nl: bytes, depth: int) -> Tuple[bytes, str]:
    leaf = b"Content-Type: image/jpeg" + nl + b"Content-ID: <c>" + nl + nl + fill + nl
    if depth == 2:
        leaf = (
            b'Content-Type: multipart/mixed; boundary="' + inner + b'"' + nl + nl
            + b"--" + inner + nl + leaf + b"--" + inner + b"--" + nl
        )  # fmt: skip
    data = (
        b"--" + outer + nl + b"Content-Type: text/xml" + nl + nl + SOAP + nl
        + b"--" + outer + nl + leaf + b"--" + outer + b"--" + nl
    )  # fmt: skip
    return data, f'multipart/related; boundary="{outer.decode()}"'


def fills(size: int, outer: bytes, inner: bytes, nl: bytes) -> Dict[str, bytes]:
    def repeat(piece: bytes) -> bytes:
        return (piece * (size // len(piece) + 1))[:size]

    return {
        "random": os.urandom(size),
        "dashes": repeat(b"-"),
        "line ends": repeat(nl),
        "line end + --": repeat(nl + b"--"),
        "outer cut short": repeat(nl + b"--" + outer[:-1]),
        "inner cut short": repeat(nl + b"--" + inner[:-1]),
        "blanks": repeat(b" \t" + nl),
    }


def make_app(streamed: bool) -> MM7Middleware:
    app = MM7Middleware(
        None,
        allow_anonymous=True,
        max_memory_body_size=1 if streamed else 64 << 20,
        spool_threshold=64 << 20,
    )

    @app.on_deliver
    def read_all(msg: object) -> None:
        for part in msg.attachments:  # type: ignore[attr-defined]
            part.read()

    return app


def call(app: MM7Middleware, data: bytes, content_type: str) -> str:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/mm7",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
        "REMOTE_ADDR": "127.0.0.1",
    }
    status: List[str] = []
    b"".join(app(environ, lambda s, h: status.append(s)))  # type: ignore[arg-type]
    return status[0]


def timed(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def content_table(size: int, rounds: int) -> Tuple[List[str], float]:
    lines = []
    worst = 0.0
    names = list(fills(16, b"x", b"y", b"\n"))
    header = " | ".join(names[1:])
    lines.append(f"| boundaries | framing | depth | read | {header} | random ms/MB |")
    lines.append("|" + "---|" * (len(names) + 4))
    for label, (outer, inner) in BOUNDARIES.items():
        for nl, nl_name in ((b"\r\n", "CRLF"), (b"\n", "LF")):
            for depth in (1, 2):
                for streamed in (False, True):
                    app = make_app(streamed)
                    shapes = {
                        name: body(fill, outer, inner, nl, depth)
                        for name, fill in fills(size, outer, inner, nl).items()
                    }
                    refused = {
                        n for n, (d, c) in shapes.items() if not call(app, d, c).startswith("200")
                    }
                    assert "random" not in refused
                    cost: Dict[str, List[float]] = {name: [] for name in shapes}
                    for _ in range(rounds):  # interleaved: drift hits every shape alike
                        for name, (data, ct) in shapes.items():
                            cost[name].append(timed(lambda a=app, d=data, c=ct: call(a, d, c), 1))
                    median = {name: statistics.median(v) for name, v in cost.items()}
                    ratios = [median[n] / median["random"] for n in names[1:]]
                    worst = max(
                        [worst] + [r for n, r in zip(names[1:], ratios) if n not in refused]
                    )
                    lines.append(
                        f"| {label} | {nl_name} | {depth} | {'streamed' if streamed else 'whole'}"
                        + " | "
                        + " | ".join(
                            f"{r:.2f}x" + (" (refused)" if n in refused else "")
                            for n, r in zip(names[1:], ratios)
                        )
                        + f" | {median['random'] * 1e3 / (size / 1e6):.2f} |"
                    )
    return lines, worst


def header_table(rounds: int) -> List[str]:
    app = make_app(False)
    outer = BOUNDARIES["javamail"][0]
    lines = ["| header block after `X-A: v` | size | answer | time |", "|---|---|---|---|"]
    for name, filler in (("spaces", b" "), ("tabs", b"\t"), ("folds", b" \r\n")):
        for size in (8_000, 32_000, 300_000):
            data = (
                b"--" + outer + b"\r\nContent-Type: text/xml\r\n\r\n" + SOAP + b"\r\n--" + outer
                + b"\r\nX-A: v\r\n" + (filler * size)[:size]
            )  # fmt: skip
            ct = f'multipart/related; boundary="{outer.decode()}"'
            status = call(app, data, ct)
            spent = timed(lambda d=data, c=ct: call(app, d, c), rounds)
            lines.append(f"| {name} | {size // 1000} KB | {status} | {spent * 1e3:.2f} ms |")
    return lines


def near_miss_table(size: int, rounds: int) -> List[str]:
    app = make_app(False)
    lines = ["| near-delimiter fill | size | answer | time |", "|---|---|---|---|"]
    for label, (outer, inner) in BOUNDARIES.items():
        for piece_name, piece in (("--outer + X", b"--" + outer + b"X"),
                                  ("--inner + blanks + X", b"--" + inner + b" \tX")):  # fmt: skip
            fill = (piece * (size // len(piece) + 1))[:size]
            data, ct = body(fill, outer, inner, b"\r\n", 2)
            status = call(app, data, ct)
            spent = timed(lambda d=data, c=ct: call(app, d, c), rounds)
            lines.append(f"| {label}: {piece_name} | {size / 1e6:.0f} MB | {status} | "
                         f"{spent * 1e3:.2f} ms |")  # fmt: skip
    return lines


#: what gunicorn serves for ``--http`` (``bench.hostile:http_app``)
http_app = make_app(False)


def http_table(size: int, rounds: int) -> Tuple[List[str], float]:
    """The same bodies POSTed over loopback to gunicorn (one sync worker), timed by the
    client: what a relay's request costs end to end (the issue's own measure)."""
    import http.client
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
         "--log-level", "critical", "--timeout", "120", "bench.hostile:http_app"],
        cwd=root, env={**os.environ, "PYTHONPATH": root},
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

        def post(data: bytes, ct: str) -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request("POST", "/mm7", body=data, headers={"Content-Type": ct})
            response = connection.getresponse()
            response.read()
            connection.close()
            return response.status

        names = list(fills(16, b"x", b"y", b"\n"))
        lines = [
            "| boundaries | depth | " + " | ".join(names[1:]) + " | random ms/MB |",
            "|" + "---|" * (len(names) + 2),
        ]
        worst = 0.0
        for label, (outer, inner) in BOUNDARIES.items():
            for depth in (1, 2):
                shapes = {
                    name: body(fill, outer, inner, b"\r\n", depth)
                    for name, fill in fills(size, outer, inner, b"\r\n").items()
                }
                refused = {n for n, (d, c) in shapes.items() if post(d, c) != 200}
                cost: Dict[str, List[float]] = {name: [] for name in shapes}
                for _ in range(rounds):
                    for name, (data, ct) in shapes.items():
                        cost[name].append(timed(lambda d=data, c=ct: post(d, c), 1))
                median = {name: statistics.median(v) for name, v in cost.items()}
                ratios = {n: median[n] / median["random"] for n in names[1:]}
                worst = max([worst] + [r for n, r in ratios.items() if n not in refused])
                cells = [f"{ratios[n]:.2f}x" + (" (refused)" if n in refused else "")
                         for n in names[1:]]  # fmt: skip
                lines.append(
                    f"| {label} | {depth} | " + " | ".join(cells)
                    + f" | {median['random'] * 1e3 / (size / 1e6):.2f} |"
                )  # fmt: skip
        return lines, worst
    finally:
        server.terminate()
        server.wait(10)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    parser.add_argument("--size", type=float, default=4.0, help="MB of content per body")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", help="also write the tables to this file")
    parser.add_argument("--http", action="store_true", help="also POST to gunicorn")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # refusals log one line each; not what is timed
    size = int(args.size * 1e6)
    content, worst = content_table(size, args.rounds)
    text = "\n".join(
        [
            f"### Content made of delimiter pieces ({args.size:g} MB, median of {args.rounds}"
            " interleaved rounds; time relative to random content of the same shape)",
            "",
            *content,
            "",
            "(refused: the fill holds a whole delimiter followed by other data, which RFC 2046"
            " forbids; after 16,384 of them the body gets a Client Fault)",
            "",
            f"Worst ratio of accepted content, in process: {worst:.2f}x (target <= {TARGET:g}x): "
            + ("met" if worst <= TARGET else "missed"),
            "",
            "### Header blocks of blanks",
            "",
            *header_table(args.rounds),
            "",
            "### Near-delimiters",
            "",
            *near_miss_table(size, args.rounds),
            "",
        ]
    )
    if args.http:
        http_lines, http_worst = http_table(size, args.rounds)
        text += "\n".join(
            [
                "### End to end: POSTed to gunicorn on loopback (one sync worker)",
                "",
                *http_lines,
                "",
                f"Worst ratio over HTTP: {http_worst:.2f}x (target <= {TARGET:g}x): "
                + ("met" if http_worst <= TARGET else "missed"),
                "",
            ]
        )
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
