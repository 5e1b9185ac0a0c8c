"""New nonlinear problems (not among the shipped derivations): each must derive to the
textbook result, have a matrix form, run at other sizes and pass its numeric check.

Reference results: logistic regression and binary cross-entropy (Bishop, PRML eq. 4.91,
grad = X^T (sigma - t)); log-sum-exp (its gradient is the softmax: Boyd & Vandenberghe,
Convex Optimization, sec. 3.1.5); tanh' = 1 - tanh^2; the Jacobian of x/||x|| is
(I - y y^T)/||x||; softmax along columns is seed 002 1e transposed.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import derive_text, result
from indexcalc.render.printing import to_text
from test_matrix import check_ok, evaluate_text


def rng(seed=7):
    return np.random.default_rng(seed)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def call(res, **env):
    fn = eval(res.numpy.source, {"np": np})  # noqa: S307 - the generated lambda under test
    return np.asarray(fn(*(env[a] for a in res.numpy.args)), dtype=float)


def test_logistic_loss_uses_the_sigmoid():
    """f = sum_n log(1 + exp(-y_n x_n.w)):  grad = -X^T (y ⊙ sigma(-y ⊙ Xw))."""
    derived = derive_text("""
        dims N, D
        input X[N,D], y[N], w[D]
        f = sum_n log(1 + exp(-y[n] X[n,d] w[d]))
        grad f wrt w
    """)
    res = result(derived, "w")
    assert "\\sigma" in res.matrix.latex
    assert "1 / (1 + np.exp(" in res.matrix.text  # NumPy has no sigmoid: written out
    g = rng()
    X, y, w = g.normal(size=(11, 3)), g.choice([-1.0, 1.0], size=11), g.normal(size=3)
    expected = -X.T @ (y * sigmoid(-y * (X @ w)))
    np.testing.assert_allclose(call(res, X=X, y=y, w=w), expected, rtol=1e-10)
    check_ok(res)


def test_binary_cross_entropy_of_a_sigmoid_layer_simplifies_to_p_minus_t():
    """L = -sum t log p + (1-t) log(1-p), p = sigmoid(Xw):  grad = X^T (p - t) (PRML 4.91)."""
    derived = derive_text("""
        dims N, D
        input X[N,D], t[N], w[D]
        p[n] = sigmoid(X[n,d] w[d])
        L = -sum_n (t[n] log(p[n]) + (1 - t[n]) log(1 - p[n]))
        grad L wrt w
    """)
    res = result(derived, "w")
    assert res.matrix.text == "X.T @ (p - t)"
    check_ok(res)


def test_log_sum_exp_gives_the_softmax():
    """f = sum_s log sum_c exp(X_sc):  df/dX = exp(X) ⊘ (exp(X) 1 1^T)."""
    derived = derive_text("""
        dims S, C
        input X[S,C]
        f = sum_s log(sum_c exp(X[s,c]))
        grad f wrt X
    """)
    res = result(derived, "X")
    assert res.matrix is not None
    X = rng().normal(size=(5, 7))
    expected = np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(call(res, X=X), expected, rtol=1e-10)
    check_ok(res)


TANH_NETWORK = """
    dims S, M, H, N
    input X[S,M], W1[H,M], b1[H], W2[N,H], b2[N]
    Z1[s,h] = X[s,m] W1[h,m] + b1[h]
    H1[s,h] = tanh(Z1[s,h])
    Z2[s,n] = H1[s,h] W2[n,h] + b2[n]
    Y[s,n] = tanh(Z2[s,n])
    L = loss(Y)
    grad L wrt W1, b1, W2, X
"""


def test_tanh_layers_inside_a_network_of_several_definitions():
    """Backpropagation through two tanh layers: tanh' is folded back to 1 - H^2."""
    derived = derive_text(TANH_NETWORK)
    assert result(derived, "W2").matrix.text == "(dL_dY * (1 - Y ** 2)).T @ H1"
    assert result(derived, "X").matrix.text == \
        "(((dL_dY * (1 - Y ** 2)) @ W2) * (1 - H1 ** 2)) @ W1"
    g = rng()
    X, W1, b1 = g.normal(size=(6, 4)), g.normal(size=(3, 4)), g.normal(size=3)
    W2, b2, G = g.normal(size=(2, 3)), g.normal(size=2), g.normal(size=(6, 2))
    H1 = np.tanh(X @ W1.T + b1)
    Y = np.tanh(H1 @ W2.T + b2)
    D2 = G * (1 - Y ** 2)
    D1 = (D2 @ W2) * (1 - H1 ** 2)
    env = dict(X=X, W1=W1, b1=b1, W2=W2, b2=b2, dL_dY=G)
    np.testing.assert_allclose(call(result(derived, "W1"), **env), D1.T @ X, rtol=1e-10)
    np.testing.assert_allclose(call(result(derived, "b1"), **env), D1.sum(axis=0), rtol=1e-10)
    for res in derived.results:
        check_ok(res)


