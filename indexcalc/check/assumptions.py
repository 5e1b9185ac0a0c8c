"""Assumptions the numeric check can make true, decided when the file is read.

The engine uses ``assume lhs = rhs`` as a rewrite; the check then has to draw inputs for
which it holds, or it would compare a result derived under the assumption with the
derivatives of a function that does not satisfy it.  The check makes true the constraints
of the form ``sum_c T[s,c] = v`` (by normalising ``T``) and nothing else, so an assumption
is accepted when, after the check has drawn its inputs and normalised them for it and for
the assumptions before it, it and every earlier one hold: a constraint of that form, or an
identity that holds for all inputs (``sum_c T[s,c]^2 >= 0`` is not an identity and cannot
be made to hold when written ``= -1``).  Anything else is bad input, at the assumption's
place: false (``1 = 2`` was refused by the parser already; ``y[i] = y[i] + 1``), impossible
(``sum_c T[s,c]^2 = -1``, ``abs(t[n]) = -1``, ``exp(eps) = 0``), not something the check can
draw (``y[i] = 0``), contradicting an earlier one (``sum_c T[s,c] = 1``, then ``= 2``), or
one the rewriter would apply without end (its right side contains its left side).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..calculus.matching import match
from ..problem import Assumption, InputError, Problem
from ..terms import same
from .numeric import Evaluator, make_world

#: Two sides agree when they differ by at most this, relative to their size (or 1).
AGREEMENT = 1e-9


def validate(problem: Problem) -> None:
    """Raise InputError at the first assumption the check cannot make hold."""
    for k, assumption in enumerate(problem.assumptions):
        _check_terminates(assumption)
        earlier = problem.assumptions[:k]
        world = make_world(replace(problem, assumptions=earlier + [assumption]))
        for other in earlier + [assumption]:
            if _holds(other, world):
                continue
            if other is assumption:
                raise InputError(
                    f"this assumption does not hold for the inputs the check draws: {_reason(assumption)}",
                    assumption.location, hint=_HINT)
            raise InputError(_conflict(assumption, other), assumption.location, hint=_HINT)


_HINT = ("an assumption is an identity, or a constraint the check can make true by "
         "normalising an input: sum_c T[s,c] = 1")


def _reason(assumption: Assumption) -> str:
    if assumption.lhs.tensor_names & assumption.rhs.tensor_names:
        return "it is false (its two sides differ for most inputs)"
    return "it is false, impossible, or a constraint the check cannot draw inputs for"


def _conflict(assumption: Assumption, other: Assumption) -> str:
    line = other.location.line if other.location else "?"
    if same(assumption.lhs, other.lhs):
        return (f"this assumption contradicts the one at line {line}, which gives "
                f"{other.text.split('=')[0].strip()} another value")
    return (f"the check cannot draw inputs for which both this assumption and the one at "
            f"line {line} hold")


def _check_terminates(assumption: Assumption) -> None:
    """The rewriter replaces the left side by the right side; a right side that contains
    the left side again would be rewritten without end."""
    for sub in assumption.rhs.walk():
        if match(assumption.lhs, sub) is not None:
            raise InputError(
                "the right side of this assumption contains its left side, so it would be "
                "applied without end", assumption.location,
                hint="state the assumption with the left side alone on the left: "
                     "assume sum_c T[s,c] = 1")


def _holds(assumption: Assumption, world) -> bool:
    evaluator = Evaluator(world)
    order = tuple(sorted(assumption.lhs.free, key=lambda i: i.name))
    with np.errstate(all="ignore"):
        lhs = evaluator.array(assumption.lhs, order)
        rhs = evaluator.array(assumption.rhs, order)
    if not (np.all(np.isfinite(lhs)) and np.all(np.isfinite(rhs))):
        return False
    scale = max(float(np.max(np.abs(lhs), initial=0.0)),
                float(np.max(np.abs(rhs), initial=0.0)), 1.0)
    return bool(np.max(np.abs(lhs - rhs), initial=0.0) <= AGREEMENT * scale)
