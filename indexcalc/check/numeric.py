"""The numeric check: everything a result shows, against derivatives of the forward pass.

Both the generated NumPy function and the matrix form as displayed (``matrix.where`` and
``matrix.text``, evaluated as printed) are compared with numeric derivatives of the forward
definitions; either disagreeing fails the check.  The forward definitions are evaluated by
executing the contraction plans of ``emit.plan`` with NumPy directly, never by running
printed code, on random float64 inputs of small distinct sizes.

The numeric derivative is the complex step, d f / d x = Im f(x + i h) / h with h = 1e-20:
no difference of nearby values is taken, so it is exact to rounding whatever the size of
``f`` (a large constant, values near 1e11, fast oscillation), and there is no step to pick.
Every builtin has a complex value (``functions.Function.value``; a piecewise function takes
the branch its real part lies on), and so has each stand-in of an unspecified function.  A
Hessian entry is a central difference of complex steps.  Central differences of real
values remain for a forward pass without complex values (``COMPLEX_STEP = False``), with
the error judged against the rounding level of ``f`` itself.

A difference is relative to the largest derivative compared, never to a fixed floor, so a
gradient of size 1e-7 is judged as strictly as one of size 1; against the complex step also
relative to the entry itself (down to ``SMALL_ENTRY`` of the largest).  What a method may
carry by itself is allowed for: real differences their rounding eps |f| / step, a Hessian's
differences eps |df| / step; and, computed only where the result would otherwise fail, the
measured rounding of both sides: of a complex step its change under a second h, of the
result its change when the inputs move by 1e-13 of themselves, or eps times the size of the
terms its code subtracts (1 - tanh(u)^2 is 0 in float64 once tanh(u) rounds to 1).  A step
whose own rounding is above the tolerance cannot pass a result (unless both sides are zero
to within their rounding); where no step can judge, the result is not checked.

A check whose compared values are not finite, or which had nothing to compare (every value
underflowed to zero), is reported as not checked (``CheckResult.checked`` False), never as
passed.  Sizes that would make the check allocate or compute too much (``dims N=10000000``)
are replaced by small ones, with a note in the result: the derivation does not depend on them.
An opaque ``L = loss(Y)`` is replaced by the linear loss ``sum(G * Y)`` with a random ``G``,
whose gradient with respect to ``Y`` is ``G``: the upstream gradient handed to the lambda.
Inputs under a function whose registry domain is positive (``log``, ``sqrt``), in a
denominator or under a fractional power are drawn positive; an assumption of the form
``sum_c T[s,c] = v`` is made true by normalising ``T``.  Inputs are drawn away from the
kinks of the forward pass (relu, abs, comparisons in brackets and ``where``, ties of
``max``/``min``): a draw that puts a kink argument within ``KINK_MARGIN`` of its kink is
replaced (``make_world``), and the check's note says so if none of its draws avoids it.
"""
from __future__ import annotations

import ast
import itertools
import math
import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, NamedTuple

import numpy as np
import numpy.random  # noqa: F401 -- loaded before a run sets its memory limit

from .. import limits, naming
from ..functions import CONSTANTS, FUNCTIONS, POSITIVE, REAL, builtin
from ..emit.plan import (
    Arange, ArgIndex, Call, Compare, ConstantValue, DimValue, Eye, Gather, MatrixValue, Number,
    Plan, Product, Raise, Read, Reduce, Select, Total, plan as make_plan,
)
from ..derivation import CheckResult, MatrixForm, NumpyFunction
from ..problem import Goal, InputError, Problem
from ..terms import (
    Arg, Bracket, Func, Index, MatrixFunc, Mul, Num, Pow, Sum, Tensor, Term, add, base_exp,
    neg,
)

#: Sizes given to dims without ``=n``: small and distinct, so a transposition shows.
DEFAULT_SIZES = (3, 4, 5, 2, 6, 7, 8, 9, 10, 11)
#: The complex step's h: far below rounding, so Im f(x + ih) / h is f'(x) to rounding.
COMPLEX_H = 1e-20
#: Use the complex step (False: central differences of real values only).
COMPLEX_STEP = True
#: Steps of the central difference over complex steps that makes a Hessian entry, tried in
#: order (fast-varying functions such as exp(300 v) need the small ones).
HESSIAN_STEPS = (1e-4, 1e-3, 1e-5, 1e-6, 1e-7, 1e-2, 1e-1)
#: Large steps at which Hessian differences are also extrapolated (Richardson), tried last.
RICHARDSON_STEPS = (1e-2, 1e-1)
DIFFERENCES_OF_COMPLEX_STEPS = "central differences of complex steps"
RICHARDSON = "Richardson extrapolation of central differences of complex steps"
#: The rounding a Hessian difference is allowed, in eps |df| / step.
HESSIAN_ROUNDING = 4.0
#: Central-difference steps for a forward pass without complex values, tried in order.
STEPS = (1e-6, 1e-5, 1e-7, 1e-4)
TOLERANCE = 1e-6
#: A compared difference is relative to the largest derivative compared, never to less than
#: this (a gradient that is exactly zero everywhere is compared absolutely at this level).
SMALLEST_SCALE = 1e-300
#: Against the complex step, an entry is judged relative to itself plus this fraction of
#: the largest entry (entries far below the largest are judged on their own digits).
SMALL_ENTRY = 1e-3
#: The rounding error allowed a complex step, in multiples of its measured noise.
NOISE_FACTOR = 16.0
#: How far (relative) the inputs move to measure the rounding noise of a derived result.
RESULT_NUDGE = 1e-13
#: A second h, far from a power of two, for measuring the complex step's rounding noise.
COMPLEX_H_OTHER = 0.7071e-20
#: Entries compared at most; past this many, a random sample of them (sizes from ``dims``
#: can be large, and each entry costs one or two evaluations of the forward definitions).
MAX_FD_ENTRIES = 100
MAX_HESSIAN_ENTRIES = 100
#: Past this many elements in one array, or this much einsum work in one evaluation of the
#: forward pass, the check uses small sizes instead of those given with ``dims``.
MAX_CHECK_ELEMENTS = 2**20
MAX_CHECK_WORK = 2**24
#: An einsum doing more multiply-adds than this is contracted pairwise (``optimize``).
EINSUM_OPTIMIZE_WORK = 2**16


