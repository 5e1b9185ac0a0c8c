"""``--check-with torch|jax``: each derived result against the framework's own autograd.

The forward pass runs as the module ``--emit`` prints (``emit.module``), on the numeric
check's inputs (``check.numeric.make_world``), and the framework differentiates it: a gradient
by reverse mode (a vector-Jacobian product with the upstream gradients of an unspecified
loss), a Jacobian by ``jacobian``/``jacrev``, a Hessian by ``hessian``.  The derived NumPy
function, evaluated on the same inputs, must agree to ``TOLERANCE`` relative to the largest
entry.  Both sides are exact up to rounding, so the tolerance is tight.
"""
from __future__ import annotations

import contextlib
import importlib
import math
from dataclasses import dataclass, replace

import numpy as np

from .. import naming
from ..derivation import NumpyFunction
from ..problem import Goal, Problem

FRAMEWORKS = ("torch", "jax")
TOLERANCE = 1e-8


@dataclass(frozen=True)
class FrameworkCheck:
    framework: str
    #: "passed", "failed" or "not checked" (the framework is absent, or the forward pass
    #: could not be differentiated: ``detail`` says why).
    status: str
    max_rel_error: float = math.nan
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def name_of(self) -> str:
        """The framework as people write it: "PyTorch", "JAX"."""
        return {"torch": "PyTorch", "jax": "JAX"}.get(self.framework, self.framework)


def available(framework: str) -> bool:
    try:
        importlib.import_module(framework)
    except ImportError:
        return False
    return True


def check_with(framework: str, goal: Goal, fn: NumpyFunction, problem: Problem,
               seed: int = 0) -> FrameworkCheck:
    """``fn`` (the result of ``goal``) against ``framework``'s autograd of the forward pass.

    The difference is judged relative to the largest entry, allowing for rounding where it
    is larger: the measured noise of both sides (their change when the inputs move by 1e-13
    of themselves) and eps times the size of the terms the derived code subtracts.  A result
    that is exactly zero where autograd gives 1e-17 of rounding agrees.
    """
    from .numeric import _unsigned, compile_lambda, lambda_arguments, make_world

    if framework not in FRAMEWORKS:
        raise ValueError(f"no framework {framework!r}: choose from {', '.join(FRAMEWORKS)}")
    if not available(framework):
        return FrameworkCheck(framework, "not checked", detail=f"{framework} is not installed")
    definition = problem.definitions.get(goal.of)
    if definition is None:
        return FrameworkCheck(framework, "not checked", detail=f"{goal.of} is not defined")
    if goal.wrt not in problem.inputs:
        return FrameworkCheck(framework, "not checked",
                              detail=f"{goal.wrt} is defined, not an input: the emitted forward "
                                     "pass takes only inputs")
    world = make_world(problem, seed=seed)

    def both(world) -> tuple[np.ndarray, np.ndarray]:
        derived = compile_lambda(fn)(*lambda_arguments(fn, world))
        return np.asarray(derived, dtype=float), _autograd(framework, goal, problem, world)

    try:
        expected, got = both(world)
    except Exception as error:  # noqa: BLE001 -- the framework's refusal is reported
        return FrameworkCheck(framework, "not checked",
                              detail=f"{framework} could not differentiate the forward pass: "
                                     f"{type(error).__name__}: {error}")
    if got.shape != expected.shape:
        return FrameworkCheck(framework, "failed", math.inf,
                              f"shape {got.shape} from {framework}, {expected.shape} derived")
    difference = float(np.max(np.abs(got - expected), initial=0.0))
    scale = max(float(np.max(np.abs(got), initial=0.0)), 1e-300)  # autograd is the reference
    error = difference / scale
    if not np.isfinite(error):
        return FrameworkCheck(framework, "not checked", error, "values are not finite")
    if error <= TOLERANCE:
        return FrameworkCheck(framework, "passed", error)
    rounding = _rounding(world, both, expected, got, _unsigned(fn), goal)
    if difference <= rounding:
        return FrameworkCheck(framework, "passed", error,
                              "the difference is within the rounding of the values compared")
    return FrameworkCheck(framework, "failed", error)


#: Input moves for measuring rounding noise, relative; and the allowance in multiples of it.
NOISE_MOVE = 1e-13
NOISE_MULTIPLE = 8
#: The rounding allowed the derived code, in eps times the size of the terms it subtracts.
TERMS_ROUNDING = 64


