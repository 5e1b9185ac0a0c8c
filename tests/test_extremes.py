"""Reductions ``max_d e`` / ``min_d e`` (CONTRACT section 3).

``max_d e(d)`` reads as ``sum_d [d == argmax_d' e(d')] e(d)``: the extreme is the entry at
the first maximiser, and the derivative goes through that entry alone, the bracket being
constant wherever the maximiser is unique.  The gradients are compared with NumPy code
written here by hand (``np.argmax`` routing, as a max-pooling layer's backward pass does).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import derivation, derive_text, result
from indexcalc.problem import InputError
from indexcalc.render.printing import to_latex, to_text
from indexcalc.syntax.idx import parse_text
from indexcalc.terms import Arg, as_extreme


def _call(r, values: dict):
    fn = eval(r.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    return fn(*(values[a] for a in r.numpy.args))


ROWS = """
dims N=4, D=5
input X[N,D], w[D]
m[n] = max_d X[n,d]
g = sum_n min_d (X[n,d] * w[d])
f = sum_n m[n]^2
grad f wrt X
grad g wrt X, w
"""


def test_max_reads_as_the_entry_at_the_first_maximiser_and_prints_as_written():
    p = parse_text(ROWS)
    body = p.definitions["m"].body
    kind, d, value = as_extreme(body)
    assert kind == "max" and d.name == "d" and to_text(value) == "X[n,d]"
    assert any(isinstance(t, Arg) for t in body.walk())
    assert to_text(body) == "max_d X[n,d]"
    assert to_latex(body) == "\\max_{d} X_{nd}"


def test_the_gradients_route_through_the_extreme_entry():
    d = derive_text(ROWS)
    df, dgx, dgw = d.results
    assert df.check.passed and dgx.check.passed and dgw.check.passed
    rng = np.random.default_rng(0)
    X, w = rng.normal(size=(4, 5)), rng.normal(size=5)
    m = X.max(axis=1)
    hot = np.zeros((4, 5))
    hot[np.arange(4), X.argmax(axis=1)] = 1
    values = {"X": X, "w": w, "m": m, "N": 4, "D": 5}
    np.testing.assert_allclose(_call(df, values), 2 * m[:, None] * hot, atol=1e-12)
    low = np.zeros((4, 5))
    low[np.arange(4), (X * w).argmin(axis=1)] = 1
    np.testing.assert_allclose(_call(dgx, values), low * w, atol=1e-12)
    np.testing.assert_allclose(_call(dgw, values), (low * X).sum(axis=0), atol=1e-12)


def test_a_tie_goes_to_the_first_entry():
    r = derive_text(ROWS).results[0]
    X = np.array([[1.0, 3.0, 3.0, 0.0, -1.0]] * 4)
    got = _call(r, {"X": X, "m": X.max(axis=1), "N": 4, "D": 5})
    assert got[0].tolist() == [0.0, 6.0, 0.0, 0.0, 0.0]


def test_the_forward_code_is_one_reduction():
    """max_d X[n,d] is np.max(X, axis=1) in the module (and torch.amax, jnp.max): not the
    argmax bracket times X summed, which the check evaluates as an independent reading."""
    from indexcalc.emit.module import module_source
    d = derive_text(ROWS)
    assert "m = np.max(X, axis=1)" in module_source(d, "numpy")
    assert "torch.amax(X, dim=1)" in module_source(d, "torch")
    assert "jnp.max(X, axis=1)" in module_source(d, "jax")


def test_max_pooling_routes_the_upstream_gradient_to_each_windows_maximum():
    r = result(derivation("max_pooling"), "x")
    assert r.check.passed
    assert "derivative of a bracket" in [s.rule for b in r.blocks for s in b.steps]
    rng = np.random.default_rng(1)
    N, C, T, K = 3, 2, 9, 3
    U = (T - K) // 2 + 1
    x, g = rng.normal(size=(N, C, T)), rng.normal(size=(N, C, U))
    want = np.zeros_like(x)
    for u in range(U):  # the textbook loop, as an oracle
        window = x[:, :, 2 * u:2 * u + K]
        at = 2 * u + window.argmax(axis=2)
        for n in range(N):
            for c in range(C):
                want[n, c, at[n, c]] += g[n, c, u]
    got = _call(r, {"x": x, "dL_dy": g, "K": K, "N": N, "C": C, "T": T, "U": U})
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_the_stable_log_sum_exp_gradient_is_the_softmax():
    r = result(derivation("max_pooling"), "Z")
    assert r.check.passed and "m" in to_text(r.index)
    Z = np.random.default_rng(2).normal(size=(3, 5))
    m = Z.max(axis=1)
    e = np.exp(Z - m[:, None])
    got = _call(r, {"Z": Z, "m": m, "N": 3, "D": 5})
    np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), atol=1e-12)


@pytest.mark.parametrize("line, message", [
    ("f = sum_n max_{d,n2} X[n,d]", "max_ reduces over one index"),
    ("f = sum_n max_{d <= n} X[n,d]", "max_ reduces over one index"),
    ("f = sum_n max_ X[n,d]", "expected an index or '{' right after max_"),
])
def test_a_malformed_reduction_is_bad_input_at_its_place(line, message):
    with pytest.raises(InputError) as caught:
        parse_text(f"dims N, D\ninput X[N,D]\n{line}\ngrad f wrt X\n", "f.idx")
    assert message in str(caught.value) and caught.value.location.line == 3