class StandIn:
    """The stand-in for the k-th unspecified function: h(x) = sin(a x) + x^2 / 2 with
    a = 1 + k/4, and its derivatives of every order (``stand_in[n]`` is the n-th)."""

    def __init__(self, k: int):
        self.a = 1.0 + 0.25 * k  # np.sin and the powers take complex arguments as well

    def __getitem__(self, order: int):
        return self.derivative(order)

    def derivative(self, order: int, sin=np.sin):
        """The ``order``-th derivative, computed with ``sin`` (a framework's, for its
        autograd: ``check.frameworks``)."""
        a = self.a
        # d^n sin(a x) = a^n sin(a x + n pi / 2); d^n x^2/2 is x, 1, then 0.
        poly = {0: lambda x: 0.5 * x**2, 1: lambda x: x, 2: lambda x: 1.0}.get(order, lambda x: 0.0)
        return lambda x: a**order * sin(a * x + order * np.pi / 2) + poly(x)


def user_function(k: int) -> StandIn:
    """The k-th stand-in for an unspecified function h: ``user_function(k)[n]`` is h^(n)."""
    return StandIn(k)


@dataclass
class World:
    """Sizes, input values, upstream gradients and function stand-ins for one check."""

    problem: Problem
    sizes: dict[str, int]
    values: dict[str, np.ndarray]
    upstream: dict[str, np.ndarray]  # "dL_dY" -> G
    functions: dict[str, StandIn]  # "h" -> its stand-in and derivatives
    memo: dict = field(default_factory=dict)
    #: Why the sizes differ from those given with ``dims`` (empty when they do not).
    note: str = ""
    seed: int = 0

    def shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(self.sizes[d] for d in self.problem.tensor_dims(tensor))


#: How close (absolutely; inputs are of size 1) a drawn input may put the argument of a kink
#: (relu, abs, a where or bracket comparison, a tie for max) to it: nearer, and a difference
#: step of the Hessian or the fallback could cross it.
KINK_MARGIN = 1e-2
#: Draws tried, at most, to keep every kink at ``KINK_MARGIN``; the farthest one is kept.
KINK_DRAWS = 12


def make_world(problem: Problem, seed: int = 0, small: bool = False) -> World:
    """Random inputs for the check, drawn away from the kinks of the forward pass: among up
    to ``KINK_DRAWS`` draws, the first with every kink argument at least ``KINK_MARGIN``
    from its kink (else the farthest, with a note).  ``small``: the default small sizes
    for every dim, whatever ``dims`` gives (a hand derivation's links do not depend on
    them, and each derivative symbol in one costs an evaluation per entry)."""
    if small:
        sizes, note = _draw_sizes(problem, {}), ""
    else:
        sizes, note = check_sizes(problem)
    world = _draw_world(problem, sizes, note, np.random.default_rng(seed), seed)
    sites = _kink_sites(problem)
    if not sites:
        return world
    best, distance = world, _kink_distance(world, sites)
    for attempt in range(1, KINK_DRAWS):
        if distance >= KINK_MARGIN:
            break
        other = _draw_world(problem, sizes, note, np.random.default_rng((seed, attempt)), seed)
        d = _kink_distance(other, sites)
        if d > distance:
            best, distance = other, d
    if distance < KINK_MARGIN:
        near = f"an input lies {distance:.1g} from a kink (relu, abs, where, max)"
        best.note = "; ".join(part for part in (best.note, near) if part)
    return best


def _kink_sites(problem: Problem) -> list[tuple[Term, Index | None, int]]:
    """Where the forward pass is not smooth: (u, None, 0) for relu(u), abs(u) and a
    comparison of values a - b (brackets, where), whose kink is at u = 0; (e, d, -1) for
    max_d e and (e, d, 0) for min_d e, whose kink is a tie of the two extreme entries (the
    last two, or the first two, of e sorted along d)."""
    sites: list[tuple[Term, Index | None, int]] = []
    for d in problem.definitions.values():
        if d.body is None:
            continue
        for t in d.body.walk():
            if isinstance(t, Func) and t.name in ("relu", "abs", "step", "sign") and not t.order:
                sites.append((t.arg, None, 0))
            elif isinstance(t, Bracket) and (t.a.tensor_names or t.b.tensor_names):
                sites.append((add(t.a, neg(t.b)), None, 0))
            elif isinstance(t, Arg):
                sites.append((t.body, t.over, -1 if t.kind == "max" else 0))
    return list(dict.fromkeys(sites))  # where(c, p, q) holds [c] and [not c]


def _kink_distance(world: World, sites) -> float:
    """The least distance of any kink argument from its kink over the drawn inputs."""
    evaluator = Evaluator(world)
    least = math.inf
    for term, over, end in sites:
        value, axes = evaluator.evaluate(term)
        value = np.real(value)
        if over is None:
            gap = np.abs(value)
        elif over in axes and value.shape[axes.index(over)] > 1:
            axis = axes.index(over)
            ranked = np.sort(value, axis=axis)
            second = -2 if end == -1 else 1
            gap = np.abs(np.take(ranked, end, axis=axis) - np.take(ranked, second, axis=axis))
        else:
            continue
        if gap.size:
            least = min(least, float(np.min(gap)))
    return least


def _draw_world(problem: Problem, sizes: dict[str, int], note: str, rng, seed: int) -> World:
    positive = _positive_inputs(problem)
    values = {}
    for name, decl in problem.inputs.items():
        shape = tuple(sizes[d] for d in decl.dims)
        low, high = (0.5, 1.5) if name in positive else (-1.0, 1.0)
        values[name] = rng.uniform(low, high, size=shape)
        if decl.symmetric:
            values[name] = (values[name] + values[name].T) / 2
    conditioned = _inverted_inputs(problem)
    for name in conditioned:  # inv, det, logdet: well away from singular
        n = values[name].shape[0]
        noise = values[name] / np.sqrt(n)
        values[name] = (np.eye(n) + noise @ noise.T if problem.inputs[name].symmetric
                        else np.eye(n) + 0.5 * noise)
    if conditioned:
        drawn = (f"{', '.join(sorted(conditioned))} drawn well-conditioned (identity plus "
                 f"a small random part) for inv/det/logdet")
        note = "; ".join(part for part in (note, drawn) if part)
    for assumption in problem.assumptions:
        _enforce(assumption, values, rng)
    upstream = {}
    for d in problem.definitions.values():
        for arg in d.loss_args:
            shape = tuple(sizes[x] for x in problem.tensor_dims(arg))
            upstream[naming.gradient(d.name, arg)] = rng.uniform(-1.0, 1.0, size=shape)
    functions = {name: user_function(k) for k, name in enumerate(problem.functions)}
    return World(problem, sizes, values, upstream, functions, note=note, seed=seed)