def _rounding(world, both, expected, got, unsigned, goal: Goal) -> float:
    """The absolute difference rounding alone can make between ``expected`` and ``got``:
    their measured noise, eps times the terms the derived code subtracts, and eps times the
    natural size of a derivative of ``goal.of`` (the largest value on the way from
    ``goal.wrt`` to it, over the largest of ``goal.wrt``, times the upstream gradient's),
    which is what autograd's own cancellations leave (the noise of ``0.3 w - N (0.3 / N) w``
    does not move with the inputs)."""
    from .numeric import Evaluator, compile_lambda, lambda_arguments

    rng = np.random.default_rng(world.seed + 7)
    moved = replace(world, memo={}, values={
        name: np.asarray(v) * (1 + NOISE_MOVE * rng.uniform(-1, 1, np.shape(v)))
        for name, v in world.values.items()})
    try:
        expected2, got2 = both(moved)
        terms = np.abs(compile_lambda(unsigned)(*lambda_arguments(unsigned, world)))
    except Exception:  # noqa: BLE001 -- no measurement: no allowance
        return 0.0
    noise = (float(np.max(np.abs(expected2 - expected), initial=0.0))
             + float(np.max(np.abs(got2 - got), initial=0.0)))
    size = float(np.max(terms, initial=0.0))
    try:
        problem, ev = world.problem, Evaluator(world)
        upstream = max((float(np.max(np.abs(g), initial=0.0)) for g in world.upstream.values()),
                       default=1.0)
        chain = [n for n, d in problem.definitions.items() if not d.is_opaque_loss
                 and goal.wrt in problem.reaches(n)
                 and (n == goal.of or n in problem.reaches(goal.of))]
        values = max((float(np.max(np.abs(ev.tensor(n)), initial=0.0)) for n in chain),
                     default=0.0)
        x = float(np.max(np.abs(world.values[goal.wrt]), initial=0.0))
        natural = values * upstream / x if x > 0 else 0.0
    except Exception:  # noqa: BLE001 -- no estimate: no allowance from it
        natural = x = 0.0
    size = max(size, natural / x if goal.kind == "hessian" and x > 0 else natural)
    eps = float(np.finfo(float).eps)
    allowance = NOISE_MULTIPLE * noise + TERMS_ROUNDING * eps * size
    return allowance if math.isfinite(allowance) else 0.0


def _outputs(problem: Problem, of: str) -> tuple[tuple[str, ...], bool]:
    d = problem.definitions[of]
    return (tuple(d.loss_args), True) if d.is_opaque_loss else ((of,), False)


def _autograd(framework: str, goal: Goal, problem: Problem, world) -> np.ndarray:
    """``goal``'s result by ``framework``'s autograd of the emitted forward pass, on the
    check's inputs (declared functions by the check's stand-ins)."""
    from ..emit.module import forward_namespace

    outputs, opaque = _outputs(problem, goal.of)
    namespace, args = forward_namespace(problem, outputs, framework)
    forward = namespace["forward"]
    ops = _Torch() if framework == "torch" else _Jax()
    with ops.context():
        def value(code: str, x):
            name = naming.user_name(code)
            if name == goal.wrt:
                return x
            if name in world.values:
                return ops.array(world.values[name])
            if name in world.sizes:
                return world.sizes[name]
            return _stand_in(world, code, ops.sin)

        def output(x):
            return forward(*[value(a, x) for a in args])

        def scalar_of(x):  # an unspecified loss: its upstream gradients contracted in
            if not opaque:
                return output(x)
            out = output(x) if len(outputs) > 1 else (output(x),)
            return sum((o * ops.array(world.upstream[naming.gradient(goal.of, name)])).sum()
                       for o, name in zip(out, outputs))

        x0 = ops.array(world.values[goal.wrt])
        if goal.kind == "grad":
            return ops.numpy(ops.grad(scalar_of, x0))
        if goal.kind == "hessian":
            return ops.numpy(ops.hessian(scalar_of, x0))
        return ops.numpy(ops.jacobian(output, x0))


class _Torch:
    """What ``_autograd`` needs of PyTorch (float64, reverse mode)."""

    def __init__(self):
        import torch

        self.torch = torch
        self.sin = torch.sin
        self.hessian = torch.autograd.functional.hessian
        self.jacobian = torch.autograd.functional.jacobian

    def context(self):
        return contextlib.nullcontext()

    def array(self, value):
        return self.torch.tensor(value, dtype=self.torch.float64)

    def grad(self, f, x0):
        x = x0.clone().requires_grad_(True)
        (g,) = self.torch.autograd.grad(f(x), x)
        return g

    def numpy(self, value) -> np.ndarray:
        return value.detach().numpy()


class _Jax:
    """What ``_autograd`` needs of JAX (float64 by ``enable_x64``)."""

    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jax, self.array, self.sin = jax, jnp.asarray, jnp.sin

    def context(self):
        return self.jax.enable_x64(True)

    def grad(self, f, x0):
        return self.jax.grad(f)(x0)

    def hessian(self, f, x0):
        return self.jax.hessian(f)(x0)

    def jacobian(self, f, x0):
        return self.jax.jacrev(f)(x0)

    def numpy(self, value) -> np.ndarray:
        return np.asarray(value)


def _stand_in(world, code: str, sin):
    """The check's stand-in for the declared function (or derivative) ``code``."""
    base, order = naming.split_derivative_function(naming.user_name(code))
    return world.functions[base].derivative(order, sin)
