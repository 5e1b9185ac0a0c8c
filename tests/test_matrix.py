"""Matrix forms of problems the project never saw (written here, not copied from derivations/).

For each: a matrix form exists, its text is NumPy syntax (CONTRACT section 2) that evaluates,
with the dims bound to sizes, to a formula written here, and the result passes its check.
Identities cite the Matrix Cookbook (Petersen & Pedersen, version of November 15, 2012) by
equation number.  ``to_matrix`` is also tested directly on hand-built index expressions.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_close, call, derive_text, numeric_gradient, result, rng
from indexcalc.emit.numpy import numpy_text
from indexcalc.matrix.recognize import to_matrix
from indexcalc.render.matrix import matrix_latex
from indexcalc.terms import (
    Delta, DimSize, Func, Grad, Index, Tensor, add, div, make_sum, mul, num,
)


def evaluate_text(res_or_matrix, **env):
    """Evaluate a matrix form's text as NumPy with ``env`` (arrays, dims as ints) in scope."""
    matrix = getattr(res_or_matrix, "matrix", res_or_matrix)
    assert matrix is not None
    text = matrix.text if isinstance(getattr(matrix, "text", None), str) else numpy_text(matrix)
    return np.asarray(eval(text, {"np": np, **env}), dtype=float)  # noqa: S307


def check_ok(res):
    assert res.check.passed, (res.wrt, res.check)
    assert res.check.max_rel_error < 1e-6


# --- layouts and transposes ---------------------------------------------------------------------------

def test_samples_as_columns():
    """Y = W X with samples as columns (the layout of seed 003): dL/dW = dL/dY X^T and
    dL/dX = W^T dL/dY (Matrix Cookbook (70)-(71) through the chain rule)."""
    derived = derive_text("""
        dims S, M, N
        input X[M,S], W[N,M]
        Y[n,s] = W[n,m] X[m,s]
        L = loss(Y)
        grad L wrt W, X
    """)
    gen = rng()
    X, W, G = gen.normal(size=(4, 9)), gen.normal(size=(2, 4)), gen.normal(size=(2, 9))
    res = result(derived, "W")
    assert res.matrix.text == "dL_dY @ X.T"
    assert_close(evaluate_text(res, X=X, W=W, dL_dY=G), G @ X.T)
    assert_close(call(res, X=X, W=W, dL_dY=G), G @ X.T)
    check_ok(res)
    res = result(derived, "X")
    assert res.matrix.text == "W.T @ dL_dY"
    assert_close(call(res, X=X, W=W, dL_dY=G), W.T @ G)
    check_ok(res)


def test_transposed_output():
    """Y = (X W^T)^T stored N x S: the gradients pick up the transposes."""
    derived = derive_text("""
        dims S, M, N
        input X[S,M], W[N,M]
        Y[n,s] = sum_m X[s,m] W[n,m]
        L = loss(Y)
        grad L wrt W, X
    """)
    gen = rng(3)
    X, W, G = gen.normal(size=(8, 3)), gen.normal(size=(5, 3)), gen.normal(size=(5, 8))
    res = result(derived, "W")
    assert res.matrix is not None
    assert_close(evaluate_text(res, X=X, dL_dY=G), G @ X)
    assert_close(call(res, X=X, W=W, dL_dY=G), G @ X)
    check_ok(res)
    res = result(derived, "X")
    assert_close(evaluate_text(res, W=W, dL_dY=G), G.T @ W)
    assert_close(call(res, X=X, W=W, dL_dY=G), G.T @ W)
    check_ok(res)


THREE_LAYERS = """
    dims S, A, B, C, D
    input X[S,A], W1[B,A], W2[C,B], W3[D,C]
    H1[s,b] = X[s,a] W1[b,a]
    H2[s,c] = H1[s,b] W2[c,b]
    Y[s,d] = H2[s,c] W3[d,c]
    L = loss(Y)
    grad L wrt W1, W2, W3, X
"""


def three_layer_values(sizes=(7, 2, 6, 3, 5), seed=4):
    S, A, B, C, D = sizes
    gen = rng(seed)
    v = dict(X=gen.normal(size=(S, A)), W1=gen.normal(size=(B, A)), W2=gen.normal(size=(C, B)),
             W3=gen.normal(size=(D, C)), dL_dY=gen.normal(size=(S, D)))
    H1 = v["X"] @ v["W1"].T
    H2 = H1 @ v["W2"].T
    G = v["dL_dY"]
    expected = {"W3": G.T @ H2, "W2": (G @ v["W3"]).T @ H1,
                "W1": (G @ v["W3"] @ v["W2"]).T @ v["X"], "X": G @ v["W3"] @ v["W2"] @ v["W1"]}
    return v, dict(H1=H1, H2=H2), expected


