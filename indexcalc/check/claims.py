"""Deciding claims: a hand derivation's results against the derived ones (CONTRACT section 5).

A claim holds *symbolically* when it is, term for term, what indexcalc derived (the matrix
claim parses to the same tree as ``matrix.text``; the index claim is the derived index
form up to the names of its bound indices) and that result passed its numeric check.
Otherwise it is decided *numerically*: on ``DRAWS`` random worlds of the numeric check
(small distinct sizes, inputs drawn as the check draws them, assumptions made true), the
claim is evaluated (a matrix claim by ``syntax.numpy_text.evaluate``, node by node; an
index claim by the check's evaluator) and compared with the checked NumPy function of the
result.  A claim of another shape than the result does not hold, and says so; a claim
whose values differ by more than the check's tolerance (relative to the largest entry of
the result) does not hold, with a counterexample: the inputs of the first world where it
fails, the entry with the largest difference, and both values there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import naming
from ..derivation import Derivation, Result
from ..pipeline import output_indices
from ..problem import Claim, Problem
from ..render.printing import to_text
from ..syntax import numpy_text
from ..terms import rename_indices, same
from .numeric import TOLERANCE, Evaluator, World, compile_lambda, lambda_arguments, make_world

#: Random worlds a claim is compared on (seeds 0, 1, ...).
DRAWS = 3
#: Digits of the input values a counterexample shows.
DIGITS = 4


@dataclass(frozen=True)
class Counterexample:
    """Where a claim and the derived result differ: the inputs, the entry with the largest
    difference (0-based, as NumPy indexes it), and the two values there."""

    inputs: dict[str, object]  # name -> nested lists (or a number)
    entry: tuple[int, ...] | None  # None: the shapes differ, no entry compares
    claimed: float | None
    derived: float | None
    #: where the shapes differ: the claim's and the result's
    shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None

    def to_json(self) -> dict:
        out = {"inputs": self.inputs, "entry": None if self.entry is None else list(self.entry),
               "claimed": self.claimed, "derived": self.derived}
        if self.shapes is not None:
            out["claimed_shape"], out["derived_shape"] = map(list, self.shapes)
        return out


@dataclass(frozen=True)
class ClaimVerdict:
    claim: Claim
    holds: bool
    #: "symbolically: ..." / "numerically: ..." for a claim that holds; why, for one that
    #: does not
    reason: str
    derived: str  # the derived result, as the report shows it beside the claim
    counterexample: Counterexample | None = None

    def to_json(self) -> dict:
        out = {"line": self.claim.location.line if self.claim.location else None,
               "text": f"{self.claim.name} = {self.claim.text}" if self.claim.kind == "matrix"
               else f"{self.claim.name}[{','.join(i.name for i in self.claim.indices)}] = "
                    f"{self.claim.text}",
               "holds": self.holds, "reason": self.reason, "derived": self.derived}
        out["counterexample"] = self.counterexample.to_json() if self.counterexample else None
        return out


def decide_all(derivation: Derivation) -> tuple[ClaimVerdict, ...]:
    """Every claim of the derivation's problem, decided against its result."""
    problem = derivation.problem
    worlds: list[World] = []
    out = []
    for claim in problem.claims:
        result = next(r for r in derivation.results
                      if (r.kind, r.of, r.wrt) == (claim.goal.kind, claim.goal.of, claim.goal.wrt))
        out.append(decide(claim, result, problem, worlds))
    return tuple(out)


def decide(claim: Claim, result: Result, problem: Problem, worlds: list[World] | None = None
           ) -> ClaimVerdict:
    worlds = [] if worlds is None else worlds
    derived = _derived_text(result)
    if claim.rank_mismatch:
        if not worlds:
            worlds.append(make_world(problem, 0))
        world = worlds[0]
        expected = np.shape(compile_lambda(result.numpy)(*lambda_arguments(result.numpy, world)))
        shapes = (np.shape(_claimed_value(claim, world)), expected)
        return ClaimVerdict(claim, False, f"wrong shape: {claim.rank_mismatch}", derived,
                            Counterexample(world_inputs(world), None, None, None, shapes))
    if result.check.passed and _same_as_derived(claim, result):
        return ClaimVerdict(claim, True, "symbolically: it is the derived result, term for "
                                         "term", derived)
    function = compile_lambda(result.numpy)
    for seed in range(DRAWS):
        if seed == len(worlds):
            worlds.append(make_world(problem, seed))
        world = worlds[seed]
        expected = np.asarray(function(*lambda_arguments(result.numpy, world)), dtype=float)
        try:
            with np.errstate(all="ignore"):
                claimed = _claimed_value(claim, world)
            if claim.kind == "matrix" and _denominator_layout(result):
                claimed = claimed.T  # the claim is read in the layout the result is shown in
        except numpy_text.ShapeError as error:
            return ClaimVerdict(claim, False, f"wrong shape: {error}", derived,
                                Counterexample(world_inputs(world), None, None, None))
        except (ValueError, IndexError, TypeError, np.linalg.LinAlgError) as error:
            return ClaimVerdict(claim, False, "the claim cannot be computed: "
                                              f"{_first_line(error)}", derived)
        if claimed.shape != expected.shape:
            shapes = (claimed.shape, expected.shape)
            if claim.kind == "matrix" and _denominator_layout(result):
                shapes = (claimed.shape[::-1], expected.shape[::-1])  # as displayed
            return ClaimVerdict(
                claim, False, f"wrong shape: the claim has shape {_shape(shapes[0], world)}, "
                              f"the result {_shape(shapes[1], world)}", derived,
                Counterexample(world_inputs(world), None, None, None, shapes))
        differs = difference(claimed, expected)
        if differs is not None:
            entry, c, d = differs
            return ClaimVerdict(
                claim, False, f"numerically: it differs from the derived result (largest "
                              f"difference at entry {list(entry)}, random inputs, seed {seed})",
                derived, Counterexample(world_inputs(world), entry, c, d))
    return ClaimVerdict(claim, True, f"numerically: equal to the derived result on {DRAWS} "
                                     f"random draws (relative tolerance {TOLERANCE:g})", derived)


