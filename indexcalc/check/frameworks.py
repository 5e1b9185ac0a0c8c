"""``--check-with torch|jax``: each derived result against the framework's own autograd.

The forward pass runs as the module ``--emit`` prints (``emit.module``), on the numeric
check's inputs (``check.numeric.make_world``), and the framework differentiates it: a gradient
by reverse mode (a vector-Jacobian product with the upstream gradients of an unspecified
loss), a Jacobian by ``jacobian``/``jacrev``, a Hessian by ``hessian``.  The derived NumPy
function, evaluated on the same inputs, must agree to ``TOLERANCE`` relative to the largest
entry.  Both sides are exact up to rounding, so the tolerance is tight.
"""
from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

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
    """``fn`` (the result of ``goal``) against ``framework``'s autograd of the forward pass."""
    from .numeric import compile_lambda, lambda_arguments, make_world

    if not available(framework):
        return FrameworkCheck(framework, "not checked", detail=f"{framework} is not installed")
    definition = problem.definitions.get(goal.of)
    if definition is None:
        return FrameworkCheck(framework, "not checked", detail=f"{goal.of} is not defined")
    world = make_world(problem, seed=seed)
    expected = np.asarray(compile_lambda(fn)(*lambda_arguments(fn, world)), dtype=float)
    try:
        got = _autograd(framework, goal, problem, world)
    except Exception as error:  # noqa: BLE001 -- the framework's refusal is reported
        return FrameworkCheck(framework, "not checked",
                              detail=f"{framework} could not differentiate the forward pass: "
                                     f"{type(error).__name__}: {error}")
    if got.shape != expected.shape:
        return FrameworkCheck(framework, "failed", math.inf,
                              f"shape {got.shape} from {framework}, {expected.shape} derived")
    scale = max(float(np.max(np.abs(got), initial=0.0)), 1e-300)
    error = float(np.max(np.abs(got - expected), initial=0.0)) / scale
    if not np.isfinite(error):
        return FrameworkCheck(framework, "not checked", error, "values are not finite")
    return FrameworkCheck(framework, "passed" if error <= TOLERANCE else "failed", error)


def _outputs(problem: Problem, of: str) -> tuple[tuple[str, ...], bool]:
    d = problem.definitions[of]
    return (tuple(d.loss_args), True) if d.is_opaque_loss else ((of,), False)


def _autograd(framework: str, goal: Goal, problem: Problem, world) -> np.ndarray:
    from ..emit.module import forward_namespace

    outputs, opaque = _outputs(problem, goal.of)
    namespace, args = forward_namespace(problem, outputs, framework)
    forward = namespace["forward"]
    if framework == "torch":
        return _torch(forward, args, goal, problem, world, outputs, opaque)
    return _jax(forward, args, goal, problem, world, outputs, opaque)


def _stand_in(world, code: str, sin):
    base, order = naming.split_derivative_function(naming.user_name(code))
    a = world.functions[base].a
    poly = {0: lambda x: 0.5 * x**2, 1: lambda x: x, 2: lambda x: 1.0}.get(order, lambda x: 0.0)
    return lambda x: a**order * sin(a * x + order * np.pi / 2) + poly(x)


def _torch(forward, args, goal, problem, world, outputs, opaque) -> np.ndarray:
    import torch

    def value(code: str, x=None):
        name = naming.user_name(code)
        if name == goal.wrt and x is not None:
            return x
        if name in world.values:
            return torch.tensor(world.values[name], dtype=torch.float64)
        if name in world.sizes:
            return world.sizes[name]
        return _stand_in(world, code, torch.sin)

    def scalar_of(x):
        out = forward(*[value(a, x) for a in args])
        if not opaque:
            return out
        out = out if len(outputs) > 1 else (out,)
        total = 0.0
        for o, name in zip(out, outputs):
            g = torch.tensor(world.upstream[naming.gradient(goal.of, name)], dtype=torch.float64)
            total = total + (o * g).sum()
        return total

    x0 = torch.tensor(world.values[goal.wrt], dtype=torch.float64)
    if goal.kind == "grad":
        x = x0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(scalar_of(x), x)
        return g.detach().numpy()
    if goal.kind == "hessian":
        return torch.autograd.functional.hessian(scalar_of, x0).numpy()
    return torch.autograd.functional.jacobian(
        lambda x: forward(*[value(a, x) for a in args]), x0).numpy()


def _jax(forward, args, goal, problem, world, outputs, opaque) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        def value(code: str, x=None):
            name = naming.user_name(code)
            if name == goal.wrt and x is not None:
                return x
            if name in world.values:
                return jnp.asarray(world.values[name])
            if name in world.sizes:
                return world.sizes[name]
            return _stand_in(world, code, jnp.sin)

        def scalar_of(x):
            out = forward(*[value(a, x) for a in args])
            if not opaque:
                return out
            out = out if len(outputs) > 1 else (out,)
            return sum((o * jnp.asarray(world.upstream[naming.gradient(goal.of, n)])).sum()
                       for o, n in zip(out, outputs))

        x0 = jnp.asarray(world.values[goal.wrt])
        if goal.kind == "grad":
            return np.asarray(jax.grad(scalar_of)(x0))
        if goal.kind == "hessian":
            return np.asarray(jax.hessian(scalar_of)(x0))
        return np.asarray(jax.jacrev(lambda x: forward(*[value(a, x) for a in args]))(x0))