def test_three_linear_layers_in_a_row():
    """Three definitions in a row: the chain rule through H2 and H1 (seed 002 1a-1c, applied
    three times)."""
    derived = derive_text(THREE_LAYERS)
    values, hidden, expected = three_layer_values()
    dims = dict(S=7, A=2, B=6, C=3, D=5)
    for wrt in ("W1", "W2", "W3", "X"):
        res = result(derived, wrt)
        assert res.matrix is not None, wrt
        assert_close(evaluate_text(res, **values, **hidden, **dims), expected[wrt])
        assert_close(call(res, **values), expected[wrt])
        check_ok(res)
    assert result(derived, "X").matrix.text == "dL_dY @ W3 @ W2 @ W1"
    assert result(derived, "W3").matrix.text == "dL_dY.T @ H2"


# --- scalar factors -----------------------------------------------------------------------------------

def test_scalar_factors():
    """Y = 2 X W / lam: the scalar factor 2/lam carries over; d/dlam gives -2/lam^2."""
    derived = derive_text("""
        dims S, M, N
        input X[S,M], W[M,N], lam
        Y[s,n] = 2 * X[s,m] W[m,n] / lam
        L = loss(Y)
        grad L wrt W, X, lam
    """)
    gen = rng(5)
    X, W, G, lam = gen.normal(size=(6, 3)), gen.normal(size=(3, 7)), gen.normal(size=(6, 7)), 1.7
    env = dict(X=X, W=W, dL_dY=G, lam=lam, S=6, M=3, N=7)
    res = result(derived, "W")
    assert res.matrix is not None and r"\frac{2}{\lambda}" in res.matrix.latex
    assert_close(evaluate_text(res, **env), 2 * X.T @ G / lam)
    assert_close(call(res, **env), 2 * X.T @ G / lam)
    check_ok(res)
    res = result(derived, "X")
    assert_close(evaluate_text(res, **env), 2 * G @ W.T / lam)
    check_ok(res)
    res = result(derived, "lam")
    assert res.matrix is not None
    assert call(res, **env).shape == ()
    assert_close(call(res, **env), -2 * np.sum(G * (X @ W)) / lam**2)
    check_ok(res)


def test_matrix_text_of_a_scalar_power_is_numpy_syntax():
    """CONTRACT section 2: matrix.text uses NumPy syntax."""
    derived = derive_text("""
        dims N
        input x[N], lam
        y[n] = x[n] / lam^2
        L = loss(y)
        grad L wrt x
    """)
    res = result(derived, "x")
    G = rng().normal(size=4)
    assert_close(evaluate_text(res, dL_dy=G, lam=1.5, N=4), G / 1.5**2)


def test_mean_of_squares_with_one_over_S():
    """L = 1/S sum (Y - T)^2: dL/dY = (2/S)(Y - T) (Matrix Cookbook sec. 2.5,
    d||X||_F^2/dX = 2X, scaled by 1/S)."""
    derived = derive_text("""
        dims S, C
        input Y[S,C], T[S,C]
        L = 1/S sum_{s,c} (Y[s,c] - T[s,c])^2
        grad L wrt Y
    """)
    res = result(derived, "Y")
    gen = rng(6)
    Y, T = gen.normal(size=(9, 2)), gen.normal(size=(9, 2))
    assert res.matrix is not None
    assert_close(evaluate_text(res, Y=Y, T=T, S=9, C=2), 2 * (Y - T) / 9)
    assert_close(call(res, Y=Y, T=T), 2 * (Y - T) / 9)
    check_ok(res)


# --- traces, bilinear and quadratic forms -----------------------------------------------------------------

def test_trace_of_a_product():
    """f = tr(A B) = sum_{i,k} A_ik B_ki: df/dA = B^T (Matrix Cookbook (100):
    d tr(XA)/dX = A^T), and df/dB = A^T."""
    derived = derive_text("""
        dims I, K
        input A[I,K], B[K,I]
        f = sum_{i,k} A[i,k] B[k,i]
        grad f wrt A, B
    """)
    gen = rng(7)
    A, B = gen.normal(size=(3, 6)), gen.normal(size=(6, 3))
    res = result(derived, "A")
    assert res.matrix.text == "B.T"
    assert_close(call(res, A=A, B=B), B.T)
    assert_close(call(res, A=A, B=B), numeric_gradient(lambda a: np.trace(a @ B), A))
    check_ok(res)
    res = result(derived, "B")
    assert res.matrix.text == "A.T"
    check_ok(res)


