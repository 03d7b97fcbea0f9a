"""Profile one contender on one body: ``python -m bench.prof [CONTENDER] [SIZE] [N]``.

Defaults: ``ours typical``. SIZE ``cliff-9`` is the cliff section's 9 MiB body (any MiB);
CONTENDER may be one of the cliff section's (``multipart-spool``, ``ours-no-length``). Runs
the parse ``N`` times (default: enough for ~2 s) under cProfile and prints the top functions
by own time and by cumulative time. With ``--pyinstrument`` (if installed) prints
pyinstrument's call tree instead.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from typing import List

from bench.bodies import make_body, make_cliff_body
from bench.contenders import BY_NAME, CollectSink


def main(argv: List[str]) -> int:
    use_pyinstrument = "--pyinstrument" in argv
    args = [a for a in argv if not a.startswith("--")]
    name = args[0] if args else "ours"
    size = args[1] if len(args) > 1 else "typical"
    if name in BY_NAME:
        contender = BY_NAME[name]
        run = contender.run if contender.available() else None
    else:
        from bench.run import cliff_runners

        run = cliff_runners(smoke=False)[0][name]
    if run is None:
        print(f"{name}: not available", file=sys.stderr)
        return 1
    body = make_cliff_body(float(size[6:])) if size.startswith("cliff-") else make_body(size)

    def once() -> None:
        assert run is not None
        run(io.BytesIO(body.data), body.content_type, CollectSink())

    t0 = time.perf_counter()
    once()
    n = int(args[2]) if len(args) > 2 else max(1, int(2.0 / max(time.perf_counter() - t0, 1e-6)))
    if use_pyinstrument:
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0001)
        prof.start()
        for _ in range(n):
            once()
        prof.stop()
        print(prof.output_text(unicode=True, color=False))
        return 0
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        once()
    pr.disable()
    print(f"{name} on {size} ({body.size:,} B), {n} runs")
    stats = pstats.Stats(pr).strip_dirs()
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
