"""Where a gunicorn worker's CPU goes per request: inside the app, reading ``wsgi.input``,
garbage collection, and gunicorn's own work around the request.

``python -m bench.gunisplit [--apps fixed burn285 ours] [--duration 3] [--rounds 3]
[--stages] [--inprocess] [--replay] [--pin] [--workers 2] [--tool python|wrk] [--profile DIR]``

Each app of :mod:`bench.apps` is served by gunicorn (2 sync workers on 127.0.0.1, as in
:mod:`bench.e2e`) with this module as its config (``-c python:bench.gunisplit``): its hooks
wrap the app and count, per worker, the CPU (``time.process_time``) spent between gunicorn's
``pre_request`` and ``post_request`` hooks (the request: environ, app, response), inside the
app call, inside ``wsgi.input.read``, and in each garbage collection. The bench sends SIGUSR2
to each worker before and after each load (the Python client of :mod:`bench.e2e`, or wrk); a
worker answers by writing its counters (and its CPU from ``os.times``) to a JSON file, so
warm-up requests do not count. The master's and the load generator's CPU come from /proc.

* ``APP@MODULE``: APP with MODULE imported first in each worker (and in process): an A/B of
  a change tried as a monkeypatch, e.g. ``--apps ours ours@mypatch``.
* ``burnN``: a control app, the fixed reply after N µs of CPU in a tight loop (a tiny working
  set): what N µs of app CPU costs end to end when nothing of it can go cold.
* ``--stages``: flask_mm7's steps (read_body, read_envelope, ...) timed apart.
* ``--inprocess``: each app also called in a loop in a subprocess (``io.BytesIO`` input, no
  server), with the same counters: a column to compare the workers' with.
* ``--replay``: each request is answered a second time in the worker, in process (the same
  environ, ``io.BytesIO`` input), timed apart, alternately before and after the real call.
* ``--pin``: gunicorn on the last CPU, the load generator on the others.
* ``--profile DIR``: each worker also runs cProfile between the two signals and dumps
  ``DIR/<app>-<pid>.prof`` (the counters then include the profiler's overhead).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

_ENV_APP = "GUNISPLIT_APP"
_ENV_DIR = "GUNISPLIT_DIR"
_ENV_PROFILE = "GUNISPLIT_PROFILE"

# -- inside the worker -----------------------------------------------------------------------

_clock = time.process_time
_stats: Dict[str, float] = {}
_gc_start = [0.0]
_req_start = [0.0]
_profiler: List[Any] = []
_snap = [0]


def _zero() -> None:
    for key in (
        "requests",
        "request",
        "app",
        "read",
        "reads",
        "gc0",
        "gc1",
        "gc2",
        "replay",
        "replay_cold",
        "replay_warm",
        "app_cold",
        "app_warm",
    ):
        _stats[key] = 0.0
    for key in [k for k in _stats if k.startswith("st_")]:
        _stats[key] = 0.0
    for key in ("n_gc0", "n_gc1", "n_gc2"):
        _stats[key] = 0


_zero()


def _on_gc(phase: str, info: Dict[str, int]) -> None:
    if phase == "start":
        _gc_start[0] = _clock()
    else:
        gen = info["generation"]
        _stats[f"gc{gen}"] += _clock() - _gc_start[0]
        _stats[f"n_gc{gen}"] += 1


class _TimedInput:
    """``wsgi.input`` whose ``read`` CPU is counted (and its bytes kept for a replay)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.chunks: List[bytes] = []

    def read(self, size: int = -1) -> bytes:
        t0 = _clock()
        data: bytes = self._raw.read(size)
        _stats["read"] += _clock() - t0
        _stats["reads"] += 1
        self.chunks.append(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def wrapped(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The app named by $GUNISPLIT_APP, timed (gunicorn app spec ``bench.gunisplit:wrapped``)."""
    timed = environ["wsgi.input"] = _TimedInput(environ["wsgi.input"])
    replay = dict(environ) if _REPLAY[0] else None
    odd = int(_stats["requests"]) % 2
    first = bool(replay is not None and odd and _LAST)
    # replay first on odd requests (the app call then runs warm), after on even ones
    if replay is not None and first:
        _replay(replay, _LAST[0], "replay_cold")
    t0 = _clock()
    result = _APP[0](environ, start_response)
    spent = _clock() - t0
    _stats["app"] += spent
    if replay is not None:
        _stats["app_warm" if first else "app_cold"] += spent
        if not odd:
            _replay(replay, b"".join(timed.chunks), "replay_warm")
        _LAST[:] = [b"".join(timed.chunks)]
    return result  # type: ignore[no-any-return]


def _replay(environ: Dict[str, Any], body: bytes, key: str) -> None:
    """The same request again, called in process (``io.BytesIO`` input, no socket)."""
    import io

    environ["wsgi.input"] = io.BytesIO(body)
    stages = {k: v for k, v in _stats.items() if k.startswith("st_")}  # the real call's only
    t0 = _clock()
    result = _APP[0](environ, lambda *a: None)
    for _ in result:
        pass
    spent = _clock() - t0
    _stats.update(stages)
    _stats["replay"] += spent
    _stats[key] += spent


_APP: List[Any] = []
_LAST: List[bytes] = []
_REPLAY = [bool(os.environ.get("GUNISPLIT_REPLAY"))]


def _dump(signum: int, frame: Any) -> None:
    times = os.times()
    out = dict(_stats, worker_cpu=times.user + times.system, user=times.user, sys=times.system)
    path = os.path.join(os.environ[_ENV_DIR], f"{os.getpid()}-{_snap[0]}.json")
    _snap[0] += 1
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f)
    prof_dir = os.environ.get(_ENV_PROFILE)
    if prof_dir:
        import cProfile

        if not _profiler:
            _profiler.append(cProfile.Profile())
            _profiler[0].enable()
        else:
            _profiler[0].disable()
            app = os.environ[_ENV_APP]
            _profiler.pop().dump_stats(os.path.join(prof_dir, f"{app}-{os.getpid()}.prof"))


def _make_app(name: str) -> Any:
    from bench.apps import make_app

    return make_app(name)


def _burn_app(us: int) -> Any:
    """The control ``burnN``: the fixed reply after N µs of CPU in a tight loop (a tiny
    working set): what any N µs of app CPU costs the server and the client, end to end."""
    from bench.apps import fixed_app

    def burn(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        end = _clock() + us / 1e6
        while _clock() < end:
            pass
        return fixed_app(environ, start_response)

    return burn


#: flask_mm7 steps timed with --stages: (module, class or "", function, key)
_STAGES = (
    ("flask_mm7._receiver", "", "read_body", "st_read_body"),
    ("flask_mm7._soap", "", "read_envelope", "st_envelope"),
    ("flask_mm7._receiver", "", "safe_headers", "st_headers"),
    ("flask_mm7._receiver", "", "build_message", "st_message"),
    ("flask_mm7._receiver", "Receiver", "_dispatch", "st_dispatch"),
    ("flask_mm7._middleware", "", "render", "st_render"),
)


def _patch_stages() -> None:
    """Count the CPU of each step of :data:`_STAGES` (wrapping the names the callers use)."""
    import importlib

    for module, cls, name, key in _STAGES:
        owner: Any = importlib.import_module(module)
        if cls:
            owner = getattr(owner, cls)
        orig = getattr(owner, name)

        def timed(*args: Any, _orig: Any = orig, _key: str = key, **kwargs: Any) -> Any:
            t0 = _clock()
            try:
                return _orig(*args, **kwargs)
            finally:
                _stats[_key] += _clock() - t0

        setattr(owner, name, timed)
        _stats[key] = 0.0


# gunicorn hooks (module-level names that are gunicorn settings are read as the config)
def post_worker_init(worker: Any) -> None:
    name, _, patch = os.environ[_ENV_APP].partition("@")
    if patch:  # APP@MODULE: the module is imported first, e.g. to try a monkeypatch
        import importlib

        importlib.import_module(patch)
    app = _burn_app(int(name[4:])) if name.startswith("burn") else _make_app(name)
    if hasattr(app, "config"):
        app.config["MM7_ALLOW_ANONYMOUS"] = True
    _APP.append(app)
    if os.environ.get("GUNISPLIT_STAGES"):
        _patch_stages()
    gc.callbacks.append(_on_gc)
    signal.signal(signal.SIGUSR2, _dump)


def pre_request(worker: Any, req: Any) -> None:
    _req_start[0] = _clock()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    _stats["request"] += _clock() - _req_start[0]
    _stats["requests"] += 1


# -- the bench -------------------------------------------------------------------------------


def _children(pid: int) -> List[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
        return [int(x) for x in f.read().split()]


def _snapshot(workers: List[int], tmp: str, n: int) -> Dict[int, Dict[str, float]]:
    for pid in workers:
        os.kill(pid, signal.SIGUSR2)
    out: Dict[int, Dict[str, float]] = {}
    deadline = time.monotonic() + 10
    while len(out) < len(workers) and time.monotonic() < deadline:
        for pid in workers:
            path = os.path.join(tmp, f"{pid}-{n}.json")
            if pid not in out and os.path.exists(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        out[pid] = json.load(f)
                except ValueError:  # half written
                    pass
        time.sleep(0.02)
    missing = sorted(set(workers) - set(out))
    if missing:
        raise RuntimeError(f"gunicorn workers {missing} wrote no counters (SIGUSR2 unanswered)")
    return out


def measure(
    app: str,
    duration: float,
    rounds: int,
    profile: Optional[str],
    pin: bool = False,
    workers: int = 2,
    tool: str = "python",
) -> Dict[str, float]:
    """CPU seconds of each share (and the requests served), summed over ``rounds`` loads of
    ``app`` (:func:`report` turns them into µs per request)."""
    import tempfile

    totals: Dict[str, float] = {}
    saved = {key: os.environ.get(key) for key in (_ENV_APP, _ENV_DIR, _ENV_PROFILE)}
    all_cpus = os.sched_getaffinity(0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _load(app, tmp, duration, rounds, profile, pin, workers, tool, totals)
    finally:
        os.sched_setaffinity(0, all_cpus)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return totals


def _load(
    app: str,
    tmp: str,
    duration: float,
    rounds: int,
    profile: Optional[str],
    pin: bool,
    workers: int,
    tool: str,
    totals: Dict[str, float],
) -> None:
    """Serve ``app`` with the counting hooks and load it ``rounds`` times into ``totals``."""
    from bench import e2e
    from bench.bodies import make_body

    body = make_body("typical")
    os.environ[_ENV_APP] = app
    os.environ[_ENV_DIR] = tmp
    if profile:
        os.makedirs(profile, exist_ok=True)
        os.environ[_ENV_PROFILE] = os.path.abspath(profile)
    cpus = sorted(os.sched_getaffinity(0))
    server = e2e.Server(
        "bench.gunisplit:wrapped",
        workers,
        args=("-c", "python:bench.gunisplit"),
        cpus={cpus[-1]} if pin else None,
    )
    with server as port:
        if pin:  # this process (the load generator's threads) on the other CPUs
            os.sched_setaffinity(0, set(cpus[:-1]))
        e2e.check_app(port, body)
        e2e.load_python(port, body, 0.5, 2)
        assert server.proc is not None
        master = server.proc.pid
        pids = _children(master)
        for r in range(rounds):
            before = _snapshot(pids, tmp, 2 * r)
            m0 = e2e.proc_cpu(master, children=False)
            res = e2e.load(port, body, duration=duration, conns=4, tool=tool)
            m1 = e2e.proc_cpu(master, children=False)
            after = _snapshot(pids, tmp, 2 * r + 1)
            totals["client"] = totals.get("client", 0.0) + (res.client_cpu or 0.0)
            totals["master"] = totals.get("master", 0.0) + m1 - m0
            totals["served"] = totals.get("served", 0.0) + res.requests
            for pid in pids:
                for key, value in after[pid].items():
                    totals[key] = totals.get(key, 0.0) + value - before[pid][key]


_ROWS = (
    ("worker_cpu", "worker CPU (os.times)"),
    ("user", "  of which user"),
    ("sys", "  of which sys"),
    ("outside", "outside pre/post_request (accept, head parse, close, select loop)"),
    ("request", "pre_request to post_request"),
    ("around", "  around the app (environ, start_response, response write)"),
    ("app", "  app call"),
    ("read", "    wsgi.input.read"),
    ("app_other", "    app without the read"),
    ("st_read_body", "    flask_mm7 read_body (--stages)"),
    ("st_envelope", "    flask_mm7 read_envelope (--stages)"),
    ("st_headers", "    flask_mm7 safe_headers (--stages)"),
    ("st_message", "    flask_mm7 build_message (--stages)"),
    ("st_dispatch", "    flask_mm7 _dispatch: app context, handler (--stages)"),
    ("st_render", "    flask_mm7 render (--stages)"),
    ("st_rest", "    the app call's rest (--stages)"),
    ("replay", "  replay: the same app call with io.BytesIO input (--replay)"),
    ("app_cold", "  app call, nothing before it (--replay; per request of its half)"),
    ("app_warm", "  app call right after a replay (--replay; per request of its half)"),
    ("replay_cold", "  replay before the app call (--replay; per request of its half)"),
    ("replay_warm", "  replay right after the app call (--replay; per request of its half)"),
    ("gc", "garbage collection"),
    ("gc2", "  gen-2 collections"),
    ("master", "master (/proc)"),
    ("server", "server total (workers + master, without the replay)"),
    ("client", "load generator"),
)


#: rows shown only when some app has a figure there
_OPTIONAL = {
    key for key, label in _ROWS if "--" in label or key.startswith("gc") or key == "master"
}


def report(results: Dict[str, Dict[str, float]]) -> str:
    """Markdown table: µs per request of each share, one column per app."""
    names = list(results)
    lines = [
        "| share of CPU per request | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    derived = {}
    for name, t in results.items():
        n = t["requests"]
        d = {k: v / n * 1e6 for k, v in t.items() if not k.startswith("n_")}
        for key in ("app_cold", "app_warm", "replay_cold", "replay_warm"):
            d[key] *= 2  # each is half of the requests
        d["outside"] = d["worker_cpu"] - d["request"]
        d["around"] = d["request"] - d["app"] - d["replay"]
        d["worker_net"] = d["worker_cpu"] - d["replay"]
        d["app_other"] = d["app"] - d["read"]
        stages = [key for _, _, _, key in _STAGES if d.get(key)]
        if stages and d["st_read_body"]:  # an app with flask_mm7 inside
            d["st_read_body"] -= d["read"]  # the read happens inside read_body
            d["st_rest"] = d["app_other"] - sum(d[k] for k in stages)
        d["gc"] = d["gc0"] + d["gc1"] + d["gc2"]
        d["server"] = d["worker_net"] + d["master"]
        derived[name] = d
    for key, label in _ROWS:
        if not any(derived[n].get(key) for n in names) and key in _OPTIONAL:
            continue
        cells = (f"{derived[n][key]:.0f} µs" if key in derived[n] else "-" for n in names)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, t in results.items():
        lines.append("")
        lines.append(
            f"{name}: {t['requests']:.0f} requests in the workers ({t['served']:.0f} answered"
            f" to the client), {t['reads'] / t['requests']:.1f} reads each; gc runs per 1000"
            f" requests: gen0 {t['n_gc0'] / t['requests'] * 1000:.0f},"
            f" gen1 {t['n_gc1'] / t['requests'] * 1000:.0f},"
            f" gen2 {t['n_gc2'] / t['requests'] * 1000:.1f}"
        )
    return "\n".join(lines)


def inprocess(app: str, duration: float) -> Dict[str, float]:
    """The same counters for ``app`` called in this process in a loop (``io.BytesIO`` input,
    no server): the column to compare the workers' with. Run it in its own process (it
    patches flask_mm7 with --stages)."""

    from bench.bodies import make_body
    from bench.inprocess import make_request

    os.environ[_ENV_APP] = app
    post_worker_init(None)
    body = make_body("typical")
    post = make_request(wrapped, body)
    for _ in range(20):
        post()
    _zero()
    t0, end = _clock(), time.monotonic() + duration
    while time.monotonic() < end:
        pre_request(None, None)
        post()
        post_request(None, None, None, None)
    return dict(_stats, worker_cpu=_clock() - t0, user=0.0, sys=0.0, master=0.0, client=0.0,
                served=_stats["requests"])  # fmt: skip


def _inprocess_subprocess(app: str, duration: float) -> Dict[str, float]:
    import subprocess

    code = (
        "import json, sys; from bench import gunisplit as g;"
        f" print(json.dumps(g.inprocess({app!r}, {duration!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--apps", nargs="+", default=["fixed", "ours"])
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--replay",
        action="store_true",
        help="also call the app again in process on each request, timed apart",
    )
    p.add_argument("--tool", choices=("python", "wrk"), default="python", help="load generator")
    p.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    p.add_argument(
        "--inprocess",
        action="store_true",
        help="also each app called in process (a subprocess), a column of its own",
    )
    p.add_argument("--stages", action="store_true", help="time flask_mm7's steps too")
    p.add_argument(
        "--pin",
        action="store_true",
        help="gunicorn on the last CPU, the load generator on the others",
    )
    p.add_argument("--profile", metavar="DIR", help="cProfile each worker into DIR")
    args = p.parse_args(argv)
    if args.replay:
        os.environ["GUNISPLIT_REPLAY"] = "1"
    if args.stages:
        os.environ["GUNISPLIT_STAGES"] = "1"
    results: Dict[str, Dict[str, float]] = {}
    for _round in range(args.rounds):  # apps alternate: machine noise hits them alike
        for app in args.apps:
            runs = {app: measure(app, args.duration, 1, args.profile, args.pin, args.workers,
                                 args.tool)}  # fmt: skip
            if args.inprocess:
                runs[f"{app} in process"] = _inprocess_subprocess(app, args.duration)
            for label, t in runs.items():
                acc = results.setdefault(label, {})
                for k, v in t.items():
                    acc[k] = acc.get(k, 0.0) + v
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