def test_bilinear_form():
    """f = x^T A y: df/dA = x y^T (Matrix Cookbook (70)), df/dx = A y, df/dy = A^T x
    (Cookbook (69)-(71))."""
    derived = derive_text("""
        dims N, M
        input x[N], A[N,M], y[M]
        f = x[n] A[n,m] y[m]
        grad f wrt A, x, y
    """)
    gen = rng(8)
    x, A, y = gen.normal(size=5), gen.normal(size=(5, 2)), gen.normal(size=2)
    res = result(derived, "A")
    assert res.matrix.text == "np.outer(x, y)"
    assert res.matrix.latex == r"\mathbf{x} \mathbf{y}^{T}"
    assert_close(call(res, x=x, A=A, y=y), np.outer(x, y))
    check_ok(res)
    res = result(derived, "x")
    assert res.matrix.text == "A @ y"
    assert_close(call(res, x=x, A=A, y=y), A @ y)
    check_ok(res)
    res = result(derived, "y")
    assert_close(evaluate_text(res, x=x, A=A), A.T @ x)
    assert_close(call(res, x=x, A=A, y=y), A.T @ x)
    check_ok(res)


QUADRATIC = """
    dims N
    input x[N], A[N,N]
    f = x[i] A[i,j] x[j]
    grad f wrt x, A
    hessian f wrt x
"""


def test_quadratic_form_gradient():
    """f = x^T A x: df/dx = (A + A^T) x (Matrix Cookbook (81)); df/dA = x x^T."""
    derived = derive_text(QUADRATIC)
    gen = rng(9)
    x, A = gen.normal(size=6), gen.normal(size=(6, 6))
    res = result(derived, "x", kind="grad")
    assert res.matrix is not None
    assert_close(evaluate_text(res, x=x, A=A, N=6), (A + A.T) @ x)
    assert_close(call(res, x=x, A=A), (A + A.T) @ x)
    check_ok(res)
    res = result(derived, "A")
    assert res.matrix.text == "np.outer(x, x)"
    check_ok(res)


def test_quadratic_form_hessian():
    """d^2(x^T A x)/dx dx^T = A + A^T (Matrix Cookbook (81) differentiated once more)."""
    res = result(derive_text(QUADRATIC), "x", kind="hessian")
    assert res.matrix.text == "A + A.T"
    A = rng(10).normal(size=(7, 7))
    got = call(res, A=A, x=np.zeros(7))
    assert got.shape == (7, 7)
    assert_close(got, A + A.T)
    assert res.check.passed, res.check


def test_frobenius_norm_of_a_difference():
    """f = ||X - Y||_F^2: df/dX = 2 (X - Y) (Matrix Cookbook sec. 2.5, d||X||_F^2/dX = 2X)."""
    derived = derive_text("""
        dims S, C
        input X[S,C], Y[S,C]
        f = sum_{s,c} (X[s,c] - Y[s,c])^2
        grad f wrt X, Y
    """)
    gen = rng(11)
    X, Y = gen.normal(size=(2, 8)), gen.normal(size=(2, 8))
    res = result(derived, "X")
    assert res.matrix.text == "2 * (X - Y)"
    assert_close(call(res, X=X, Y=Y), 2 * (X - Y))
    check_ok(res)
    res = result(derived, "Y")
    assert_close(evaluate_text(res, X=X, Y=Y), 2 * (Y - X))
    check_ok(res)


def test_gram_matrix_with_an_opaque_loss():
    """G = X^T X, L = loss(G): dL/dX = X (dL/dG^T + dL/dG) (chain rule through
    dG_ab/dX_ij = delta_aj X_ib + X_ia delta_bj)."""
    derived = derive_text("""
        dims S, M
        input X[S,M]
        G[a,b] = X[s,a] X[s,b]
        L = loss(G)
        grad L wrt X
    """)
    res = result(derived, "X")
    assert res.matrix is not None
    gen = rng(12)
    X, U = gen.normal(size=(7, 3)), gen.normal(size=(3, 3))
    assert_close(evaluate_text(res, X=X, dL_dG=U), X @ (U + U.T))
    assert_close(call(res, X=X, dL_dG=U), X @ (U + U.T))
    assert_close(call(res, X=X, dL_dG=U), numeric_gradient(lambda x: np.sum(U * (x.T @ x)), X),
                 rtol=1e-5)
    check_ok(res)


# --- to_matrix on hand-built index expressions ------------------------------------------------------------

s, i, j = Index("s", "S"), Index("i", "N"), Index("j", "M")
a, b = Index("a", "N"), Index("b", "N")