def check_sizes(problem: Problem) -> tuple[dict[str, int], str]:
    """The sizes the check uses, and a note when they are not those of ``dims``: given
    sizes whose arrays or einsum work exceed the check's means are replaced by small ones."""
    given = [dim for dim, size in problem.dims.items() if size is not None]
    sizes = _draw_sizes(problem, {dim: problem.dims[dim] for dim in given
                                  if dim not in problem.dim_formulas})
    if not given:
        return sizes, ""
    elements, work = _cost(problem, sizes)
    if elements <= MAX_CHECK_ELEMENTS and work <= MAX_CHECK_WORK:
        return sizes, ""
    sizes = _draw_sizes(problem, {})
    what = (f"arrays of {elements:.3g} entries" if elements > MAX_CHECK_ELEMENTS
            else f"{work:.3g} multiply-adds per evaluation")
    shown = ", ".join(f"{dim}={sizes[dim]}" for dim in given)
    return sizes, f"checked at {shown}: the sizes given would need {what}"


#: Sizes tried beyond ``DEFAULT_SIZES`` when dims defined by formulas need them.
EXTRA_SIZES = (12, 13, 14, 15, 16)
#: Size choices tried before giving up on dims defined by formulas.
MAX_SIZE_CHOICES = 20_000


def _draw_sizes(problem: Problem, fixed: dict[str, int]) -> dict[str, int]:
    """A size for every dim: ``fixed`` ones kept, the others small and distinct (the first
    of ``DEFAULT_SIZES`` not taken, in order), chosen so that every dim defined by a
    formula (``U = T - K + 1``) comes out at least 2 (or, where none does, at least 1)."""
    free = [d for d in problem.dims if d not in fixed and d not in problem.dim_formulas]
    pool = tuple(s for s in DEFAULT_SIZES + EXTRA_SIZES if s not in fixed.values())
    for least in (2, 1):
        choices = itertools.permutations(pool, len(free))
        for choice in itertools.islice(choices, MAX_SIZE_CHOICES):
            sizes = dict(fixed, **dict(zip(free, choice)))
            for dim, formula in problem.dim_formulas.items():  # from dims declared before
                sizes[dim] = formula.evaluate(sizes)
            if all(sizes[dim] >= least for dim in problem.dim_formulas):
                return {dim: sizes[dim] for dim in problem.dims}
    dim, formula = next((d, f) for d, f in problem.dim_formulas.items() if sizes[d] < 1)
    raise InputError(f"{dim} = {formula.text} is below 1 for every size tried",
                     formula.location, hint="a dim has at least one entry")


def _cost(problem: Problem, sizes: dict[str, int]) -> tuple[float, float]:
    """The largest array (entries) and the einsum work of one forward evaluation, and the
    result arrays of the goals, at ``sizes`` (floats: they may be astronomically large)."""
    def size(axes) -> float:
        return math.prod(float(sizes[i.dim]) for i in axes)

    elements, work = 0.0, 0.0

    def visit(p: Plan):
        nonlocal elements, work
        elements = max(elements, size(p.axes))
        if isinstance(p, Product):
            letters = dict.fromkeys(i for f in p.factors for i in f.axes)
            work += size(letters)
        for child in _plan_children(p):
            visit(child)

    for name, decl in problem.inputs.items():
        elements = max(elements, math.prod(float(sizes[d]) for d in decl.dims))
    for d in problem.definitions.values():
        if d.body is not None:
            visit(make_plan(d.body))
    for goal in problem.goals:
        wrt = math.prod(float(sizes[x]) for x in problem.tensor_dims(goal.wrt))
        of = math.prod(float(sizes[x]) for x in problem.tensor_dims(goal.of))
        elements = max(elements, of * wrt * (wrt if goal.kind == "hessian" else 1))
    return elements, work


def _plan_children(p: Plan) -> tuple[Plan, ...]:
    if isinstance(p, Call):
        return (p.arg,)
    if isinstance(p, Raise):
        return (p.base, p.exponent)
    if isinstance(p, Total):
        return p.terms
    if isinstance(p, Product):
        return p.factors
    if isinstance(p, Compare):
        return (p.a, p.b)
    if isinstance(p, Select):
        return (p.test, p.then, p.otherwise)
    return ()


def _inverted_inputs(problem: Problem) -> set[str]:
    """Inputs that inv, det or logdet take: the check draws them well-conditioned."""
    return {t.matrix for d in problem.definitions.values() if d.body is not None
            for t in d.body.walk() if isinstance(t, MatrixFunc) and t.matrix in problem.inputs}


def _positive_inputs(problem: Problem) -> set[str]:
    """Inputs that appear inside log/sqrt, in a denominator or under a fractional power."""
    out: set[str] = set()

    def visit(t: Term, sensitive: bool):
        if isinstance(t, Tensor) and sensitive:
            out.add(t.name)
        if isinstance(t, Func) and getattr(builtin(t.name), "domain", REAL) == POSITIVE:
            sensitive = True
        if isinstance(t, Pow):
            _, e = base_exp(t)
            if not isinstance(t.exponent, Num) or e < 0 or e.denominator != 1:
                sensitive = True
        for c in t.children():
            visit(c, sensitive)

    for d in problem.definitions.values():
        if d.body is not None:
            visit(d.body, False)
    return out


def _enforce(assumption, values, rng) -> None:
    """Make ``sum_c T[s,c]^p = v`` true (p > 0, v > 0 unless p = 1; ``T T`` is ``T^2``) by
    drawing ``T`` positive and scaling it along the summed axes.  Other assumptions are left
    to ``check.assumptions``, which refuses those that do not then hold."""
    lhs, rhs = assumption.lhs, assumption.rhs
    if not (isinstance(lhs, Sum) and isinstance(rhs, Num)):
        return
    body, p = _power_of_one_tensor(lhs.body)
    if body is None or body.name not in values or (p != 1 and rhs.value <= 0):
        return
    axes = tuple(k for k, i in enumerate(body.indices) if i in lhs.indices)
    if len(set(body.indices)) != len(body.indices) or not axes:
        return
    x = rng.uniform(0.0, 1.0, size=values[body.name].shape)
    total = np.sum(x ** p, axis=axes, keepdims=True)
    values[body.name] = x * (float(rhs.value) / total) ** (1.0 / p)


