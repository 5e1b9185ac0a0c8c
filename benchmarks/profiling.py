"""Profiles of the workloads behind failing targets (cProfile, the standard library's).

The issue asks for a profile wherever a target fails; the runner calls ``profile_table``
for each failing derivation workload and puts the top functions by own time in the report.
"""
from __future__ import annotations

import cProfile
import pstats
from pathlib import Path
from typing import Callable

from .problems import REPO
from .measure import ms
from .report import Table

TOP = 12


def profile_table(title: str, fn: Callable[[], object], top: int = TOP) -> Table:
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = []
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # own time
    for (path, line, name), (_, calls, own, cumulative, _) in entries[:top]:
        rows.append([_where(path, line, name), str(calls), ms(own), ms(cumulative),
                     f"{100 * own / total:.1f}"])
    return Table(f"Profile: {title}",
                 ["function", "calls", "own time (ms)", "cumulative (ms)", "own % of total"],
                 rows,
                 [f"cProfile, one run, {ms(total)} ms in total under the profiler; top "
                  f"{top} functions by own time (cumulative time of recursive functions "
                  "counts each level)."])


def _where(path: str, line: int, name: str) -> str:
    if path == "~":  # built-in
        return name
    try:
        path = str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        path = Path(path).name
    return f"{path}:{line} {name}"
