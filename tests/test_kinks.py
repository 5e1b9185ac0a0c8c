"""The check draws its inputs away from the kinks of the forward pass (issue 11, item 4).

relu, abs, a where or bracket comparing values, and max/min are not differentiable at their
kinks; a draw can land near one (ties are measure-zero, nearness is not), and a difference
step of the Hessian or of the fallback then crosses it.  ``make_world`` redraws until every
kink argument is at least ``KINK_MARGIN`` from its kink, or keeps the farthest draw and
says so in the check's note.
"""
from __future__ import annotations

import numpy as np

from conftest import derive_text
from indexcalc.check.numeric import KINK_MARGIN, _kink_distance, _kink_sites, make_world
from indexcalc.syntax.idx import parse_text

KINKS = """
dims N=6, D=4
input x[N], X[N,D], tau
r[n] = where(abs(x[n]) <= tau, x[n]^2 / 2, tau * (abs(x[n]) - tau / 2))
m[n] = max_d X[n,d]
f = sum_n r[n] + sum_n relu(x[n] - 0.25) + sum_n m[n]^2
grad f wrt x, X, tau
"""


def test_every_kind_of_kink_is_found():
    sites = _kink_sites(parse_text(KINKS))
    kinds = sorted("zero" if over is None else "gap" for _, over, _ in sites)
    # abs, the where comparison (once for both branches), relu, the max's tie
    assert kinds == ["gap", "zero", "zero", "zero"]


def test_smooth_problems_draw_once():
    problem = parse_text("dims N\ninput x[N]\nf = sum_n tanh(x[n])\ngrad f wrt x\n")
    assert _kink_sites(problem) == []


def test_the_draw_keeps_every_kink_at_the_margin():
    problem = parse_text(KINKS)
    sites = _kink_sites(problem)
    for seed in range(8):
        world = make_world(problem, seed)
        assert _kink_distance(world, sites) >= KINK_MARGIN or "kink" in world.note, seed


def test_a_draw_near_a_kink_is_replaced():
    """With 40 entries under relu(x - c), the first draw puts some entry within the margin
    for most c; the kept draw is never nearer than the first, and here reaches the margin."""
    problem = parse_text("dims N=40\ninput x[N]\nf = sum_n relu(x[n] - 0.3) x[n]\ngrad f wrt x\n")
    sites = _kink_sites(problem)
    first = np.random.default_rng(0).uniform(-1.0, 1.0, size=40)
    assert np.min(np.abs(first - 0.3)) < KINK_MARGIN  # the first draw lands near the kink
    world = make_world(problem, 0)
    assert _kink_distance(world, sites) >= KINK_MARGIN


def test_the_kinked_results_pass_their_check():
    d = derive_text(KINKS)
    assert all(r.check.passed for r in d.results), [r.check for r in d.results]