def _power_of_one_tensor(term: Term) -> tuple[Tensor | None, float]:
    """``T`` -> (T, 1); ``T^2`` or ``T T`` -> (T, 2); anything else (None, 0)."""
    if isinstance(term, Tensor):
        return term, 1.0
    if isinstance(term, Pow) and isinstance(term.base, Tensor) and isinstance(term.exponent, Num) \
            and term.exponent.value > 0:
        return term.base, float(term.exponent.value)
    if isinstance(term, Mul) and term.factors and all(f == term.factors[0] for f in term.factors) \
            and isinstance(term.factors[0], Tensor):
        return term.factors[0], float(len(term.factors))
    return None, 0.0


# --- the interpreter ---------------------------------------------------------------------------

class Evaluator:
    """Evaluates index expressions to arrays whose axes follow a returned index tuple."""

    def __init__(self, world: World, overrides: dict[str, np.ndarray] | None = None,
                 known: dict[str, np.ndarray] | None = None):
        self.world = world
        self.overrides = overrides or {}
        self.cache: dict[str, np.ndarray] = dict(known or {})

    def tensor(self, name: str) -> np.ndarray:
        if name in self.overrides:
            return self.overrides[name]
        if name in self.world.values:
            return self.world.values[name]
        if name not in self.cache:
            d = self.world.problem.definitions[name]
            if d.is_opaque_loss:
                self.cache[name] = np.array(sum(
                    np.sum(self.world.upstream[naming.gradient(name, a)] * self.tensor(a))
                    for a in d.loss_args))
            else:
                self.cache[name] = self.array(d.body, d.indices)
        return self.cache[name]

    def _read(self, name: str, grad: bool) -> np.ndarray:
        """An upstream gradient, or a tensor (a gradient derived on the way is defined)."""
        if grad and name in self.world.upstream:
            return self.world.upstream[name]
        return self.tensor(name)

    def array(self, term: Term, order: tuple[Index, ...]) -> np.ndarray:
        value, idx = self.evaluate(term)
        return _arrange(value, idx, order, self.world.sizes)

    def evaluate(self, term: Term) -> tuple[np.ndarray, tuple[Index, ...]]:
        plan = make_plan(term)
        return self.execute(plan), plan.axes

    def _matrix_value(self, p: MatrixValue) -> np.ndarray:
        """inv(A), det(A), log|det A|, analytic in A so that a complex step goes through
        (log of det times the sign of its real part, not slogdet, which drops the step)."""
        a = self.tensor(p.matrix)
        if p.fn == "det":
            return np.linalg.det(a)
        if p.fn == "logdet":
            d = np.linalg.det(a)
            return np.log(d * np.sign(np.real(d)))
        value = np.linalg.inv(a)
        if len(p.axes) != len(p.indices):
            value = np.einsum(_spec(p.indices) + "->" + _spec(p.axes, p.indices), value)
        return value

    def _arange(self, p: Arange) -> np.ndarray:
        """The values of ``p``, each index's arange on its own axis (broadcast together)."""
        n = len(p.axes)
        value = np.array(p.offset)
        for m, (i, c) in enumerate(zip(p.axes, p.coefficients)):
            if c:
                shape = (1,) * m + (-1,) + (1,) * (n - m - 1)
                value = value + c * np.arange(self.world.sizes[i.dim]).reshape(shape)
        return value

    def _gather(self, p: Gather) -> np.ndarray:
        """Entries at shifted positions, 0 outside the range (zero padding)."""
        value = self._read(p.name, p.grad)
        if p.order != tuple(range(value.ndim)):
            value = np.transpose(value, p.order)
        # broadcast together over all their indices
        where = [self._arange(a.widened(p.union)) for _, a, _ in p.shifted]
        sizes = [self.world.sizes[dim] for _, _, dim in p.shifted]
        picked = tuple(np.clip(w, 0, n - 1) for w, n in zip(where, sizes))
        inside = np.ones((), dtype=bool)
        for w, n in zip(where, sizes):
            inside = inside & (w >= 0) & (w < n)
        value = value[(slice(None),) * len(p.plain) + picked] * inside
        if len(p.raw) != len(p.axes):
            value = np.einsum(_spec(p.raw) + "->" + _spec(p.axes, p.raw), value)
        return value

    def _holds(self, test: Compare, axes) -> np.ndarray:
        """Where ``test`` holds, over ``axes``; on the real parts, so a complex step does
        not move it."""
        a, b = (_arrange(self.execute(side), side.axes, axes, self.world.sizes)
                for side in (test.a, test.b))
        return COMPARE[test.op](np.real(a), np.real(b))

    def execute(self, p: Plan) -> np.ndarray:
        """The value of the plan ``p``, its axes in the order of ``p.axes``."""
        if isinstance(p, Number):
            return np.array(float(p.value))
        if isinstance(p, DimValue):
            return np.array(float(self.world.sizes[p.dim]))
        if isinstance(p, ConstantValue):
            return np.array(CONSTANTS[p.name].value)
        if isinstance(p, Read):
            value = self._read(p.name, p.grad)
            if p.diagonal:
                value = np.einsum(_spec(p.indices) + "->" + _spec(p.axes, p.indices), value)
            return value
        if isinstance(p, Eye):
            return np.eye(self.world.sizes[p.dim])
        if isinstance(p, Arange):
            return self._arange(p)
        if isinstance(p, MatrixValue):
            return self._matrix_value(p)
        if isinstance(p, ArgIndex):  # the first extreme, on the real parts
            pick = np.argmax if p.kind == "max" else np.argmin
            return pick(np.real(self.execute(p.body)), axis=p.body.axes.index(p.over))
        if isinstance(p, Reduce):  # never planned for the check (plan(fast=False))
            raise TypeError("the check evaluates max_d as written, not as a reduction")
        if isinstance(p, Gather):
            return self._gather(p)
        if isinstance(p, Call):
            value = self.execute(p.arg)
            known = builtin(p.fn)
            if known is not None and not p.order:
                return known.value(value)
            return self.world.functions[p.fn][p.order](value)
        if isinstance(p, Raise):
            return self.execute(p.base) ** self.execute(p.exponent)
        if isinstance(p, Compare):
            return self._holds(p, p.axes).astype(float)
        if isinstance(p, Select):
            then, otherwise = (_arrange(self.execute(x), x.axes, p.axes, self.world.sizes)
                               for x in (p.then, p.otherwise))
            return np.where(self._holds(p.test, p.axes), then, otherwise)
        if isinstance(p, Total):
            return sum(_arrange(self.execute(t), t.axes, p.axes, self.world.sizes)
                       for t in p.terms)
        if isinstance(p, Product):
            limits.tick()
            letters = tuple(dict.fromkeys(i for f in p.factors for i in f.axes))
            spec = ",".join(_spec(f.axes, letters) for f in p.factors)
            work = math.prod(self.world.sizes[i.dim] for i in letters)
            value = np.einsum(f"{spec}->{_spec(p.axes, letters)}",
                              *(self.execute(f) for f in p.factors),
                              optimize=len(p.factors) > 2 and work > EINSUM_OPTIMIZE_WORK)
            for dim in p.unused:  # a sum over an index the body does not use
                value = value * self.world.sizes[dim]
            return value
        raise TypeError(f"cannot evaluate {type(p).__name__}")


COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "!=": np.not_equal}


def _spec(indices, letters=None) -> str:
    """einsum letters of ``indices``, numbered by position in ``letters`` (default: the
    indices themselves, without repeats)."""
    order = tuple(dict.fromkeys(indices if letters is None else letters))
    return "".join(chr(ord("a") + order.index(i)) for i in indices)


def _arrange(value, idx, order, sizes) -> np.ndarray:
    present = [i for i in order if i in idx]
    value = np.transpose(value, [idx.index(i) for i in present]) if idx else value
    shape = tuple(sizes[i.dim] if i in idx else 1 for i in order)
    value = np.reshape(value, shape)
    return np.broadcast_to(value, tuple(sizes[i.dim] for i in order))


# --- the check -----------------------------------------------------------------------------------

def compile_lambda(fn: NumpyFunction):
    """Compile the generated lambda.  Its source comes from the code generator only: names
    in it are validated identifiers from the parsed file, never raw input text."""
    code = compile(fn.source, "<indexcalc lambda>", "eval")
    return eval(code, {"np": np})  # noqa: S307 - generated code, see above


def lambda_arguments(fn: NumpyFunction, world: World) -> list:
    args = []
    for code in fn.args:
        name = naming.user_name(code)
        if name in world.values:
            args.append(world.values[name])
        elif name in world.upstream:
            args.append(world.upstream[name])
        elif naming.split_derivative_function(name)[0] in world.functions:
            fn, order = naming.split_derivative_function(name)
            args.append(world.functions[fn][order])
        elif name in world.sizes:
            args.append(world.sizes[name])
        else:
            raise KeyError(name)
    return args


class _FloatEvents:
    """The floating-point events (``overflow``, ``underflow``, ...) NumPy meets while active."""

    def __init__(self):
        self.seen: set[str] = set()

    def _record(self, kind: str, flag: int) -> None:
        self.seen.add(kind)

    def __enter__(self) -> _FloatEvents:
        self._state = np.errstate(all="call", call=self._record)
        self._state.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._state.__exit__(*exc)


def check(goal: Goal, fn: NumpyFunction, problem: Problem, seed: int = 0,
          displayed: MatrixForm | None = None) -> CheckResult:
    """Compare ``fn`` and, when given, the ``displayed`` matrix form (``where`` + ``text``,
    evaluated as printed) with numeric derivatives of the forward definitions; either
    disagreeing fails.  Values that cannot be compared make the result not checked."""
    world = make_world(problem, seed)
    with _FloatEvents() as events:
        return _Check(goal, world, events).run(fn, displayed)


