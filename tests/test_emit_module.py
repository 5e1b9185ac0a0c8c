"""Framework modules (CONTRACT section 4): ``indexcalc derive FILE --emit numpy|torch|jax``.

Every shipped derivation's module is imported and run: its per-result functions equal the
checked NumPy lambdas, and its torch ``Function`` passes ``torch.autograd.gradcheck`` and its
JAX ``apply`` passes ``jax.test_util.check_grads`` in float64.
"""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from indexcalc.check.numeric import compile_lambda, lambda_arguments, make_world
from indexcalc.emit.module import WIDTH, module_source, result_name
from indexcalc.functions import LANGUAGE_FUNCTIONS
from indexcalc.pipeline import run
from indexcalc.syntax.idx import parse_file, parse_text
from conftest import need

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "derivations").glob("*.idx"))
IDS = [f.stem for f in FILES]

# Problems the shipped files do not hold: a scalar loss by expression with a scalar input, a
# Hessian, an unspecified function, a gated linear unit, RMSNorm.
NEW = {
    "glu": """
dims N, D, K
input X[N,D], W[K,D], V[K,D]
G[n,k] = (sum_d X[n,d] W[k,d]) * sigmoid(sum_d X[n,d] V[k,d])
L = loss(G)
grad L wrt W, V, X
""",
    "rmsnorm": """
dims N, D
input X[N,D], g[D], eps
r[n] = sqrt(sum_d X[n,d]^2 / D + eps)
Y[n,d] = g[d] X[n,d] / r[n]
L = loss(Y)
grad L wrt X, g
""",
    "ridge": """
dims N, D
input X[N,D], y[N], w[D], lam
f = sum_n (sum_d X[n,d] w[d] - y[n])^2 + lam sum_d w[d]^2
grad f wrt w, lam
hessian f wrt w
""",
    "unspecified": """
dims S, N
input X[S,N], W[N,N]
function h
Y[s,n] = h(sum_m X[s,m] W[m,n])
L = sum_{s,n} Y[s,n]^2
grad L wrt W, X
jacobian Y wrt X
""",
}

# A constant of the language: the Gaussian negative log-likelihood's log(2 pi), a Python
# number in torch (math.log(2.0 * torch.pi)).
NEW["gaussian_nll"] = """
dims N, D
input X[N,D], mu[D], s[D]
L = sum_{n,d} ((X[n,d] - mu[d])^2 / (2 s[d]^2) + log(s[d]) + log(2 pi) / 2)
grad L wrt mu, s
"""

# A symmetric input: d(x^T S x)/dx is 2 S x (true at the symmetric S the check draws), the
# gradient with respect to S the unconstrained x x^T that gradcheck measures entry by entry.
NEW["symmetric"] = """
dims N
input x[N], S[N,N] symmetric
f = sum_{i,j} x[i] S[i,j] x[j]
grad f wrt x, S
"""

# A dim defined from others, used as a number: computed from the shapes it comes from.
NEW["dim_formula"] = """
dims T, K, U = T - K + 1
input x[T], w[K]
f = U * sum_t x[t]^2 + sum_k w[k]^2 / U
grad f wrt x, w
"""

# Iverson brackets: a leaky ReLU and a Huber loss, each branch chosen with where.
NEW["leaky_relu"] = """
dims N, D
input X[N,D], W[D,D], c
Z[n,k] = sum_d X[n,d] W[d,k]
H[n,k] = where(Z[n,k] > 0, Z[n,k], c * Z[n,k])
L = loss(H)
grad L wrt W, X, c
"""
NEW["huber"] = """
dims N, D
input X[N,D], y[N], w[D], d
r[n] = sum_k X[n,k] w[k] - y[n]
L = sum_n where(abs(r[n]) <= d, r[n]^2 / 2, d * (abs(r[n]) - d / 2))
grad L wrt w, d
"""

# Every function of the language in one layer: each framework spells each one (softplus is
# torch's nn.functional.softplus, JAX's logaddexp(0, x)).
NEW["every_function"] = """
dims N, K
input x[N], W[K,N]
Y[k] = """ + " + ".join(f"{name}(sum_n W[k,n] x[n])" for name in LANGUAGE_FUNCTIONS) + """
L = loss(Y)
grad L wrt W, x
"""

CASES = [(f.stem, f.read_text()) for f in FILES] + list(NEW.items())


def _derive(text: str):
    return run(parse_text(text))


def _load(source: str, name: str):
    path = Path(f"/nonexistent/{name}.py")
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - our own output
    return module


@pytest.fixture(scope="module")
def derivations():
    return {name: _derive(text) for name, text in CASES}


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_numpy_module_is_readable_and_equals_the_lambdas(derivations, name):
    d = derivations[name]
    source = module_source(d, "numpy")
    tree = ast.parse(source)
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imports == {"numpy"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.NamedExpr)], "walrus chains"
    assert max(len(line) for line in source.splitlines()) <= WIDTH
    module = _load(source, f"emitted_{name}")
    assert module.INPUTS == tuple(d.problem.inputs)
    world = make_world(d.problem, seed=3)
    for r in d.results:
        args = lambda_arguments(r.numpy, world)
        expected = compile_lambda(r.numpy)(*args)
        got = getattr(module, result_name(r))(*args)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_emit_from_the_command_line(tmp_path, capsys):
    from indexcalc.cli import main

    out = tmp_path / "layer.py"
    assert main(["derive", str(FILES[0]), "--emit", "numpy", "-o", str(out)]) == 0
    assert "def forward(" in out.read_text()
    assert main(["derive", str(FILES[0]), "--emit", "torch", "--format", "json"]) == 2
    assert "takes no --format" in capsys.readouterr().err


