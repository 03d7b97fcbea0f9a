"""Run the flask-mm7 benchmark suite and write ``bench/RESULTS.md``.

``python -m bench`` (or ``python bench/run.py``) from the repository root; ``--help`` lists
the options. ``--smoke`` runs every section on scaled-down bodies with 1-2 repetitions and
writes to a temporary directory instead of ``bench/RESULTS.md``.

Sections: parser time per body size (every contender vs the floor and vs ``multipart``),
SOAP envelope handling, memory (tracemalloc peak, peak RSS over an idle process) and HTTP
end to end (gunicorn + wrk). A contender whose library is not installed is printed "n/a".
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import io
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

if __package__ in (None, ""):  # ``python bench/run.py``
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench import e2e, inprocess, memory, soapbench  # noqa: E402
from bench.apps import LABELS  # noqa: E402
from bench.bodies import CLIFF_MIB, RELAY_SHAPES, SIZES, Body, make_body, make_cliff_body  # noqa: E402
from bench.contenders import (  # noqa: E402
    CONTENDERS,
    CollectSink,
    Contender,
    RunFn,
    multipart_spool_runner,
    ours_runner,
    run_multipart,
)
from bench.timing import Timing, fmt_ns, measure_interleaved  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "RESULTS.md")
OPT_HEADING = "## What each optimisation bought"
OPT_PLACEHOLDER = (
    "_One line per optimisation of `flask_mm7._mime` / `parts` / "
    "`soap`, with the commit and the ratio before → after (from this file's tables)._\n"
)
MEMORY_SIZES = ("typical", "large", "huge")
MEMORY_CONTENDERS = ("floor", "multipart", "email", "ours")
HTTP_APPS = ("fixed", "stdlib", "stdlib-http", "ours")
HTTP_LABELS = LABELS
EARLIER_HEADING = "## Earlier runs"

# targets from the issue "Fast: a benchmark suite in bench/"
T_VS_MULTIPART = 1.0
T_VS_FLOOR = 2.0
T_RPS_VS_FIXED = 0.6
T_RPS_VS_STDLIB = 8.0
T_P99_VS_FIXED = 3.0
T_RSS_HUGE_MIB = 4.0
T_RSS_TYPICAL_MIB = 1.0
T_SOAP = 1.5
# the issue "No cliff": bodies of 4-24 MB within 1.10x of a lean spooling multipart receiver
T_CLIFF = 1.10
CLIFF_TARGET_MIB = (4, 24)
CLIFF_HEADING = "Large bodies across the in-memory threshold"
CLIFF_CONTENDERS = ("ours", "ours-no-length", "multipart-spool", "multipart")


@dataclass
class Results:
    """Everything measured, keyed by size / contender / app name."""

    parse: Dict[str, Dict[str, Optional[Timing]]] = field(default_factory=dict)
    parse_errors: Dict[Tuple[str, str], str] = field(default_factory=dict)
    soap: Dict[str, Optional[Timing]] = field(default_factory=dict)
    soap_ours_name: str = ""
    tracemalloc: Dict[str, Dict[str, Optional[int]]] = field(default_factory=dict)
    rss: Dict[str, Dict[str, Optional[float]]] = field(default_factory=dict)
    http: Dict[str, Optional[e2e.LoadResult]] = field(default_factory=dict)
    #: every round's result per app, in round order
    http_rounds: Dict[str, List[e2e.LoadResult]] = field(default_factory=dict)
    http_note: str = ""
    cliff: List[CliffRow] = field(default_factory=list)
    cliff_note: str = ""
    #: µs per request of every app on each relay-shaped body, one entry per round
    inprocess: Dict[str, Dict[str, List[float]]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


@dataclass
class CliffRow:
    """One body of the cliff section: every contender's time per repetition, interleaved."""

    mib: float
    size: int
    #: ours reads this body in memory (Content-Length ≤ max_memory_body_size); None: no ours
    in_memory: Optional[bool]
    #: contender -> nanoseconds per repetition (repetition i of every contender ran together)
    samples: Dict[str, List[int]] = field(default_factory=dict)
    errors: Dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> Optional[float]:
        got = self.samples.get(name)
        return statistics.median(got) if got else None

    def us_per_mb(self, name: str) -> Optional[float]:
        median = self.median(name)
        return None if median is None else median / 1e3 / (self.size / 1e6)

    def ratio(self, name: str, reference: str) -> Optional[float]:
        """The median over repetitions of ``name``'s time / ``reference``'s in the same one."""
        a, b = self.samples.get(name), self.samples.get(reference)
        if not a or not b:
            return None
        return statistics.median(x / y for x, y in zip(a, b))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------