def G(*ix):
    return Grad("L", "Y", ix)


def t(name, *ix):
    return Tensor(name, ix)


def test_to_matrix_contracts_over_the_first_axis_with_a_transpose():
    """sum_s G_si X_sj = (G^T X)_ij (seed 002, 1a)."""
    term = make_sum((s,), mul(G(s, i), t("X", s, j)))
    assert numpy_text(to_matrix(term, (i, j))) == "dL_dY.T @ X"
    # the other axis order is the transpose: X^T G
    assert numpy_text(to_matrix(term, (j, i))) == "X.T @ dL_dY"


def test_to_matrix_sums_an_axis_with_a_ones_vector():
    """sum_s G_si = (1^T G)_i (seed 002, 1b); NumPy says it as a sum over axis 0."""
    m = to_matrix(make_sum((s,), G(s, i)), (i,))
    assert numpy_text(m) == "dL_dY.sum(axis=0)"
    assert matrix_latex(m) == r"\mathbf{1}^{T} \frac{\partial L}{\partial \mathbf{Y}}"


def test_to_matrix_elementwise_products_and_quotients():
    """Equal index sets combine elementwise: T_ij / X_ij is T ⊘ X (seed 002, 1f)."""
    si, cj = Index("i", "S"), Index("j", "C")
    m = to_matrix(mul(num(-1), div(t("T", si, cj), mul(DimSize("S"), t("X", si, cj)))), (si, cj))
    assert r"\oslash" in matrix_latex(m)
    T, X = rng().uniform(1, 2, size=(3, 4)), rng(2).uniform(1, 2, size=(3, 4))
    assert_close(evaluate_text(m, T=T, X=X, S=3), -T / X / 3)
    m = to_matrix(mul(G(si, cj), Func("h", t("X", si, cj), 1)), (si, cj))
    assert numpy_text(m) == "dL_dY * h_prime(X)"


def test_to_matrix_broadcasts_a_vector_and_forms_outer_products():
    Sn = Index("s", "S")
    m = to_matrix(add(t("Z", Sn, i), t("b", i)), (Sn, i))
    Z, bb = rng().normal(size=(4, 3)), rng(2).normal(size=3)
    assert_close(evaluate_text(m, Z=Z, b=bb, S=4, N=3), Z + bb[None, :])
    m = to_matrix(mul(t("x", i), t("y", j)), (i, j))
    assert numpy_text(m) == "np.outer(x, y)"


@pytest.mark.parametrize("term, out", [
    (mul(t("X", s, i), t("W", i, j), t("V", s, j)), (s, i, j)),  # three axes
    (t("A", a, a), (a,)),  # a diagonal
    (make_sum((a,), mul(t("x", a), t("T", a, b, j))), (b, j)),  # a three-axis tensor
])
def test_to_matrix_returns_none_where_no_matrix_form_exists(term, out):
    """More than two indices or a diagonal have no matrix form (matrix.py docstring); the caller falls back to einsum."""
    assert to_matrix(term, out) is None


def test_to_matrix_merges_equal_index_sets_before_contracting():
    """sum_a x_a A_ab y_a = ((x ⊙ y)^T A)_b: two vectors on one axis are one elementwise factor."""
    m = to_matrix(make_sum((a,), mul(t("x", a), t("A", a, b), t("y", a))), (b,))
    x, A, y = rng().normal(size=3), rng(2).normal(size=(3, 3)), rng(3).normal(size=3)
    assert_close(evaluate_text(m, x=x, A=A, y=y), (x * y) @ A)


def test_to_matrix_of_a_delta_is_the_identity():
    m = to_matrix(Delta(a, b), (a, b))
    assert numpy_text(m) == "np.eye(N)" and matrix_latex(m) == r"\mathbf{I}"


def test_a_coefficient_that_is_a_sum_is_bracketed():
    """(1 - 1/(lam + 2)) 1^T (...): a sum as coefficient is bracketed in LaTeX and NumPy
    (the LaTeX read 1 - (1/(lam + 2)) 1^T (...), another value of the same shape)."""
    res = derive_text("""
        dims S=3, D=4
        input X[S,D], lam
        Y[s,d] = exp(lam) * X[s,d] / (lam + 2)
        L = loss(Y)
        grad L wrt lam
    """).results[0]
    assert res.check.passed
    assert res.matrix.latex.startswith(r"\left(1 - \frac{1}{\lambda + 2}\right) ")
    assert res.matrix.text.startswith("(1 - 1 / (lam + 2)) * ") or \
        res.matrix.text.startswith("(1 - (1 / (lam + 2))) * ")
