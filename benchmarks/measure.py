"""Timing, memory and curve-fitting helpers shared by every section.

Wall-clock time (``time.perf_counter``) throughout: it is what a user waits for.  On a
shared machine the median (derivations) and the best of several runs (generated code, where
the question is how fast the code can be) damp the noise of other processes.
"""
from __future__ import annotations

import gc
import math
import statistics
import time
import tracemalloc
from typing import Callable

import numpy as np


def run_times(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds for each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    return statistics.median(run_times(fn, repeats, warmup))


def best_of_interleaved(fns: list[Callable[[], object]], repeats: int,
                        min_seconds: float = 0.0) -> list[float]:
    """Best time of each function; they take turns, and who goes first rotates each round,
    so drift and whatever the previous call left behind (warm caches, busy threads) hit
    them alike.  At least ``repeats`` rounds, and more until the rounds took
    ``min_seconds``: the best of 15 runs of a 3 ms call still moved by 20% from one run of
    the benchmark to the next, the best of 200 by 2%."""
    for fn in fns:  # warm-up: first-touch page faults, BLAS thread start, lazy imports
        fn()
    best = [math.inf] * len(fns)
    started = time.perf_counter()
    round_ = 0
    while round_ < repeats or time.perf_counter() - started < min_seconds:
        round_ += 1
        for offset in range(len(fns)):
            k = (round_ + offset) % len(fns)
            start = time.perf_counter()
            fns[k]()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak Python heap allocation (tracemalloc) during one call of ``fn``."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def growth_exponent(sizes: list[float], values: list[float]) -> float:
    """Slope of the least-squares line through (log size, log value): value ~ size^slope."""
    if len(sizes) < 2:
        return math.nan
    slope, _ = np.polyfit(np.log(sizes), np.log(values), 1)
    return float(slope)


def geometric_mean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else math.nan


def ms(seconds: float) -> str:
    """Milliseconds with three significant figures (1.23, 12.3, 123, 1234)."""
    value = seconds * 1000
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.2f}"
