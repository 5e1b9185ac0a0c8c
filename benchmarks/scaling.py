"""Scaling: time and peak memory against the size K of generated problems.

Two families (``problems.dense_tanh_chain`` and ``problems.wide_sum``).  For each K: one
warm-up run, the median of the next runs (parse + ``pipeline.run``), as many runs with each
stage timed (``latency.stage_seconds``), and one more run under tracemalloc for the peak
memory.  Beside time it counts what the derivation holds (steps, and the nodes of every
step's term, which is what the renderers print), so a growth in time can be told apart
from a growth in the output itself.

The growth exponent is the slope of a least-squares line on log-log axes, over all K and
over K >= 4 (small K are dominated by fixed costs such as setting up the numeric check);
the latter is held against the issue's K^1.5.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Callable

from indexcalc.syntax.idx import parse_text
from indexcalc.pipeline import run

from .latency import STAGES, stage_seconds
from .measure import growth_exponent, median_seconds, mib, ms, peak_bytes
from .problems import dense_tanh_chain, nested_chain, wide_sum
from .report import Table, Target
from .settings import Settings

EXPONENT_LIMIT = 1.5
TAIL_FROM_K = 4
CHAIN_TARGET_K = 16
CHAIN_LIMIT_S = 2.0

FAMILIES: dict[str, Callable[[int], str]] = {
    "dense+tanh chain": dense_tanh_chain,
    "wide sum": wide_sum,
    "nested chain": nested_chain,
}


@dataclass
class Point:
    k: int
    median_s: float
    peak_bytes: int
    steps: int
    step_nodes: int
    checks: str
    derive_s: float  # median derive stage (separate runs)
    check_s: float  # median numeric-check stage (separate runs)


@dataclass
class Family:
    name: str
    points: list[Point]
    errors: dict[int, str] = field(default_factory=dict)  # K -> what went wrong

    def exponent(self, attr: str, tail: bool = False) -> float:
        pts = [p for p in self.points if not tail or p.k >= TAIL_FROM_K]
        return growth_exponent([p.k for p in pts], [getattr(p, attr) for p in pts])

    def point(self, k: int) -> Point | None:
        return next((p for p in self.points if p.k == k), None)


def measure_point(text: str, k: int, repeats: int) -> Point:
    def once():
        return run(parse_text(text, f"<K={k}>"))

    derivation = once()  # the warm-up run, also the one whose contents are counted
    median = median_seconds(once, repeats, warmup=0)
    steps = [s for r in derivation.results for b in r.blocks for s in b.steps]
    passed = sum(r.check.passed for r in derivation.results)
    laps = [stage_seconds(text, f"<K={k}>") for _ in range(repeats)]

    def stage(name: str) -> float:
        return statistics.median(lap[STAGES.index(name)] for lap in laps)

    return Point(k, median, peak_bytes(once), len(steps), sum(s.after.size for s in steps),
                 f"{passed}/{len(derivation.results)}", stage("derive"), stage("numeric check"))


def measure_family(name: str, settings: Settings) -> Family:
    family = Family(name, [])
    for k in settings.scaling_sizes:
        try:
            family.points.append(measure_point(FAMILIES[name](k), k, settings.scaling_repeats))
        except Exception as error:  # a finding for the table, not a reason to stop
            family.errors[k] = f"{type(error).__name__}: {error}"
    return family


def table(family: Family, settings: Settings) -> Table:
    rows = [[str(p.k), ms(p.median_s), ms(p.derive_s), ms(p.check_s), mib(p.peak_bytes),
             str(p.steps), str(p.step_nodes), p.checks] for p in family.points]
    notes = [
        f"median of {settings.scaling_repeats} runs after a warm-up; peak memory: one run "
        "under tracemalloc (Python heap).",
        "derive, numeric check: medians of those stages over as many further runs, each "
        "stage timed on its own.",
        _fit_note("time", family, "median_s"),
        _fit_note("derive stage", family, "derive_s"),
        _fit_note("peak memory", family, "peak_bytes"),
        _fit_note("nodes in all steps (the size of the printed derivation)", family,
                  "step_nodes"),
    ] + [f"K = {k} FAILED: {error}" for k, error in family.errors.items()]
    return Table(f"Scaling: {family.name}",
                 ["K", "median (ms)", "derive (ms)", "numeric check (ms)", "peak memory (MiB)",
                  "steps", "nodes in all steps", "numeric checks"], rows, notes)


def _fit_note(what: str, family: Family, attr: str) -> str:
    whole, tail = family.exponent(attr), family.exponent(attr, tail=True)
    flag = f" — ABOVE K^{EXPONENT_LIMIT}" if tail > EXPONENT_LIMIT else ""
    return (f"{what} ~ K^{whole:.2f} over all K, K^{tail:.2f} over K >= {TAIL_FROM_K}"
            f"{flag}")


def targets(families: list[Family]) -> list[Target]:
    out = []
    chain = next(f for f in families if f.name == "dense+tanh chain")
    point = chain.point(CHAIN_TARGET_K)
    error = chain.errors.get(CHAIN_TARGET_K)
    if error:
        measured, passed = error, False
    elif point is None:
        measured, passed = "not run", None
    else:
        measured, passed = f"{point.median_s:.3f} s", point.median_s < CHAIN_LIMIT_S
    out.append(Target(f"{CHAIN_TARGET_K}-layer dense+tanh chain", measured,
                      f"< {CHAIN_LIMIT_S:g} s", passed))
    nested = next((f for f in families if f.name == "nested chain"), None)
    if nested is not None:  # issue 13: each layer using its input twice, depth 16 < 2 s
        point = nested.point(CHAIN_TARGET_K)
        error = nested.errors.get(CHAIN_TARGET_K)
        out.append(Target(f"nested chain of depth {CHAIN_TARGET_K}",
                          error or ("not run" if point is None else f"{point.median_s:.3f} s"),
                          f"< {CHAIN_LIMIT_S:g} s",
                          False if error else None if point is None
                          else point.median_s < CHAIN_LIMIT_S))
    for family in families:
        tail = family.exponent("median_s", tail=True)
        out.append(Target(f"growth of time, {family.name} (K >= {TAIL_FROM_K})",
                          f"K^{tail:.2f}", f"<= K^{EXPONENT_LIMIT}",
                          None if math.isnan(tail) else tail <= EXPONENT_LIMIT))
    return out