def bench_parse(
    bodies: Dict[str, Body], contenders: Sequence[Contender], smoke: bool, budget: float
) -> Tuple[Dict[str, Dict[str, Optional[Timing]]], Dict[Tuple[str, str], str]]:
    """Every contender on every body: checked against the expected parts first, then timed
    with the others of the same body, their repetitions interleaved (``measure_interleaved``)
    so the machine's drift during a cell reaches every contender alike."""
    out: Dict[str, Dict[str, Optional[Timing]]] = {}
    errors: Dict[Tuple[str, str], str] = {}
    for size, body in bodies.items():
        out[size] = {}
        runs: Dict[str, Callable[[], None]] = {}
        for c in contenders:
            out[size][c.name] = None
            if not c.available():
                continue
            data, ctype, run = body.data, body.content_type, c.run

            def once(
                run: Callable[..., None] = run, data: bytes = data, ctype: str = ctype
            ) -> None:
                run(io.BytesIO(data), ctype, CollectSink())

            try:
                sink = CollectSink()
                run(io.BytesIO(data), ctype, sink)  # correctness first
                if sink.parts != body.expected:
                    raise AssertionError(
                        f"wrong parts: sizes {[len(p) for p in sink.parts][:6]} "
                        f"expected {[len(p) for p in body.expected][:6]}"
                    )
            except Exception as exc:  # a broken contender must not stop the suite
                errors[(size, c.name)] = f"{type(exc).__name__}: {exc}"[:300]
                log(f"  parse {size:8} {c.name:17} ERROR {errors[(size, c.name)]}")
                continue
            runs[c.name] = once
        if smoke:
            timings = measure_interleaved(runs, budget_s=0, min_reps=2, max_reps=2, rounds=2)
        elif size == "huge":
            timings = measure_interleaved(runs, budget_s=budget * 3, min_reps=3, max_reps=30)
        else:
            timings = measure_interleaved(runs, budget_s=budget, min_reps=5)
        for name, t in timings.items():
            out[size][name] = t
            log(f"  parse {size:8} {name:17} {fmt_ns(t.median_ns):>10}  ({t.reps} reps)")
    return out, errors


def bench_soap(soap: bytes, smoke: bool, budget: float) -> Dict[str, Optional[Timing]]:
    """The SOAP contenders on the root part, side by side (repetitions interleaved)."""
    out: Dict[str, Optional[Timing]] = {}
    runs: Dict[str, Callable[[], object]] = {}
    for name, fn in soapbench.contenders().items():
        out[name] = None
        if fn is None:
            continue
        try:
            fn(soap)
        except Exception as exc:
            log(f"  soap {name} ERROR {exc!r}")
            continue
        runs[name] = lambda fn=fn: fn(soap)
    if smoke:
        timings = measure_interleaved(runs, budget_s=0, min_reps=2, max_reps=2, rounds=2)
    else:
        timings = measure_interleaved(runs, budget_s=budget, min_reps=50)
    for name, t in timings.items():
        out[name] = t
        log(f"  soap {name:17} {fmt_ns(t.median_ns):>10}")
    return out