@dataclass
class _Check:
    goal: Goal
    world: World
    events: _FloatEvents

    def result(self, passed: bool, error: float, detail: str, checked: bool = True,
               method: str = "") -> CheckResult:
        detail = "; ".join(part for part in (detail, self.world.note) if part)
        return CheckResult(passed, error, detail, checked=checked, method=method)

    def not_checked(self, reason: str) -> CheckResult:
        return self.result(False, math.nan, reason, checked=False)

    def run(self, fn: NumpyFunction, displayed: MatrixForm | None) -> CheckResult:
        goal, world = self.goal, self.world
        candidates = self._evaluate(fn, displayed, world)
        if isinstance(candidates, CheckResult):
            return candidates
        derived = candidates[0][1]
        x0 = np.array(_wrt_value(world, goal.wrt), dtype=float)
        f0 = np.asarray(_forward(world, goal.of, goal.wrt, x0), dtype=float)
        if not np.all(np.isfinite(f0)):
            return self.not_checked(f"{goal.of} is not finite at the check's random inputs")
        hessian = goal.kind == "hessian"
        shape = (() if hessian else f0.shape) + x0.shape + (x0.shape if hessian else ())
        for what, value in candidates:
            if value.shape != shape:
                return self.result(False, math.inf,
                                   f"{what} has shape {value.shape} where {shape} was expected")
        rng = np.random.default_rng(world.seed + 1)
        if hessian:
            positions = _sample(x0.shape + x0.shape, MAX_HESSIAN_ENTRIES, rng)
        else:
            positions = _sample(x0.shape, MAX_FD_ENTRIES, rng)
        got = [_at(value, positions, hessian) for _, value in candidates]
        if derived.size == 0:
            return self.not_checked("there is no entry to compare (a dim of size 0)")

        reference = _Reference(goal, world, x0, positions, float(np.max(np.abs(f0))))
        attempts = reference.complex_step() if COMPLEX_STEP else None
        if attempts is None:
            attempts = reference.central_differences()
        best, attempts, undecided = _best(attempts, got, [0.0] * len(got))
        if best is not None and best.worst >= TOLERANCE:
            # Either side may be a difference of nearly equal terms and carry their rounding
            # error: the reference's is measured under a second h, the result's as its
            # change when the inputs move by 1e-13 of themselves; both are allowed for.
            noise = self._result_noise(fn, displayed, positions, hessian, got)
            best, _, undecided = _best(reference.measured(attempts), got, noise)
        if best is None:
            return self.not_checked(f"the derivatives of {goal.of} are not finite at the "
                                    "check's random inputs")
        for (what, _), g in zip(candidates, got):
            if not np.all(np.isfinite(g)):
                return self.result(False, math.inf, f"{what} gives values that are not "
                                                    "finite where the derivatives are")
        attempt, expected = best.attempt, best.attempt.values
        if not math.isfinite(best.worst) or (best.worst >= TOLERANCE and undecided):
            return self.not_checked(
                f"the rounding error of numeric derivatives of {goal.of} is too large beside "
                "the derivatives to judge them (a term much larger than the rest)")
        nothing = not np.any(expected) and not any(np.any(g) for g in got)
        if nothing and "underflow" in self.events.seen:
            return self.not_checked("every compared value underflowed to zero")
        compared = ("1 entry" if expected.size == 1 else f"{expected.size} entries") \
            if expected.size == derived.size else \
            f"{expected.size} of {derived.size} entries, sampled"
        how = attempt.method if attempt.step is None else f"{attempt.method}, step {attempt.step:g}"
        failing = [what for (what, _), j in zip(candidates, best.judged) if not j < TOLERANCE]
        detail = f"{compared}, {how}"
        if len(candidates) > 1:
            detail += ("; NumPy function and displayed matrix form" if not failing else
                       f"; {' and '.join(failing)} disagreed")
        if best.worst < TOLERANCE <= max(best.errors):
            detail += "; the difference is within the rounding of the terms compared"
        return self.result(best.worst < TOLERANCE, max(best.errors), detail,
                           method=attempt.method)

    def _evaluate(self, fn: NumpyFunction, displayed: MatrixForm | None,
                  world: World) -> list[tuple[str, np.ndarray]] | CheckResult:
        """The values of the NumPy function and of the displayed form in ``world``, or the
        failed check of whichever raised."""
        try:
            derived = np.asarray(compile_lambda(fn)(*lambda_arguments(fn, world)), dtype=float)
        except MemoryError:
            raise
        except Exception as exc:  # the generated code failed to run: a failed check, shown
            return self.result(False, math.inf,
                               f"the NumPy function raised {type(exc).__name__}: {exc}")
        candidates = [("the NumPy function", derived)]
        if displayed is not None:
            try:
                candidates.append(("the matrix form as displayed",
                                   evaluate_displayed(displayed, world)))
            except MemoryError:
                raise
            except Exception as exc:  # a printer bug in what is shown: a failed check, shown
                return self.result(False, math.inf, "the matrix form as displayed raised "
                                                    f"{type(exc).__name__}: {exc}")
        return candidates

    def _result_noise(self, fn, displayed, positions, hessian: bool,
                      got: list[np.ndarray]) -> list[float]:
        """Per candidate, the largest change of its compared values when every input moves
        by about 1e-13 of itself: the smooth part moves by as little, a residue of
        cancelling terms by as much as itself."""
        rng = np.random.default_rng(self.world.seed + 2)
        moved = replace(self.world, memo={},
                        values={k: v * (1 + RESULT_NUDGE * rng.uniform(-1, 1, np.shape(v)))
                                for k, v in self.world.values.items()},
                        upstream={k: v * (1 + RESULT_NUDGE * rng.uniform(-1, 1, np.shape(v)))
                                  for k, v in self.world.upstream.items()})
        again = self._evaluate(fn, displayed, moved)
        if isinstance(again, CheckResult):
            return [0.0] * len(got)
        moving = [float(np.max(np.abs(_at(value, positions, hessian) - g), initial=0.0))
                  for (_, value), g in zip(again, got)]
        # The rounding of a difference of terms that float64 makes equal (1 - tanh(u)^2 at
        # u = 20, where tanh(u) rounds to 1) does not move: it is eps times the size of the
        # terms, the value of the same code with every minus turned into a plus.
        absolute = self._evaluate(_unsigned(fn), _unsigned(displayed), self.world)
        if isinstance(absolute, CheckResult):
            return moving
        eps = np.finfo(float).eps
        with np.errstate(all="ignore"):
            sizes = [eps * _finite_max(np.abs(_at(value, positions, hessian)))
                     for _, value in absolute]
        return [max(m, z) if math.isfinite(z) else m for m, z in zip(moving, sizes)]