def test_norm_inside_a_quotient():
    """y = x / ||x||:  dL/dx = (g - y (y.g)) / ||x||."""
    derived = derive_text("""
        dims N
        input x[N]
        y[i] = x[i] / sqrt(sum_j x[j]^2)
        L = loss(y)
        grad L wrt x
    """)
    res = result(derived, "x")
    assert res.matrix is not None
    x, g = rng().normal(size=5), rng(8).normal(size=5)
    norm = np.linalg.norm(x)
    y = x / norm
    np.testing.assert_allclose(call(res, x=x, dL_dy=g), (g - y * (y @ g)) / norm, rtol=1e-10)
    check_ok(res)


def test_softmax_over_columns():
    """Seed 002 1e with classes along the rows (samples as columns): the sum runs down
    each column, so the broadcast is 1 (1^T (G ⊙ Y))."""
    derived = derive_text("""
        dims C, S
        input X[C,S]
        Y[c,s] = exp(X[c,s]) / sum_k exp(X[k,s])
        L = loss(Y)
        grad L wrt X
    """)
    res = result(derived, "X")
    assert res.matrix is not None
    X, G = rng().normal(size=(4, 6)), rng(9).normal(size=(4, 6))
    Y = np.exp(X) / np.exp(X).sum(axis=0, keepdims=True)
    expected = Y * (G - (G * Y).sum(axis=0, keepdims=True))
    np.testing.assert_allclose(call(res, X=X, dL_dY=G), expected, rtol=1e-10)
    np.testing.assert_allclose(evaluate_text(res, X=X, Y=Y, dL_dY=G, C=4), expected, rtol=1e-10)
    check_ok(res)


def test_softmax_cross_entropy_over_columns_with_one_hot_columns():
    """Seed 003's layout with the loss averaged over samples: (Y - T) / S."""
    derived = derive_text("""
        dims C, S
        input Z[C,S], T[C,S]
        assume sum_c T[c,s] = 1
        Y[c,s] = exp(Z[c,s]) / sum_k exp(Z[k,s])
        L = -1/S sum_{s,c} T[c,s] log(Y[c,s])
        grad L wrt Z
    """)
    res = result(derived, "Z")
    assert res.matrix.text == "(Y - T) / S"
    check_ok(res)


def test_hessian_of_softplus_is_diagonal():
    """f = sum_i log(1 + exp(x_i)):  the Hessian is diag(sigma(x) ⊙ (1 - sigma(x)))."""
    derived = derive_text("""
        dims N
        input x[N]
        f = sum_i log(1 + exp(x[i]))
        hessian f wrt x
    """)
    res = derived.results[0]
    assert res.matrix.text.startswith("np.diag(")
    x = rng().normal(size=4)
    s = sigmoid(x)
    np.testing.assert_allclose(call(res, x=x), np.diag(s * (1 - s)), rtol=1e-10)
    check_ok(res)


def test_relu_layer_with_squared_error():
    """relu' is the step function: dL/dW = ((Y - T) ⊙ step(X W^T))^T X."""
    derived = derive_text("""
        dims S, M, N
        input X[S,M], W[N,M], T[S,N]
        Y[s,n] = relu(X[s,m] W[n,m])
        L = 1/2 sum_{s,n} (Y[s,n] - T[s,n])^2
        grad L wrt W
    """)
    res = result(derived, "W")
    g = rng()
    X, W, T = g.normal(size=(6, 4)), g.normal(size=(3, 4)), g.normal(size=(6, 3))
    Z = X @ W.T
    expected = ((np.maximum(Z, 0) - T) * (Z > 0)).T @ X
    np.testing.assert_allclose(call(res, X=X, W=W, T=T), expected, rtol=1e-10)
    check_ok(res)


