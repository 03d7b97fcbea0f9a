"""Memory: tracemalloc peak in-process, and peak RSS of a fresh subprocess over an idle one.

Both use :class:`bench.contenders.CountSink`, so a streaming parser keeps nothing: what is
measured is what the parser itself holds while it reads the body (and, for ``ours``, what
it keeps in memory instead of spooling to disk).

RSS: ``python -m bench.memory PROBE CONTENDER FILE CONTENT_TYPE`` imports every available
contender, parses the tiny body once (so lazy imports and caches are warm: an "idle worker"
that has already served a request) and, unless ``PROBE`` is ``idle``, then parses ``FILE``
from an open file object; it prints its own ``ru_maxrss`` (KiB on Linux). The reported
figure is measured minus idle, in MiB, for the same contender.
"""

from __future__ import annotations

import gc
import io
import json
import os
import resource
import subprocess
import sys
import tracemalloc
from typing import List, Optional

from .bodies import make_body
from .contenders import BY_NAME, CONTENDERS, CountSink

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tracemalloc_peak(name: str, data: bytes, content_type: str) -> int:
    """Peak bytes traced while ``name`` parses ``data`` (the body itself not counted)."""
    contender = BY_NAME[name]
    stream = io.BytesIO(data)  # shares ``data``'s buffer until written: no copy counted
    # warm up lazy imports and caches outside the traced window
    tiny = make_body("tiny")
    contender.run(io.BytesIO(tiny.data), tiny.content_type, CountSink())
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        contender.run(stream, content_type, CountSink())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def rss_delta_mib(name: str, path: str, content_type: str) -> Optional[float]:
    """Peak RSS of a subprocess that parses ``path`` minus that of an idle one, in MiB."""

    def probe(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-m", "bench.memory", mode, name, path, content_type],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"memory probe {mode} {name} failed: {out.stderr[-2000:]}")
        return int(json.loads(out.stdout.strip().splitlines()[-1])["maxrss_kib"])

    idle = probe("idle")
    busy = probe("parse")
    return (busy - idle) / 1024


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB (``VmHWM``, else ``ru_maxrss``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _child(argv: List[str]) -> int:
    mode, name, path, content_type = argv
    for c in CONTENDERS:  # identical imports in the idle and the busy probe
        c.available()
    contender = BY_NAME[name]
    tiny = make_body("tiny")
    contender.run(io.BytesIO(tiny.data), tiny.content_type, CountSink())
    del tiny
    gc.collect()
    with open(path, "rb") as f:
        if mode == "parse":
            sink = CountSink()
            contender.run(f, content_type, sink)
    print(json.dumps({"maxrss_kib": peak_rss_kib()}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
