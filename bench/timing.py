"""Adaptive in-process timing, side by side: each function repeated as often as fits in a time
budget, the functions' repetitions interleaved; the median of each."""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List


@dataclass
class Timing:
    """What :func:`measure_interleaved` gives for one function, in nanoseconds."""

    median_ns: float
    min_ns: int
    reps: int

    @property
    def median_s(self) -> float:
        return self.median_ns / 1e9


def measure_interleaved(
    fns: Dict[str, Callable[[], object]],
    *,
    budget_s: float = 1.0,
    min_reps: int = 5,
    max_reps: int = 2000,
    rounds: int = 10,
) -> Dict[str, Timing]:
    """Time each of ``fns`` with ``time.perf_counter_ns``: one warm-up call sizes its
    repetition count so it takes about ``budget_s`` (never fewer than ``min_reps``, never
    more than ``max_reps``); the repetitions are spread over ``rounds`` rounds that run the
    functions in rotating order, so a change of the machine's speed during the cell reaches
    all of them alike and their ratios stay honest. The garbage collector stays enabled
    (parsers that allocate pay for it in real servers too) but is run before the cell."""
    clock = time.perf_counter_ns
    gc.collect()
    reps: Dict[str, int] = {}
    for name, fn in fns.items():
        t0 = clock()
        fn()
        first = max(clock() - t0, 1)
        reps[name] = max(min_reps, min(max_reps, int(budget_s * 1e9 / first)))
    samples: Dict[str, List[int]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        shift = r % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            # this round's share: the rest of the count spread over the rounds left
            n = -(-(reps[name] - len(samples[name])) // (rounds - r))
            for _ in range(n):
                t0 = clock()
                fn()
                samples[name].append(clock() - t0)
    return {
        name: Timing(statistics.median(got), min(got), len(got))
        for name, got in samples.items()
        if got
    }


def fmt_ns(ns: float) -> str:
    """A duration with a readable unit: ``12.3 µs``, ``4.56 ms``, ``1.23 s``."""
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"