@pytest.mark.parametrize("fn, derivative", [
    ("sin", lambda x: np.cos(x)),
    ("cos", lambda x: -np.sin(x)),
    ("sqrt", lambda x: 0.5 / np.sqrt(x)),
    ("abs", lambda x: np.sign(x)),
])
def test_elementwise_functions_through_a_layer(fn, derivative):
    """Y = f(X) elementwise: dL/dX = dL/dY ⊙ f'(X) for each builtin."""
    derived = derive_text(f"""
        dims S, N
        input X[S,N]
        Y[s,n] = {fn}(X[s,n])
        L = loss(Y)
        grad L wrt X
    """)
    res = result(derived, "X")
    X, G = rng().uniform(0.5, 1.5, size=(3, 4)), rng(3).normal(size=(3, 4))
    np.testing.assert_allclose(call(res, X=X, dL_dY=G), G * derivative(X), rtol=1e-10)
    check_ok(res)


def test_hessian_of_logistic_regression_is_x_t_diag_x():
    """The Hessian of the cross-entropy of p = sigmoid(Xw) is X^T diag(p ⊙ (1 - p)) X
    (Bishop, PRML eq. 4.97): three factors share the summed n, and the vector goes into a
    diagonal matrix."""
    derived = derive_text("""
        dims N, D
        input X[N,D], t[N], w[D]
        p[n] = sigmoid(X[n,d] w[d])
        L = -sum_n (t[n] log(p[n]) + (1 - t[n]) log(1 - p[n]))
        hessian L wrt w
    """)
    res = derived.results[0]
    # LaTeX as the textbook writes it; NumPy without forming the N x N diagonal (issue 13)
    assert res.matrix.latex == (r"\mathbf{X}^{T} \operatorname{diag}\left(\mathbf{p} \odot "
                                r"\left(\mathbf{1} - \mathbf{p}\right)\right) \mathbf{X}")
    assert res.matrix.text == "(X.T * (p * (1 - p))) @ X"
    g = rng()
    X, w = g.normal(size=(9, 3)), g.normal(size=3)
    p = sigmoid(X @ w)
    np.testing.assert_allclose(call(res, X=X, w=w), X.T @ np.diag(p * (1 - p)) @ X, rtol=1e-10)
    check_ok(res)


def test_power_with_a_variable_exponent():
    """d(u^v) = v u^(v-1) du + u^v log(u) dv (from u^v = exp(v log u)): the exponent may be
    an input differentiated with respect to (issue 9: it was refused)."""
    derived = derive_text("""
        dims N
        input x[N], p
        f = sum_i x[i]^p
        g = sum_i (x[i] + 1)^(p^2) + 2^p
        grad f wrt p, x
        grad g wrt p
    """)
    g = rng()
    x, p = g.uniform(0.5, 1.5, size=6), 1.7
    df_dp = [r for r in derived.results if r.of == "f" and r.wrt == "p"][0]
    np.testing.assert_allclose(call(df_dp, x=x, p=p), np.sum(x**p * np.log(x)), rtol=1e-12)
    np.testing.assert_allclose(call(result(derived, "x"), x=x, p=p), p * x**(p - 1), rtol=1e-12)
    rule = [s.rule for b in df_dp.blocks for s in b.steps]
    assert "power rule, variable exponent" in rule
    dg = [r for r in derived.results if r.of == "g"][0]
    expected = np.sum((x + 1)**(p * p) * np.log(x + 1) * 2 * p) + 2**p * np.log(2)
    np.testing.assert_allclose(call(dg, x=x, p=p), expected, rtol=1e-12)
    for res in derived.results:
        check_ok(res)


def test_rows_of_unit_norm_can_be_assumed():
    """assume sum_c T[s,c]^2 = 1 (unit rows, as for cosine similarity): the check draws T
    with unit rows, the derivation uses the assumption after differentiating, and the
    result checks against the unconstrained forward pass at such T."""
    derived = derive_text("""
        dims S, C
        input T[S,C], W[C]
        assume sum_c T[s,c] T[s,c] = 1
        f = sum_s log(sum_c T[s,c]^2) + sum_{s,c} T[s,c] W[c] / sqrt(sum_k T[s,k]^2)
        grad f wrt T, W
    """)
    assert [r.check.passed for r in derived.results] == [True, True]
    assert "^2" not in to_text(result(derived, "T").index)  # the assumption was used