class _Unsigned(ast.NodeTransformer):
    """Every subtraction an addition and every negation a plus, outside function arguments:
    the code then computes the sizes of the terms it subtracts (for rounding, not for a
    value); a function's argument is left as it is (sigmoid(-u) stays small)."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id == "np" and func.attr in _FUNCTIONS_OF_VALUES:
            return node  # exp(-u) is the size of its own value
        self.generic_visit(node)  # np.asarray(a - b), np.einsum(..., a - b), (a - b).sum()
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Sub):
            node.op = ast.Add()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.operand, ast.Constant):
            return node  # a number: -1.0, and an axis or index (axis=-1, [-1]) stays
        self.generic_visit(node)
        if isinstance(node.op, ast.USub):
            node.op = ast.UAdd()
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        node.value = self.visit(node.value)  # the index ((...)[-1], [:, None]) stays
        return node

    def visit_keyword(self, node: ast.keyword) -> ast.AST:
        return node  # axis=-1, dtype=..., optimize=True


#: NumPy's spellings of the registry's functions (``np.exp`` ...): their arguments are
#: left signed by ``_Unsigned``.
_FUNCTIONS_OF_VALUES = frozenset(
    name for entry in FUNCTIONS.values() for name in re.findall(r"np\.(\w+)\(", entry.numpy))


def _unsigned_text(text: str) -> str:
    return ast.unparse(_Unsigned().visit(ast.parse(text, mode="eval")))


def _unsigned(code):
    """The NumPy function or displayed form with ``_Unsigned`` applied (None stays None)."""
    if code is None:
        return None
    if isinstance(code, NumpyFunction):
        return NumpyFunction(_unsigned_text(code.source), code.args)
    return replace(code, text=_unsigned_text(code.text),
                   where=tuple((name, _unsigned_text(text)) for name, text in code.where))


def _at(value: np.ndarray, positions: list, hessian: bool) -> np.ndarray:
    """The entries of a result at the check's sampled positions (of the wrt's shape, or
    of wrt x wrt for a Hessian)."""
    if hessian:
        return np.array([value[p] for p in positions])
    return np.array([value[(Ellipsis,) + p] for p in positions])


def _best(attempts: Iterable[_Attempt], got: list[np.ndarray], noise: list[float]):
    """The verdict of the attempt that agrees best (the first that agrees): where a
    reference takes a step, a wrong result agrees at none of them.  Also the attempts
    tried, and whether one that cannot resolve the values agreed with them within its
    rounding (then a disagreement elsewhere does not prove the result wrong)."""
    best, seen, verdicts = None, [], []
    for attempt in attempts:
        seen.append(attempt)
        if not np.all(np.isfinite(attempt.values)):
            continue
        verdict = _Verdict.of(attempt, got, noise)
        verdicts.append(verdict)
        if best is None or verdict.worst < best.worst:
            best = verdict
        if verdict.worst < TOLERANCE:
            break
    # Two attempts that resolve the values and agree with each other confirm the
    # reference: a disagreement with it is then a wrong result, not truncation error.
    resolving = [v.attempt.values for v in verdicts if v.resolves]
    confirmed = any(_agree(a, b) for a, b in itertools.combinations(resolving, 2))
    undecided = not confirmed and any(v.consistent for v in verdicts)
    return best, seen, undecided


def _agree(a: np.ndarray, b: np.ndarray) -> bool:
    largest = max(float(np.max(np.abs(a), initial=0.0)), SMALLEST_SCALE)
    return float(np.max(np.abs(a - b), initial=0.0)) <= TOLERANCE * largest


class _Attempt(NamedTuple):
    """Numeric derivatives at the sampled positions by one method (and step): ``allowance``
    is the absolute error the method itself may carry (its rounding, 0 when unknown)."""

    method: str
    step: float | None
    values: np.ndarray
    allowance: float


@dataclass
class _Verdict:
    """The compared values against one attempt.

    A difference is relative to the largest derivative compared (so a gradient of size 1e-7
    is judged as strictly as one of size 1); against the complex step, which is exact to
    rounding, also to the entry itself, so that an entry a thousand times smaller than the
    largest is judged on its own digits (``SMALL_ENTRY``).  Each side's rounding (the
    attempt's allowance, the result's measured noise) is taken off first.  An attempt whose
    own rounding is above TOLERANCE of its values cannot judge them (``inf``), unless both
    sides are zero to within their rounding (a Hessian that is exactly 0)."""

    attempt: _Attempt
    errors: list[float]  # per candidate: the largest relative difference
    judged: list[float]  # per candidate: the same, less the allowances
    noise: float  # the attempt's allowance relative to the largest derivative
    #: The attempt's own rounding is within the tolerance of its values.
    resolves: bool = True
    #: The attempt cannot resolve the values, but every candidate agrees with it within
    #: its rounding.
    consistent: bool = False

    @property
    def worst(self) -> float:
        return max(self.judged)

    @classmethod
    def of(cls, attempt: _Attempt, got: list[np.ndarray], noise: list[float]) -> _Verdict:
        magnitude = np.abs(attempt.values)
        largest = max(float(np.max(magnitude, initial=0.0)), SMALLEST_SCALE)
        scale = np.full(magnitude.shape, largest)
        if attempt.method == "complex step":
            scale = np.maximum(magnitude + SMALL_ENTRY * largest, SMALLEST_SCALE)
        resolves = attempt.allowance <= TOLERANCE * largest
        errors, judged, consistent = [], [], not resolves
        for g, g_noise in zip(got, noise):
            difference = np.abs(g - attempt.values)
            allowance = attempt.allowance + NOISE_FACTOR * g_noise
            errors.append(_finite_max(difference / scale))
            consistent = consistent and \
                _finite_max(difference - allowance - TOLERANCE * scale) <= 0
            if resolves:
                judged.append(_finite_max((difference - allowance) / scale))
            elif largest <= attempt.allowance and \
                    float(np.max(np.abs(g), initial=0.0)) <= attempt.allowance + allowance:
                judged.append(0.0)  # both sides are zero to within their rounding
            else:
                judged.append(math.inf)
        return cls(attempt, errors, judged, attempt.allowance / largest, resolves, consistent)


def _finite_max(values: np.ndarray) -> float:
    value = float(np.max(values, initial=-math.inf))
    return value if not math.isnan(value) else math.inf


@dataclass
class _Reference:
    """Numeric derivatives of the forward pass at ``x0``, at the sampled ``positions``.

    Each method returns attempts ``(method, step, values, allowance)``: ``allowance`` is
    the absolute rounding error the method itself may carry (0 for the complex step)."""

    goal: Goal
    world: World
    x0: np.ndarray
    positions: list
    f_scale: float

    def forward(self, x: np.ndarray) -> np.ndarray:
        return _forward(self.world, self.goal.of, self.goal.wrt, x)

    def complex_step(self) -> Iterator[_Attempt] | None:
        """None when the forward pass has no complex value (central differences then).  A
        Hessian's steps are computed as they are tried: most results agree at the first."""
        try:
            if self.goal.kind != "hessian":
                return iter([_Attempt("complex step", None, self._complex_gradient(COMPLEX_H),
                                      0.0)])
            first = self._hessian_of_complex_steps(HESSIAN_STEPS[0])
        except (TypeError, ValueError):  # a function without a complex value
            return None
        rest = (self._hessian_of_complex_steps(step) for step in HESSIAN_STEPS[1:])
        extrapolated = (self._richardson(step) for step in RICHARDSON_STEPS)
        return itertools.chain([first], rest, extrapolated)

    def _richardson(self, step: float, h: float = COMPLEX_H) -> _Attempt:
        """(4 D(step/2) - D(step)) / 3 of the Hessian differences D: the step^2 term of
        their error cancels, so a large step (small rounding beside a large gradient) is
        accurate too."""
        coarse = self._hessian_of_complex_steps(step, h)
        fine = self._hessian_of_complex_steps(step / 2, h)
        return _Attempt(RICHARDSON, step, (4 * fine.values - coarse.values) / 3,
                        (4 * fine.allowance + coarse.allowance) / 3)

    def complex_step_noise(self, values: np.ndarray) -> float:
        """The rounding noise of complex-step ``values``: their largest change under a second
        h.  The exact first-order term scales with h; a cancellation's rounding residue does
        not, so it shows as a difference."""
        return float(np.max(np.abs(self._complex_gradient(COMPLEX_H_OTHER) - values),
                            initial=0.0))

    def _complex_gradient(self, h: float) -> np.ndarray:
        x0, values = self.x0.astype(complex), []
        for p in self.positions:
            x = x0.copy()
            x[p] += 1j * h
            values.append(np.imag(self.forward(x)) / h)
        return np.array(values)

    def measured(self, attempts: list[_Attempt]) -> list[_Attempt]:
        """``attempts`` with the rounding noise of complex steps measured and allowed for:
        where the exact value is a difference of nearly equal terms (sin^2 + cos^2) the
        complex step carries their rounding, and it shows as a change under a second h."""
        out = []
        for attempt in attempts:
            if attempt.method == "complex step":
                noise = self.complex_step_noise(attempt.values)
                attempt = attempt._replace(allowance=attempt.allowance + NOISE_FACTOR * noise)
            elif attempt.method in (DIFFERENCES_OF_COMPLEX_STEPS, RICHARDSON):
                build = self._richardson if attempt.method == RICHARDSON else \
                    self._hessian_of_complex_steps
                again = build(attempt.step, COMPLEX_H_OTHER)
                noise = float(np.max(np.abs(again.values - attempt.values), initial=0.0))
                attempt = attempt._replace(allowance=attempt.allowance + NOISE_FACTOR * noise)
            out.append(attempt)
        return out

    def _hessian_of_complex_steps(self, step: float, h: float = COMPLEX_H) -> _Attempt:
        """d2f / dp dq as the central difference over q of the complex step along p.  The
        difference of two first derivatives, each exact to rounding, loses about
        eps |df/dp| / step: that is the allowance."""
        x0, n = self.x0.astype(complex), self.x0.ndim
        values, slopes = [], []
        for pos in self.positions:
            p, q = pos[:n], pos[n:]
            plus, minus = x0.copy(), x0.copy()
            plus[p] += 1j * h
            minus[p] += 1j * h
            plus[q] += step
            minus[q] -= step
            up, down = np.imag(self.forward(plus)) / h, np.imag(self.forward(minus)) / h
            values.append(float(up - down) / (2 * step))
            slopes.append(max(abs(float(up)), abs(float(down))))
        eps = np.finfo(float).eps
        allowance = HESSIAN_ROUNDING * eps * max(slopes, default=0.0) / step
        return _Attempt(DIFFERENCES_OF_COMPLEX_STEPS, step, np.array(values), allowance)

    def central_differences(self) -> list[_Attempt]:
        """Real central differences; each step's allowance is the rounding error of the
        differences of ``f`` itself (about eps |f| / step, or eps |f| / step^2)."""
        eps = np.finfo(float).eps
        attempts = []
        hessian = self.goal.kind == "hessian"
        for step in (HESSIAN_STEPS[:3] if hessian else STEPS):
            if hessian:
                n = self.x0.ndim
                values = [self._hessian_entry(pos[:n], pos[n:], step) for pos in self.positions]
                allowance = 16 * eps * self.f_scale / step**2
            else:
                values = [self._partial(p, step) for p in self.positions]
                allowance = 16 * eps * self.f_scale / step
            attempts.append(_Attempt("central differences", step, np.array(values), allowance))
        return attempts

    def _partial(self, pos, step: float) -> np.ndarray:
        plus, minus = self.x0.copy(), self.x0.copy()
        plus[pos] += step
        minus[pos] -= step
        return (self.forward(plus) - self.forward(minus)) / (2 * step)

    def _hessian_entry(self, p, q, h: float) -> float:
        values = []
        for sp, sq in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            x = self.x0.copy()
            x[p] += sp * h
            x[q] += sq * h
            values.append(float(self.forward(x)))
        return (values[0] - values[1] - values[2] + values[3]) / (4 * h * h)


