"""HTTP end to end on 127.0.0.1: gunicorn serving ``bench.apps``, loaded by wrk or Python.

gunicorn runs 2 sync workers bound to a free port on 127.0.0.1; the bench starts it, waits
for the port, checks that a POST of the body answers 200 with ``StatusCode`` 1000, loads it
for a bounded time with bounded concurrency, then stops it (SIGTERM to the master it
started, SIGKILL after 10 s). Load generator: ``wrk`` (Debian package) with a Lua script
that POSTs the body with its Content-Type when it is on PATH, else a Python client
(``http.client``, one connection per thread, reconnecting when the server closes; gunicorn's
sync workers close after every response).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set

from .bodies import HTTP_HEADERS, Body

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
PATH = "/mm7"


@dataclass
class LoadResult:
    """Throughput and tail latency of one app."""

    rps: float
    p99_ms: float
    requests: int
    errors: int
    tool: str
    #: CPU seconds (user + system) of the server (master + workers) during the load
    server_cpu: Optional[float] = None
    #: CPU seconds of the load generator during the load
    client_cpu: Optional[float] = None

    @property
    def cpu_us(self) -> Optional[float]:
        """Server + load generator CPU per request, in µs."""
        if self.server_cpu is None or self.client_cpu is None or not self.requests:
            return None
        return (self.server_cpu + self.client_cpu) / self.requests * 1e6

    @property
    def server_cpu_us(self) -> Optional[float]:
        if self.server_cpu is None or not self.requests:
            return None
        return self.server_cpu / self.requests * 1e6


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int, children: bool = True) -> float:
    """utime + stime (+ cutime + cstime: reaped children) of ``pid`` from /proc, seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the ")": state is field 3, utime 14, stime 15, cutime 16, cstime 17 (1-based)
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (gunicorn's master and workers)."""
    total = proc_cpu(pid)
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            kids = [int(x) for x in f.read().split()]
    except OSError:
        kids = []
    for kid in kids:
        with contextlib.suppress(OSError):
            total += proc_cpu(kid)
    return total


def gunicorn_available() -> bool:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """``with Server("bench.apps:fixed_app") as port:`` runs gunicorn for the block."""

    def __init__(
        self,
        spec: str,
        workers: int = 2,
        args: Sequence[str] = (),
        cpus: Optional[Set[int]] = None,
    ) -> None:
        self.spec = spec
        #: more gunicorn options (``bench.gunisplit`` passes its config module)
        self.args = list(args)
        #: the CPUs gunicorn (master and workers) may run on; None: any
        self.cpus = cpus
        self.workers = workers
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.port = 0
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    def __enter__(self) -> int:
        self.port = free_port()
        cmd = [
            sys.executable, "-m", "gunicorn",
            "--workers", str(self.workers), "--worker-class", "sync",
            "--bind", f"{HOST}:{self.port}", "--log-level", "warning",
            "--chdir", REPO, *self.args, self.spec,
        ]  # fmt: skip
        cpus = self.cpus
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=self.log, stderr=self.log,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn {self.spec} exited: {self._log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return self.port
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn {self.spec} did not listen: {self._log_tail()}")

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.log.close()


def _post(conn: http.client.HTTPConnection, body: Body) -> http.client.HTTPResponse:
    headers = {"Content-Type": body.content_type, **HTTP_HEADERS}
    conn.request("POST", PATH, body=body.data, headers=headers)
    return conn.getresponse()


def check_app(port: int, body: Body) -> None:
    """Raise unless one POST answers 200 with StatusCode 1000."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        resp = _post(conn, body)
        text = resp.read().decode("utf-8", "replace")
    finally:
        conn.close()
    if resp.status != 200 or not re.search(r"StatusCode>\s*1000\s*<", text):
        raise RuntimeError(f"app on port {port} answered {resp.status}: {text[:500]}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        raise ValueError(value)
    return float(m.group(1)) * _UNITS[m.group(2)]


def load_wrk(port: int, body: Body, duration: float, conns: int, threads: int) -> LoadResult:
    """wrk -t THREADS -c CONNS -d DURATION --latency with a POST script."""
    wrk = shutil.which("wrk")
    assert wrk is not None
    with tempfile.TemporaryDirectory() as tmp:
        body_path = os.path.join(tmp, "body.bin")
        with open(body_path, "wb") as f:
            f.write(body.data)
        headers = "".join(
            f'wrk.headers["{k}"] = [==[{v}]==]\n'
            for k, v in {"Content-Type": body.content_type, **HTTP_HEADERS}.items()
        )
        script = os.path.join(tmp, "post.lua")
        with open(script, "w", encoding="utf-8") as f:
            f.write(
                f'local f = io.open([==[{body_path}]==], "rb")\n'
                "wrk.body = f:read(\"*a\")\nf:close()\n"
                'wrk.method = "POST"\n' + headers
            )
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [wrk, "-t", str(threads), "-c", str(conns), "-d", f"{max(1, round(duration))}s",
             "--timeout", "10s", "--latency", "-s", script, f"http://{HOST}:{port}{PATH}"],
            capture_output=True, text=True, timeout=duration + 60, check=True,
        ).stdout  # fmt: skip
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors:.*?read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += int(m.group(2)) + int(m.group(3))  # read errors: the server closing
    return LoadResult(rps, p99, total, errors, "wrk", client_cpu=client)


def load_python(port: int, body: Body, duration: float, conns: int) -> LoadResult:
    """``conns`` threads POSTing for ``duration`` seconds with http.client."""
    latencies: List[List[float]] = [[] for _ in range(conns)]
    errors = [0] * conns
    deadline = time.perf_counter() + duration

    def worker(i: int) -> None:
        conn: Optional[http.client.HTTPConnection] = None
        lat = latencies[i]
        while time.perf_counter() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
            t0 = time.perf_counter()
            try:
                resp = _post(conn, body)
                resp.read()
                lat.append(time.perf_counter() - t0)
                if resp.status != 200:
                    errors[i] += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    start = time.perf_counter()
    cpu0 = proc_cpu(os.getpid(), children=False)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    client = proc_cpu(os.getpid(), children=False) - cpu0  # this process: the client threads
    flat = sorted(x for lat in latencies for x in lat)
    if not flat:
        return LoadResult(0.0, float("nan"), 0, sum(errors), "python")
    p99 = statistics.quantiles(flat, n=100)[98] if len(flat) >= 2 else flat[0]
    return LoadResult(len(flat) / elapsed, p99 * 1e3, len(flat), sum(errors), "python",
                      client_cpu=client)  # fmt: skip


def load(port: int, body: Body, *, duration: float, conns: int, tool: str = "auto") -> LoadResult:
    """Load the app on ``port`` for ``duration`` seconds with wrk (or the Python client)."""
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk") is not None):
        return load_wrk(port, body, duration, conns, threads=min(2, conns))
    return load_python(port, body, duration, conns)


def median_result(results: List[LoadResult]) -> LoadResult:
    """One result for several rounds: median req/s and p99, requests, errors and CPU summed
    (so ``cpu_us`` is the CPU per request over all rounds)."""
    cpu = all(r.server_cpu is not None and r.client_cpu is not None for r in results)
    return LoadResult(
        statistics.median(r.rps for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.requests for r in results),
        sum(r.errors for r in results),
        results[0].tool,
        sum(r.server_cpu or 0.0 for r in results) if cpu else None,
        sum(r.client_cpu or 0.0 for r in results) if cpu else None,
    )


def _tree_cpu_or_none(pid: int) -> Optional[float]:
    try:
        return tree_cpu(pid)
    except (OSError, ValueError, IndexError):  # no /proc (not Linux)
        return None


def run_apps(
    specs: Dict[str, str],
    body: Body,
    *,
    duration: float,
    conns: int,
    tool: str = "auto",
    rounds: int = 1,
) -> Dict[str, List[LoadResult]]:
    """Start gunicorn for every app at once, check and warm each, then load them in turn,
    ``rounds`` times, the order rotating each round (an idle sync server costs nothing):
    machine noise then hits every app alike, and the medians compare like with like."""
    results: Dict[str, List[LoadResult]] = {name: [] for name in specs}
    with contextlib.ExitStack() as stack:
        servers = {name: Server(spec) for name, spec in specs.items()}
        ports = {name: stack.enter_context(server) for name, server in servers.items()}
        for port in ports.values():
            check_app(port, body)
            # warm both workers (imports, first-request caches) before timing
            load_python(port, body, min(0.5, duration / 4), 2)
        names = list(specs)
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                pid = servers[name].proc.pid  # type: ignore[union-attr]
                cpu0 = _tree_cpu_or_none(pid)
                r = load(ports[name], body, duration=duration, conns=conns, tool=tool)
                cpu1 = _tree_cpu_or_none(pid)
                if cpu0 is not None and cpu1 is not None:
                    r.server_cpu = cpu1 - cpu0
                else:
                    r.client_cpu = None
                results[name].append(r)
    return results