def _torch_inputs(d, world, torch):
    first = d.problem.goals[0]
    wrt = {g.wrt for g in d.problem.goals if g.kind == "grad" and g.of == first.of}
    tensors = [torch.tensor(world.values[n], dtype=torch.float64, requires_grad=n in wrt)
               for n in d.problem.inputs]
    return tensors


class _TorchStandIn:
    """The check's stand-in h(x) = sin(a x) + x^2/2, in torch."""

    def __init__(self, a, order, torch):
        self.a, self.order, self.torch = a, order, torch

    def __call__(self, x):
        a, n = self.a, self.order
        poly = {0: 0.5 * x**2, 1: x, 2: 1.0}.get(n, 0.0)
        return a**n * self.torch.sin(a * x + n * np.pi / 2) + poly


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_torch_module_passes_gradcheck(derivations, name):
    torch = need("torch")
    d = derivations[name]
    source = module_source(d, "torch")
    assert max(len(line) for line in source.splitlines()) <= WIDTH
    module = _load(source, f"emitted_torch_{name}")
    world = make_world(d.problem, seed=3)
    functions = [_TorchStandIn(world.functions[f].a, k, torch)
                 for f in d.problem.functions for k in (0, 1)]
    for r in d.results:  # every per-result function equals the lambda
        args = lambda_arguments(r.numpy, world)
        expected = compile_lambda(r.numpy)(*args)
        targs = []
        for code, value in zip(r.numpy.args, args):
            if callable(value):
                order = 1 if code.endswith("_prime") else 0
                targs.append(_TorchStandIn(world.functions[code.split("_prime")[0]].a, order,
                                           torch))
            elif isinstance(value, np.ndarray):
                targs.append(torch.tensor(value, dtype=torch.float64))
            else:
                targs.append(value)
        got = getattr(module, result_name(r))(*targs)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10, atol=1e-12)
    if d.problem.goals[0].kind != "grad":
        assert not hasattr(module, "Function")
        return
    inputs = _torch_inputs(d, world, torch)
    assert torch.autograd.gradcheck(module.apply, (*inputs, *functions))


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_jax_module_passes_check_grads(derivations, name):
    jax = need("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.test_util import check_grads

    d = derivations[name]
    source = module_source(d, "jax")
    assert max(len(line) for line in source.splitlines()) <= WIDTH
    module = _load(source, f"emitted_jax_{name}")
    world = make_world(d.problem, seed=3)

    def stand_in(fn, order):
        a = world.functions[fn].a
        poly = {0: lambda x: 0.5 * x**2, 1: lambda x: x, 2: lambda x: 1.0}[order]
        return lambda x: a**order * jnp.sin(a * x + order * np.pi / 2) + poly(x)

    for r in d.results:
        args = lambda_arguments(r.numpy, world)
        expected = compile_lambda(r.numpy)(*args)
        jargs = [stand_in(code.split("_prime")[0], 1 if code.endswith("_prime") else 0)
                 if callable(v) else jnp.asarray(v) if isinstance(v, np.ndarray) else v
                 for code, v in zip(r.numpy.args, args)]
        got = getattr(module, result_name(r))(*jargs)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-10, atol=1e-12)
    first = d.problem.goals[0]
    if first.kind != "grad":
        assert not hasattr(module, "apply")
        return
    wrt = [g.wrt for g in d.problem.goals if g.kind == "grad" and g.of == first.of]
    names = list(d.problem.inputs)
    values = {n: jnp.asarray(world.values[n]) for n in names}
    functions = [stand_in(f, k) for f in d.problem.functions for k in (0, 1)]

    def of_wrt(*xs):
        given = dict(values, **dict(zip(wrt, xs)))
        return module.apply(*[given[n] for n in names], *functions)

    check_grads(of_wrt, tuple(values[n] for n in wrt), order=1, modes=["rev"])


def test_torch_function_takes_a_python_number_for_a_scalar_without_gradient(derivations):
    """``eps`` gets no gradient: the Function keeps it on ctx, not with save_for_backward
    (which refuses a float), so ``apply(X, g, 1e-5)`` works as a user writes it."""
    torch = need("torch")
    module = _load(module_source(derivations["rmsnorm"], "torch"), "emitted_torch_rmsnorm_float")
    X = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    g = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module.apply, (X, g, 1e-5))


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_a_hostile_title_stays_text_in_the_module(framework):
    """The title is the user's text and lands in the module's docstring: quotes and
    backslashes in it must not close the literal and run on import."""
    title = 'x """ + __import__("os").system("exit 3") + """ \\ end'
    d = _derive(f"title: {title}\ndims N\ninput x[N]\nf = sum_i x[i]^2\ngrad f wrt x\n")
    source = module_source(d, framework)
    tree = ast.parse(source)
    assert ast.get_docstring(tree, clean=False).splitlines()[0] == title + "."
    assert not any(isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__"
                   for node in ast.walk(tree))
