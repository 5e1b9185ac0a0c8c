"""The numeric check: everything a result shows, against central finite differences.

Both the generated NumPy function and the matrix form as displayed (``matrix.where`` and
``matrix.text``, evaluated as printed) are compared with central differences of the forward
definitions; either disagreeing fails the check.  The forward definitions are evaluated by
executing the contraction plans of ``emit.plan`` with NumPy directly, never by running
printed code, on random float64 inputs of small distinct sizes.
An opaque ``L = loss(Y)`` is replaced by the linear loss ``sum(G * Y)`` with a random ``G``,
whose gradient with respect to ``Y`` is ``G``: the upstream gradient handed to the lambda.
Inputs under a function whose registry domain is positive (``log``, ``sqrt``), in a
denominator or under a fractional power are drawn positive; an assumption of the form
``sum_c T[s,c] = v`` is made true by normalising ``T``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import naming
from ..functions import POSITIVE, REAL, builtin
from ..emit.plan import (
    Call, DimValue, Eye, Number, Plan, Product, Raise, Read, Total, plan as make_plan,
)
from ..derivation import CheckResult, MatrixForm, NumpyFunction
from ..problem import Goal, Problem
from ..terms import (
    Func, Index, Num, Pow, Sum, Tensor, Term, base_exp,
)

#: Sizes given to dims without ``=n``: small and distinct, so a transposition shows.
DEFAULT_SIZES = (3, 4, 5, 2, 6, 7, 8, 9, 10, 11)
#: Central-difference steps, tried in this order until one agrees.
STEPS = (1e-6, 1e-5, 1e-7, 1e-4)
TOLERANCE = 1e-6
HESSIAN_STEPS = (1e-4, 1e-3, 1e-5)
HESSIAN_TOLERANCE = 1e-4
#: Entries compared at most; past this many, a random sample of them (sizes from ``dims``
#: can be large, and each entry costs two or four evaluations of the forward definitions).
MAX_FD_ENTRIES = 100
MAX_HESSIAN_ENTRIES = 100


class StandIn:
    """The stand-in for the k-th unspecified function: h(x) = sin(a x) + x^2 / 2 with
    a = 1 + k/4, and its derivatives of every order (``stand_in[n]`` is the n-th)."""

    def __init__(self, k: int):
        self.a = 1.0 + 0.25 * k

    def __getitem__(self, order: int):
        a = self.a
        # d^n sin(a x) = a^n sin(a x + n pi / 2); d^n x^2/2 is x, 1, then 0.
        poly = {0: lambda x: 0.5 * x**2, 1: lambda x: x, 2: lambda x: 1.0}.get(order, lambda x: 0.0)
        return lambda x: a**order * np.sin(a * x + order * np.pi / 2) + poly(x)


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

    def shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(self.sizes[d] for d in self.problem.tensor_dims(tensor))


def make_world(problem: Problem, seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    sizes = {}
    free_sizes = iter(s for s in DEFAULT_SIZES if s not in problem.dims.values())
    for dim, size in problem.dims.items():
        sizes[dim] = size if size is not None else next(free_sizes)
    positive = _positive_inputs(problem)
    values = {}
    for name, decl in problem.inputs.items():
        shape = tuple(sizes[d] for d in decl.dims)
        low, high = (0.5, 1.5) if name in positive else (-1.0, 1.0)
        values[name] = rng.uniform(low, high, size=shape)
    for assumption in problem.assumptions:
        _enforce(assumption, values, rng)
    upstream = {}
    for d in problem.definitions.values():
        for arg in d.loss_args:
            shape = tuple(sizes[x] for x in problem.tensor_dims(arg))
            upstream[naming.gradient(d.name, arg)] = rng.uniform(-1.0, 1.0, size=shape)
    functions = {name: user_function(k) for k, name in enumerate(problem.functions)}
    return World(problem, sizes, values, upstream, functions)


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
    lhs, rhs = assumption.lhs, assumption.rhs
    if isinstance(lhs, Sum) and isinstance(lhs.body, Tensor) and isinstance(rhs, Num):
        t = lhs.body
        axes = tuple(k for k, i in enumerate(t.indices) if i in lhs.indices)
        x = rng.uniform(0.0, 1.0, size=values[t.name].shape)
        values[t.name] = x / x.sum(axis=axes, keepdims=True) * float(rhs.value)


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

    def array(self, term: Term, order: tuple[Index, ...]) -> np.ndarray:
        value, idx = self.evaluate(term)
        return _arrange(value, idx, order, self.world.sizes)

    def evaluate(self, term: Term) -> tuple[np.ndarray, tuple[Index, ...]]:
        plan = make_plan(term)
        return self.execute(plan), plan.axes

    def execute(self, p: Plan) -> np.ndarray:
        """The value of the plan ``p``, its axes in the order of ``p.axes``."""
        if isinstance(p, Number):
            return np.array(float(p.value))
        if isinstance(p, DimValue):
            return np.array(float(self.world.sizes[p.dim]))
        if isinstance(p, Read):
            value = self.world.upstream[p.name] if p.grad else self.tensor(p.name)
            if p.diagonal:
                value = np.einsum(_spec(p.indices) + "->" + _spec(p.axes, p.indices), value)
            return value
        if isinstance(p, Eye):
            return np.eye(self.world.sizes[p.dim])
        if isinstance(p, Call):
            value = self.execute(p.arg)
            known = builtin(p.fn)
            if known is not None and not p.order:
                return known.numeric(value)
            return self.world.functions[p.fn][p.order](value)
        if isinstance(p, Raise):
            return self.execute(p.base) ** self.execute(p.exponent)
        if isinstance(p, Total):
            return sum(_arrange(self.execute(t), t.axes, p.axes, self.world.sizes)
                       for t in p.terms)
        if isinstance(p, Product):
            letters = tuple(dict.fromkeys(i for f in p.factors for i in f.axes))
            spec = ",".join(_spec(f.axes, letters) for f in p.factors)
            value = np.einsum(f"{spec}->{_spec(p.axes, letters)}",
                              *(self.execute(f) for f in p.factors))
            for dim in p.unused:  # a sum over an index the body does not use
                value = value * self.world.sizes[dim]
            return value
        raise TypeError(f"cannot evaluate {type(p).__name__}")


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
    for name in fn.args:
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


def check(goal: Goal, fn: NumpyFunction, problem: Problem, seed: int = 0,
          displayed: MatrixForm | None = None) -> CheckResult:
    """Compare ``fn`` and, when given, the ``displayed`` matrix form (``where`` + ``text``,
    evaluated as printed) with central finite differences; either disagreeing fails."""
    world = make_world(problem, seed)
    try:
        derived = np.asarray(compile_lambda(fn)(*lambda_arguments(fn, world)), dtype=float)
    except Exception as exc:  # the generated code failed to run: a failed check, shown
        return CheckResult(False, math.inf, f"the NumPy function raised {type(exc).__name__}: {exc}")
    candidates = [("the NumPy function", derived)]
    if displayed is not None:
        try:
            candidates.append(("the matrix form as displayed", evaluate_displayed(displayed, world)))
        except Exception as exc:  # a printer bug in what is shown: a failed check, shown
            return CheckResult(False, math.inf, "the matrix form as displayed raised "
                                                f"{type(exc).__name__}: {exc}")
    x0 = np.array(_wrt_value(world, goal.wrt), dtype=float)
    of_shape = () if goal.kind == "hessian" else np.shape(_forward(world, goal.of, goal.wrt, x0))
    shape = of_shape + x0.shape + (x0.shape if goal.kind == "hessian" else ())
    for what, value in candidates:
        if value.shape != shape:
            return CheckResult(False, math.inf,
                               f"{what} has shape {value.shape} where {shape} was expected")
    rng = np.random.default_rng(seed + 1)
    hessian = goal.kind == "hessian"
    tolerance = HESSIAN_TOLERANCE if hessian else TOLERANCE
    if hessian:
        positions = _sample(x0.shape + x0.shape, MAX_HESSIAN_ENTRIES, rng)
        got = [np.array([value[p] for p in positions]) for _, value in candidates]
    else:
        positions = _sample(x0.shape, MAX_FD_ENTRIES, rng)
        got = [np.array([value[(Ellipsis,) + p] for p in positions]) for _, value in candidates]
    # Finite differences have a truncation error that grows with the step and a rounding
    # error that shrinks with it; where the first step does not agree, a few others are
    # tried and the best is reported.  A wrong result agrees at none of them.
    best = (math.inf, None, 0, [])
    for step in (HESSIAN_STEPS if hessian else STEPS):
        if hessian:
            expected = np.array([_hessian_entry(goal, world, x0, p[:x0.ndim], p[x0.ndim:], step)
                                 for p in positions])
        else:
            expected = np.array([_partial_fd(goal, world, x0, p, step) for p in positions])
        errors = [_relative_error(g, expected) for g in got]
        if max(errors) < best[0]:
            best = (max(errors), step, expected.size, errors)
        if max(errors) < tolerance:
            break
    error, step, size, errors = best
    if not np.isfinite(error):
        return CheckResult(False, math.inf, "non-finite values")
    compared = f"{size} entries" if size == derived.size else \
        f"{size} of {derived.size} entries, sampled"
    failing = [what for (what, _), e in zip(candidates, errors) if not e < tolerance]
    detail = f"{compared}, finite-difference step {step:g}"
    if len(candidates) > 1:
        detail += ("; NumPy function and displayed matrix form" if not failing else
                   f"; {' and '.join(failing)} disagreed")
    return CheckResult(error < tolerance, error, detail)


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
    return np.asarray(value, dtype=float)


class _DisplayNamespace(dict):
    """Names of the displayed form; a declared function's derivatives of any order
    (``h_prime3``) are looked up as they are used."""

    def __init__(self, world: World):
        super().__init__()
        self.update(world.values)
        self.update(world.upstream)
        self.update(world.sizes)
        self.world = world

    def __missing__(self, key: str):
        fn, order = naming.split_derivative_function(key)
        if fn in self.world.functions:
            return self.world.functions[fn][order]
        raise KeyError(key)


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest difference relative to the largest expected entry, but never to less than 1:
    finite differences carry an absolute rounding error, so a gradient that is zero (or
    nearly) is compared absolutely."""
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    error = float(np.max(np.abs(got - expected), initial=0.0)) / scale
    return error if np.isfinite(error) else math.inf


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
    ev = Evaluator(world, {wrt: x}, known=_unaffected(world, wrt))
    return np.asarray(ev.tensor(of), dtype=float)


def _unaffected(world: World, wrt: str) -> dict[str, np.ndarray]:
    """Defined tensors that do not depend on ``wrt``: evaluated once, not per perturbation."""
    key = ("unaffected", wrt)
    if key not in world.memo:
        base = Evaluator(world)
        problem = world.problem
        world.memo[key] = {name: base.tensor(name) for name in problem.definitions
                           if name != wrt and wrt not in problem.reaches(name)}
    return world.memo[key]


def _partial_fd(goal: Goal, world: World, x0: np.ndarray, pos, step: float) -> np.ndarray:
    """d of / d wrt[pos] by central differences (an array of the shape of ``of``)."""
    plus, minus = x0.copy(), x0.copy()
    plus[pos] += step
    minus[pos] -= step
    return (_forward(world, goal.of, goal.wrt, plus) -
            _forward(world, goal.of, goal.wrt, minus)) / (2 * step)


def _hessian_entry(goal: Goal, world: World, x0: np.ndarray, p, q, h: float) -> float:
    values = []
    for sp, sq in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        x = x0.copy()
        x[p] += sp * h
        x[q] += sq * h
        values.append(float(_forward(world, goal.of, goal.wrt, x)))
    return (values[0] - values[1] - values[2] + values[3]) / (4 * h * h)