#: Two values that are both zero up to round-off (1e-16 against 2e-16, from inputs of size
#: about 1) are equal: below this absolute gap, the relative tolerance does not apply.
ROUND_OFF = 1e-12


def difference(claimed: np.ndarray, expected: np.ndarray, mask: np.ndarray | None = None):
    """None when ``claimed`` equals ``expected`` to the check's tolerance (relative to the
    largest entry of either, or both within round-off of zero), over the entries of
    ``mask`` (all by default); else the entry with the largest difference and both values."""
    claimed = np.real_if_close(claimed)
    expected = np.real_if_close(expected)
    if mask is None:
        mask = np.ones(np.shape(claimed), dtype=bool)
    finite = np.isfinite(claimed) & np.isfinite(expected)
    if not np.all(finite | ~mask):
        entry = tuple(int(i) for i in np.argwhere(mask & ~finite)[0])
        return entry, float(np.real(claimed[entry])), float(np.real(expected[entry]))
    gap = np.where(mask, np.abs(claimed - expected), 0.0)
    scale = max(float(np.max(np.where(mask, np.abs(expected), 0.0), initial=0.0)),
                float(np.max(np.where(mask, np.abs(claimed), 0.0), initial=0.0)), 1e-300)
    if gap.size == 0 or float(np.max(gap)) <= max(TOLERANCE * scale, ROUND_OFF):
        return None
    entry = tuple(int(i) for i in np.unravel_index(int(np.argmax(gap)), gap.shape))
    return entry, float(np.real(claimed[entry])), float(np.real(expected[entry]))


def world_inputs(world: World) -> dict[str, object]:
    """The inputs and upstream gradients of a world, rounded, for a counterexample."""
    out: dict[str, object] = {}
    for name, value in {**world.values, **world.upstream}.items():
        out[name] = np.round(np.real(value), DIGITS).tolist()
    return out


def _claimed_value(claim: Claim, world: World) -> np.ndarray:
    evaluator = Evaluator(world)
    if claim.kind == "index":
        return np.real_if_close(evaluator.array(claim.term, claim.indices))
    values: dict[str, object] = {}
    for name in claim.tree.names:
        function, order = naming.split_derivative_function(name)
        if function in world.functions and name not in world.values:
            values[name] = world.functions[function][order]
        elif name in world.upstream:
            values[name] = world.upstream[name]
        elif name in world.sizes:
            values[name] = world.sizes[name]
        else:
            values[name] = evaluator.tensor(name)
    return np.asarray(numpy_text.evaluate(claim.tree, values), dtype=float)


def _denominator_layout(result: Result) -> bool:
    return result.matrix is not None and result.matrix.layout == "denominator"


def _same_as_derived(claim: Claim, result: Result) -> bool:
    if claim.kind == "matrix":
        if result.matrix is None:
            return False
        try:
            shown = numpy_text.parse(result.matrix.text, lambda name: True)
        except numpy_text.NumpyTextError:
            return False
        return shown.normal() == claim.tree.normal()
    axes = output_indices(result)
    if len(axes) != len(claim.indices):
        return False
    renamed = rename_indices(claim.term, dict(zip(claim.indices, axes)))
    return same(renamed, result.index)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _derived_text(result: Result) -> str:
    if result.matrix is not None:
        return result.matrix.text
    return f"{to_text(result.target)} = {to_text(result.index)}"


def _shape(shape: tuple[int, ...], world: World) -> str:
    """(4, 3), with the dims of those sizes where they are unique: (4, 3) = (N, M)."""
    by_size: dict[int, list[str]] = {}
    for dim, size in world.sizes.items():
        by_size.setdefault(size, []).append(dim)
    names = [by_size.get(n, []) for n in shape]
    text = str(tuple(shape))
    if shape and all(len(n) == 1 for n in names):
        text += " = (" + ", ".join(n[0] for n in names) + ")"
    return text