def bench_memory(
    bodies: Dict[str, Body], rss_sizes: Sequence[str], rss_contenders: Sequence[str]
) -> Tuple[Dict[str, Dict[str, Optional[int]]], Dict[str, Dict[str, Optional[float]]]]:
    from bench.contenders import BY_NAME

    peaks: Dict[str, Dict[str, Optional[int]]] = {}
    rss: Dict[str, Dict[str, Optional[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="mm7-bench-mem-") as tmp:
        for size in MEMORY_SIZES:
            if size not in bodies:
                continue
            body = bodies[size]
            peaks[size], rss[size] = {}, {}
            path = os.path.join(tmp, f"{size}.bin")
            with open(path, "wb") as f:
                f.write(body.data)
            for name in MEMORY_CONTENDERS:
                ok = BY_NAME[name].available()
                try:
                    peaks[size][name] = (
                        memory.tracemalloc_peak(name, body.data, body.content_type)
                        if ok
                        else None
                    )
                except Exception as exc:
                    log(f"  tracemalloc {size} {name} ERROR {exc!r}")
                    peaks[size][name] = None
                rss[size][name] = None
                if ok and size in rss_sizes and name in rss_contenders:
                    try:
                        rss[size][name] = memory.rss_delta_mib(name, path, body.content_type)
                    except Exception as exc:
                        log(f"  rss {size} {name} ERROR {exc!r}")
                log(
                    f"  memory {size:8} {name:10} tracemalloc {_mib(peaks[size][name])} "
                    f"RSS+ {_mib_f(rss[size][name])}"
                )
    return peaks, rss


def cliff_runners(smoke: bool) -> Tuple[Dict[str, Optional[RunFn]], Optional[int], str]:
    """The cliff section's contenders (None: not installed), ours' ``max_memory_body_size``
    (None without ours) and a note on the settings. Ours runs at the library's default
    ``Limits`` (a hundredth of each size with ``smoke``, so the small bodies cross the same
    thresholds); multipart-spool uses ours' spool threshold and read size."""
    threshold, chunk, max_memory = 512 * 1024, 256 * 1024, None
    limits: object = None
    try:
        from flask_mm7._parts import Limits

        limits = Limits()
        if smoke:
            limits = dataclasses.replace(
                limits,
                spool_threshold=limits.spool_threshold // 100,
                max_memory_body_size=limits.max_memory_body_size // 100,
                chunk_size=limits.chunk_size // 100,
            )
        threshold, chunk = limits.spool_threshold, limits.chunk_size
        max_memory = limits.max_memory_body_size
    except ImportError:
        pass
    if smoke and limits is None:
        threshold, chunk = threshold // 100, chunk // 100
    has_multipart = memory.BY_NAME["multipart"].available()
    runners: Dict[str, Optional[RunFn]] = {
        "ours": ours_runner(limits) if limits is not None else None,
        "ours-no-length": ours_runner(limits, with_length=False) if limits is not None else None,
        "multipart-spool": multipart_spool_runner(threshold, chunk) if has_multipart else None,
        "multipart": run_multipart if has_multipart else None,
    }
    note = (
        f"spool threshold {threshold:,} B, read size {chunk:,} B"
        + (f", ours' max_memory_body_size {max_memory:,} B" if max_memory is not None else "")
    )
    return runners, max_memory, note


def bench_cliff(mibs: Sequence[float], smoke: bool, reps: int) -> Tuple[List[CliffRow], str]:
    """Time every cliff contender on every cliff body, ``reps`` interleaved repetitions (each
    repetition runs every contender once, the order rotating), after a checked warm-up."""
    runners, max_memory, note = cliff_runners(smoke)
    rows: List[CliffRow] = []
    for mib in mibs:
        body = make_cliff_body(mib, smoke=smoke)
        in_memory = None if max_memory is None else body.size <= max_memory
        row = CliffRow(mib, body.size, in_memory)
        live: List[Tuple[str, RunFn]] = []
        for name, run in runners.items():
            if run is None:
                continue
            try:
                sink = CollectSink()
                run(io.BytesIO(body.data), body.content_type, sink)  # correctness, warm-up
                if sink.parts != body.expected:
                    raise AssertionError(f"wrong parts: sizes {[len(p) for p in sink.parts]}")
            except Exception as exc:
                row.errors[name] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            live.append((name, run))
            row.samples[name] = []
        clock = time.perf_counter_ns
        for rep in range(reps):
            gc.collect()
            shift = rep % len(live) if live else 0
            for name, run in live[shift:] + live[:shift]:
                stream = io.BytesIO(body.data)
                t0 = clock()
                run(stream, body.content_type, CollectSink())
                row.samples[name].append(clock() - t0)
        rows.append(row)
        cells = "  ".join(f"{n} {fmt_ns(row.median(n) or 0)}" for n in row.samples)
        log(f"  cliff {mib:g} MiB ({body.size:,} B): {cells}")
    return rows, f"{note}; {reps} interleaved repetitions per body"


def ours_app_available() -> bool:
    try:
        import flask_mm7

        return hasattr(flask_mm7, "MM7") and memory.BY_NAME["ours"].available()
    except ImportError:
        return False


def bench_http(
    body: Body, duration: float, conns: int, tool: str, rounds: int = 1
) -> Tuple[Dict[str, Optional[e2e.LoadResult]], Dict[str, List[e2e.LoadResult]], str]:
    from bench.apps import GUNICORN_SPECS

    if not e2e.gunicorn_available():
        return dict.fromkeys(HTTP_APPS), {}, "gunicorn not installed: HTTP section skipped"
    apps = [app for app in HTTP_APPS if app != "ours" or ours_app_available()]
    try:
        runs = e2e.run_apps({app: GUNICORN_SPECS[app] for app in apps}, body,
                            duration=duration, conns=conns, tool=tool, rounds=rounds)  # fmt: skip
    except Exception as exc:
        log(f"  http ERROR {exc}")
        return dict.fromkeys(HTTP_APPS), {}, f"HTTP section failed: {exc}"
    out: Dict[str, Optional[e2e.LoadResult]] = dict.fromkeys(HTTP_APPS)
    for app, results in runs.items():
        r = out[app] = e2e.median_result(results)
        per_round = ", ".join(f"{x.rps:.0f}" for x in results)
        log(f"  http {app:7} {r.rps:9.0f} req/s  p99 {r.p99_ms:7.2f} ms  ({r.tool}, "
            f"{r.requests} requests, {r.errors} errors; rounds: {per_round})")  # fmt: skip
    tool_used = next((r.tool for r in out.values() if r is not None), tool)
    per_app = "; ".join(
        f"{app} " + ", ".join(f"{x.rps:.0f}" for x in results) for app, results in runs.items()
    )
    note = (
        f"gunicorn 2 sync workers on 127.0.0.1, {tool_used}, {conns} connections, body: "
        f"{body.name} ({body.size} bytes). The {len(runs)} servers run side by side; each "
        f"round loads each app for {duration:g} s in turn (the order rotating). The table "
        "gives each app's "
        f"median over {rounds} rounds (req/s per round: {per_app}); the ratios in the targets "
        "are medians of the per-round ratios, each from loads seconds apart (the machine's "
        "speed drifts over a run). The stdlib-email headline is the default policy "
        "(compat32, `email.message_from_bytes`); earlier runs used policy.HTTP (second row)."
    )
    return out, runs, note


# --------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------


def _mib(n: Optional[int]) -> str:
    return "n/a" if n is None else f"{n / 1048576:.2f} MiB"


def _mib_f(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.2f} MiB"


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def _fr(x: Optional[float], digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}×"


def _round_ratio(res: Results, app: str, reference: str, attr: str) -> Optional[float]:
    """The median over rounds of ``app``'s ``attr`` divided by ``reference``'s in the same
    round; the ratio of the two medians when the rounds are missing."""
    mine, theirs = res.http_rounds.get(app), res.http_rounds.get(reference)
    if mine and theirs and len(mine) == len(theirs):
        ratios = [getattr(a, attr) / getattr(b, attr) for a, b in zip(mine, theirs)
                  if getattr(b, attr)]  # fmt: skip
        return statistics.median(ratios) if ratios else None
    a, b = res.http.get(app), res.http.get(reference)
    return _ratio(a and getattr(a, attr), b and getattr(b, attr))


def _med(t: Optional[Timing]) -> Optional[float]:
    return None if t is None else t.median_ns


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |"
    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def machine_info() -> List[Tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            if m:
                cpu = m.group(1).strip()
    except OSError:
        pass
    pkgs = []
    for dist in ("flask-mm7", "Flask", "Werkzeug", "defusedxml", "multipart",
                 "python-multipart", "gunicorn"):  # fmt: skip
        try:
            pkgs.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            pkgs.append(f"{dist} (not installed)")
    wrk = shutil.which("wrk")
    wrk_v = "not installed"
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        wrk_v = (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
        check=False,
    ).stdout.strip() or "?"  # fmt: skip
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("commit", commit),
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("packages", ", ".join(pkgs)),
        ("wrk", wrk_v),
    ]


def targets(res: Results, sizes: Sequence[str]) -> List[Tuple[str, str, str, str]]:
    """(what, measured, target, verdict) rows."""
    rows: List[Tuple[str, str, str, str]] = []

    def verdict(x: Optional[float], ok: Callable[[float], bool]) -> str:
        return "n/a" if x is None else ("ok" if ok(x) else "MISS")

    for size in sizes:
        p = res.parse.get(size, {})
        r = _ratio(_med(p.get("ours")), _med(p.get("multipart")))
        rows.append((f"parse {size}: ours / multipart", _fr(r), f"≤ {T_VS_MULTIPART:g}×",
                     verdict(r, lambda x: x <= T_VS_MULTIPART)))  # fmt: skip
    for size in ("typical", *RELAY_SHAPES, "large"):
        if size in sizes:
            p = res.parse.get(size, {})
            r = _ratio(_med(p.get("ours")), _med(p.get("floor")))
            rows.append((f"parse {size}: ours / floor", _fr(r), f"≤ {T_VS_FLOOR:g}×",
                         verdict(r, lambda x: x <= T_VS_FLOOR)))  # fmt: skip
    r = _round_ratio(res, "ours", "fixed", "rps")
    rows.append(("HTTP req/s: ours / fixed-reply", _fr(r), f"≥ {T_RPS_VS_FIXED:g}×",
                 verdict(r, lambda x: x >= T_RPS_VS_FIXED)))  # fmt: skip
    # throughput by CPU per request: the fixed-reply app's CPU per request / ours
    r = _round_ratio(res, "fixed", "ours", "cpu_us")
    rows.append(("HTTP by CPU/request: fixed-reply / ours", _fr(r), f"≥ {T_RPS_VS_FIXED:g}×",
                 verdict(r, lambda x: x >= T_RPS_VS_FIXED)))  # fmt: skip
    for app, what in (("stdlib", "compat32"), ("stdlib-http", "policy.HTTP")):
        r = _round_ratio(res, "ours", app, "rps")
        rows.append((f"HTTP req/s: ours / stdlib-email ({what})", _fr(r, 1),
                     f"≥ {T_RPS_VS_STDLIB:g}×",
                     verdict(r, lambda x: x >= T_RPS_VS_STDLIB)))  # fmt: skip
        r = _round_ratio(res, app, "ours", "cpu_us")
        rows.append((f"HTTP CPU/request: stdlib-email ({what}) / ours", _fr(r, 1), "-", ""))
    r = _round_ratio(res, "ours", "fixed", "p99_ms")
    rows.append(("HTTP p99: ours / fixed-reply", _fr(r), f"< {T_P99_VS_FIXED:g}×",
                 verdict(r, lambda x: x < T_P99_VS_FIXED)))  # fmt: skip
    for size, limit in (("huge", T_RSS_HUGE_MIB), ("typical", T_RSS_TYPICAL_MIB)):
        x = res.rss.get(size, {}).get("ours")
        rows.append((f"peak RSS over idle, {size}: ours", _mib_f(x), f"≤ {limit:g} MiB",
                     verdict(x, lambda v, limit=limit: v <= limit)))  # fmt: skip
    rows.extend(inprocess.targets(res.inprocess))
    worst = cliff_worst(res.cliff)
    if res.cliff:
        lo, hi = CLIFF_TARGET_MIB
        rows.append((f"large bodies {lo}-{hi} MiB: ours / multipart-spool, worst",
                     _fr(worst), f"≤ {T_CLIFF:.2f}×",
                     verdict(worst, lambda x: x <= T_CLIFF)))  # fmt: skip
    r = _ratio(_med(res.soap.get("ours")), _med(res.soap.get("defusedxml")))
    rows.append(("SOAP parse+extract: ours / defusedxml.fromstring", _fr(r),
                 f"≤ {T_SOAP:g}×", verdict(r, lambda x: x <= T_SOAP)))  # fmt: skip
    return rows


def cliff_worst(rows: Sequence[CliffRow]) -> Optional[float]:
    """The largest ours / multipart-spool ratio over the bodies the target covers."""
    lo, hi = CLIFF_TARGET_MIB
    ratios = [r.ratio("ours", "multipart-spool") for r in rows if lo <= r.mib <= hi]
    found = [x for x in ratios if x is not None]
    return max(found) if found else None


def render_cliff(rows: Sequence[CliffRow], note: str) -> str:
    """The cliff section's table and how to read it."""
    parts = [f"## {CLIFF_HEADING}\n"]
    parts.append(
        "The `large` shape sized to exactly N MiB (the MP4 grows), read from a BytesIO; every "
        "part copied out as bytes. Each repetition runs every contender once (order rotating); "
        "times are medians, ratios medians of the per-repetition ratios. µs/MB (MB = 10⁶ B): a "
        "cliff shows as a jump down the column. *ours*: `read_mime` with the Content-Length "
        "(as the middleware passes it), default settings; *path*: in memory when the body is "
        "at most `max_memory_body_size`, else parts over the spool threshold go to disk; "
        "*ours, no length*: the same without Content-Length (a chunked upload: always the "
        "spooling path); *multipart-spool*: `multipart.PushMultipartParser` with each part in "
        "memory up to the spool threshold, then in its own temporary file, read back with "
        "`read()`; *multipart*: the same parser keeping every part in memory (no disk).\n"
    )
    parts.append(f"Settings: {note}.\n")
    header = ["body", "bytes", "ours' path", "ours", "µs/MB", "multipart-spool", "µs/MB",
              "ours / m-spool", "ours, no length", "µs/MB", "/ m-spool", "multipart (memory)",
              "µs/MB"]
    table = []

    def cell(row: CliffRow, name: str) -> List[str]:
        if name in row.errors:
            return ["error", "-"]
        median, per_mb = row.median(name), row.us_per_mb(name)
        if median is None or per_mb is None:
            return ["n/a", "n/a"]
        return [fmt_ns(median), f"{per_mb:.0f}"]

    for row in rows:
        path = {None: "n/a", True: "memory", False: "spool"}[row.in_memory]
        table.append([f"{row.mib:g} MiB", f"{row.size:,}", path, *cell(row, "ours"),
                      *cell(row, "multipart-spool"), _fr(row.ratio("ours", "multipart-spool")),
                      *cell(row, "ours-no-length"),
                      _fr(row.ratio("ours-no-length", "multipart-spool")),
                      *cell(row, "multipart")])  # fmt: skip
    parts.append(_table(header, table) + "\n")
    worst = cliff_worst(rows)
    lo, hi = CLIFF_TARGET_MIB
    parts.append(f"Worst ours / multipart-spool over {lo}-{hi} MiB: {_fr(worst)} "
                 f"(target ≤ {T_CLIFF:.2f}×).\n")  # fmt: skip
    for row in rows:
        for name, err in sorted(row.errors.items()):
            parts.append(f"- error, {name} on {row.mib:g} MiB: `{err}`")
    return "\n".join(parts).rstrip() + "\n"


def render(res: Results, sizes: Sequence[str], bodies: Dict[str, Body], smoke: bool,
           opt_section: str) -> str:  # fmt: skip
    names = [c.name for c in CONTENDERS]
    parts: List[str] = []
    parts.append("# flask-mm7 benchmark results\n")
    if smoke:
        parts.append("**Smoke run** (scaled-down bodies, 2 repetitions): numbers mean nothing.\n")
    parts.append(
        "Generated by `python -m bench` (see `bench/README.md`). Times are medians of "
        "adaptive repetition counts; ratios below 1 mean faster / smaller than the reference. "
        "The floor is the lean one (no copy beyond reading and copying parts out); "
        "`floor-old` is the earlier runs' floor. `email` is the stdlib parser with its default "
        "policy (compat32), `email-http` with policy.HTTP (the earlier runs' `email`). "
        "`typical-javamail` and `typical-kit` carry the typical content framed as relays "
        "frame it (see `bench/README.md`).\n"
    )
    parts.append(_table(["machine", ""], machine_info()) + "\n")

    parts.append("## Targets\n")
    parts.append(_table(["what", "measured", "target", ""], targets(res, sizes)) + "\n")

    parts.append("## Parser: ratios (time / floor · time / multipart)\n")
    rows = []
    for n in names:
        row = [n]
        for size in sizes:
            p = res.parse.get(size, {})
            if (size, n) in res.parse_errors:
                row.append("error")
                continue
            a = _ratio(_med(p.get(n)), _med(p.get("floor")))
            b = _ratio(_med(p.get(n)), _med(p.get("multipart")))
            row.append("n/a" if a is None else f"{_fr(a)} · {_fr(b)}")
        rows.append(row)
    parts.append(_table(["contender", *sizes], rows) + "\n")
    parts.append(
        "`ours` is `read_mime`: the decoder plus the part objects a handler gets (transfer "
        "decoding, `Attachment`s, the root chosen by `start`). `ours-decoder` is the decoder "
        "alone, fed and drained as `multipart` is (the same job). `split-strict` is a lower "
        "bound, not a parser: one `bytes.find` per part over the whole body, no tolerance, no "
        "limits, no streaming, then ours' part objects.\n"
    )

    parts.append("## Parser: median time per body\n")
    rows = [["body size", *[f"{bodies[s].size:,} B" for s in sizes]]]
    for n in names:
        row = [n]
        for size in sizes:
            t = res.parse.get(size, {}).get(n)
            row.append("error" if (size, n) in res.parse_errors else
                       ("n/a" if t is None else f"{fmt_ns(t.median_ns)} ({t.reps})"))  # fmt: skip
        rows.append(row)
    parts.append(_table(["contender", *sizes], rows))
    parts.append("\n(repetitions in parentheses)\n")
    for (size, n), err in sorted(res.parse_errors.items()):
        parts.append(f"- error, {n} on {size}: `{err}`")
    if res.parse_errors:
        parts.append("")

    parts.append("## SOAP envelope (root part of every body)\n")
    base = _med(res.soap.get("defusedxml"))
    rows = []
    for name, t in res.soap.items():
        label = res.soap_ours_name if name == "ours" and res.soap_ours_name else name
        rows.append([label, "n/a" if t is None else fmt_ns(t.median_ns),
                     _fr(_ratio(_med(t), base))])  # fmt: skip
    parts.append(_table(["contender", "median", "/ defusedxml.fromstring"], rows) + "\n")

    parts.append("## Memory\n")
    parts.append(
        "tracemalloc: peak bytes allocated while parsing (body bytes already in memory, not "
        "counted). RSS: peak RSS of a fresh process that parses the body from a file, minus "
        "that of an idle process that did everything else (same imports, one tiny body "
        "parsed). Parts are streamed to a counting sink, nothing is kept.\n"
    )
    msizes = [s for s in MEMORY_SIZES if s in res.tracemalloc]
    rows = []
    for n in MEMORY_CONTENDERS:
        row = [n]
        for s in msizes:
            row.append(_mib(res.tracemalloc[s].get(n)))
            row.append(_mib_f(res.rss.get(s, {}).get(n)))
        rows.append(row)
    header = ["contender"]
    for s in msizes:
        header += [f"{s} tracemalloc", f"{s} RSS over idle"]
    parts.append(_table(header, rows) + "\n")

    parts.append("## HTTP end to end\n")
    parts.append((res.http_note or "not run") + "\n")
    rows = []
    for app, r in res.http.items():
        label = HTTP_LABELS[app]
        if r is None:
            rows.append([label] + ["n/a"] * 8)
            continue
        cpu = "n/a" if r.cpu_us is None else f"{r.cpu_us:.0f} µs"
        srv = "n/a" if r.server_cpu_us is None else f"{r.server_cpu_us:.0f} µs"
        rows.append([label, f"{r.rps:.0f}", f"{r.p99_ms:.2f} ms", cpu, srv,
                     _fr(_round_ratio(res, app, "fixed", "rps")),
                     _fr(_round_ratio(res, app, "fixed", "p99_ms")),
                     _fr(_round_ratio(res, app, "fixed", "cpu_us")), str(r.errors)])  # fmt: skip
    parts.append(_table(["app", "req/s", "p99", "CPU / request", "server CPU / request",
                         "req/s / fixed", "p99 / fixed", "CPU / fixed", "errors"],
                        rows) + "\n")  # fmt: skip
    parts.append("CPU / request: user + system time of the gunicorn master and workers "
                 "(/proc/PID/stat, reaped children included) plus the load generator's, over "
                 "the requests served. Ratios: medians of the per-round ratios.\n")  # fmt: skip
    for app, what in (("stdlib", "compat32, the headline"), ("stdlib-http", "policy.HTTP")):
        vs_rps = _fr(_round_ratio(res, "ours", app, "rps"), 1)
        vs_cpu = _fr(_round_ratio(res, app, "ours", "cpu_us"), 1)
        parts.append(f"- ours / stdlib-email ({what}): req/s {vs_rps}; the stdlib app's CPU "
                     f"per request / ours {vs_cpu}")  # fmt: skip
    parts.append("")

    if res.inprocess:
        parts.append("## A whole delivery in process\n")
        parts.append(inprocess.__doc__.split("\n\n", 2)[2].strip() + "\n")
        parts.append(inprocess.render(res.inprocess) + "\n")

    if res.cliff:
        parts.append(render_cliff(res.cliff, res.cliff_note))

    for note in res.notes:
        parts.append(f"- {note}")
    if res.notes:
        parts.append("")
    parts.append(opt_section.rstrip() + "\n")
    return "\n".join(parts)


def existing_opt_section(path: str) -> str:
    """Keep the "What each optimisation bought" section and every hand-written section after
    it (earlier runs, overhead studies) across runs."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return f"{OPT_HEADING}\n\n{OPT_PLACEHOLDER}"
    i = text.find(OPT_HEADING)
    if i < 0:
        return f"{OPT_HEADING}\n\n{OPT_PLACEHOLDER}"
    return text[i:]  # every section from here on is kept (history is never deleted)


# --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny bodies, 2 reps, short HTTP; write to a temp dir")  # fmt: skip
    p.add_argument("--sizes", nargs="+", choices=SIZES + RELAY_SHAPES,
                   help="bodies (default: all sizes and relay shapes)")  # fmt: skip
    p.add_argument("--only", nargs="+",
                   choices=("parse", "soap", "memory", "http", "cliff", "inprocess"),
                   help="sections to run (default: all)")  # fmt: skip
    p.add_argument("--no-http", action="store_true", help="skip the HTTP section")
    p.add_argument("--cliff-mib", nargs="+", type=float, default=list(CLIFF_MIB),
                   help="body sizes in MiB for the cliff section")  # fmt: skip
    p.add_argument("--cliff-reps", type=int, default=15,
                   help="interleaved repetitions per cliff body (smoke: 2)")  # fmt: skip
    p.add_argument("--no-rss", action="store_true", help="skip the RSS subprocess probes")
    p.add_argument("--budget", type=float, default=1.0,
                   help="seconds per timing cell (default 1.0; huge gets 3×)")  # fmt: skip
    p.add_argument("--http-duration", type=float, default=5.0,
                   help="seconds per app and round")  # fmt: skip
    p.add_argument("--http-rounds", type=int, default=5,
                   help="interleaved rounds per app; medians are reported")  # fmt: skip
    p.add_argument("--http-conns", type=int, default=4, help="concurrent connections")
    p.add_argument("--http-tool", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--out", help="directory for RESULTS.md (default bench/, smoke: a temp dir)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    t_start = time.monotonic()
    smoke = args.smoke
    sizes = list(args.sizes or SIZES)
    sections = set(args.only or ("parse", "soap", "memory", "http", "cliff", "inprocess"))
    if args.no_http:
        sections.discard("http")
    out_dir = args.out or (tempfile.mkdtemp(prefix="mm7-bench-") if smoke else
                           os.path.join(REPO, "bench"))  # fmt: skip
    os.makedirs(out_dir, exist_ok=True)
    out_path = os.path.join(out_dir, "RESULTS.md")

    if not args.sizes:
        sizes += RELAY_SHAPES
    bodies = {s: make_body(s, smoke=smoke) for s in sizes}
    res = Results()
    missing = [c.name for c in CONTENDERS if not c.available()]
    if missing:
        res.notes.append(f"not installed / not importable (n/a): {', '.join(missing)}")
    log(f"bodies: {', '.join(f'{s} {b.size:,} B' for s, b in bodies.items())}")

    if "parse" in sections:
        res.parse, res.parse_errors = bench_parse(bodies, CONTENDERS, smoke, args.budget)
    if "soap" in sections:
        any_body = next(iter(bodies.values()))
        res.soap = bench_soap(any_body.soap, smoke, args.budget)
        ours = soapbench.ours_reader()
        res.soap_ours_name = ours[0] if ours else ""
    if "memory" in sections:
        if args.no_rss:
            rss_sizes: Sequence[str] = ()
        elif smoke:
            rss_sizes = [s for s in ("huge",) if s in sizes]
        else:
            rss_sizes = MEMORY_SIZES
        rss_contenders = ("ours", "email") if smoke else MEMORY_CONTENDERS
        res.tracemalloc, res.rss = bench_memory(bodies, rss_sizes, rss_contenders)
    if "http" in sections:
        body = make_body("typical", smoke=smoke)
        if smoke:
            res.http, res.http_rounds, res.http_note = bench_http(body, 0.3, 2, "python")
        else:
            res.http, res.http_rounds, res.http_note = bench_http(
                body, args.http_duration, args.http_conns, args.http_tool, args.http_rounds
            )
    else:
        res.http = dict.fromkeys(HTTP_APPS)
        res.http_note = "not run (--no-http or --only)"
    if "inprocess" in sections:
        log("in process: the WSGI apps side by side")
        res.inprocess = inprocess.measure(inprocess.BODIES, *((2, 4) if smoke else (15, 200)),
                                          smoke=smoke)  # fmt: skip
    if "cliff" in sections:
        res.cliff, res.cliff_note = bench_cliff(args.cliff_mib, smoke,
                                                2 if smoke else args.cliff_reps)  # fmt: skip

    text = render(res, sizes, bodies, smoke, existing_opt_section(RESULTS))
    print(text)
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(text)
    log(f"wrote {out_path} in {time.monotonic() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