def evaluate_displayed(form: MatrixForm, world: World) -> np.ndarray:
    """``form.text`` evaluated as shown: in a namespace of ``np``, the inputs, upstream
    gradients, dims (ints), declared functions and the ``where`` definitions in order.
    The text comes from the NumPy printer only (names in it are validated identifiers)."""
    namespace = _DisplayNamespace(world)
    for name, text in form.where:
        namespace[name] = eval(compile(text, f"<matrix.where {name}>", "eval"),  # noqa: S307
                               {"np": np, "__builtins__": {}}, namespace)
    value = eval(compile(form.text, "<matrix.text>", "eval"),  # noqa: S307
                 {"np": np, "__builtins__": {}}, namespace)
    value = np.asarray(value, dtype=float)
    # a Jacobian displayed in denominator layout is the transpose of the entries d of/d wrt
    return value.T if form.layout == "denominator" else value


class _DisplayNamespace(dict):
    """Names of the displayed form; a declared function's derivatives of any order
    (``h_prime3``) are looked up as they are used."""

    def __init__(self, world: World):
        super().__init__()
        for names in (world.values, world.upstream, world.sizes):
            self.update({naming.code_name(name): value for name, value in names.items()})
        self.world = world

    def __missing__(self, key: str):
        fn, order = naming.split_derivative_function(naming.user_name(key))
        if fn in self.world.functions:
            return self.world.functions[fn][order]
        raise KeyError(key)


def _sample(shape: tuple[int, ...], limit: int, rng) -> list[tuple[int, ...]]:
    """Every position of ``shape``, or ``limit`` of them drawn at random when there are more."""
    total = int(np.prod(shape, dtype=np.int64)) if shape else 1
    flat = np.arange(total) if total <= limit else np.sort(rng.choice(total, limit, replace=False))
    if not shape:
        return [()]
    return [tuple(int(k) for k in np.unravel_index(i, shape)) for i in flat]


def _wrt_value(world: World, name: str) -> np.ndarray:
    if name in world.values:
        return world.values[name]
    return Evaluator(world).tensor(name)


def _forward(world: World, of: str, wrt: str, x: np.ndarray) -> np.ndarray:
    """``of`` with ``wrt`` set to ``x`` (real or complex: the result follows ``x``)."""
    ev = Evaluator(world, {wrt: x}, known=_unaffected(world, wrt))
    return np.asarray(ev.tensor(of))


def _unaffected(world: World, wrt: str) -> dict[str, np.ndarray]:
    """Defined tensors that do not depend on ``wrt``: evaluated once, not per perturbation."""
    key = ("unaffected", wrt)
    if key not in world.memo:
        base = Evaluator(world)
        problem = world.problem
        world.memo[key] = {name: base.tensor(name) for name in problem.definitions
                           if name != wrt and wrt not in problem.reaches(name)}
    return world.memo[key]
