"""The shipped derivations (derivations/*.idx) against the documents they come from.

For every result: the index form, the matrix form (text and LaTeX), the finite-difference
check, and the NumPy function on sizes other than the check's against a formula written here.
Where a document slips (seed 002: 1d divides, 1f writes a Kronecker product, 2a's M does not
follow), the test pins the corrected result and shows numerically that the slip is wrong.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import (
    DERIVATIONS, assert_close, call, derivation, numeric_gradient, result, rng, softmax,
)
from indexcalc.render.printing import to_text

ALL_FILES = sorted(p.stem for p in DERIVATIONS.glob("*.idx"))


def h(x):
    return np.sin(x) + 0.5 * x**2


def h_prime(x):
    return np.cos(x) + x


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_result_passes_its_check(name):
    """STYLE practice 8: every derived result checked numerically (central differences)."""
    derived = derivation(name)
    assert derived.results
    for res in derived.results:
        assert res.check.passed, (name, res.kind, res.wrt, res.check)
        assert res.check.max_rel_error < 1e-6, (name, res.wrt, res.check)


# --- seed 002, question 1 -----------------------------------------------------------------------------

def test_linear_layer_wrt_W():
    """Seed 002, 1a: dL/dW = (dL/dY)^T X."""
    res = result(derivation("linear_layer"), "W")
    assert to_text(res.index) == "sum_s dL_dY[s,i] * X[s,j]"
    assert res.matrix.text == "dL_dY.T @ X"
    assert res.matrix.latex == r"\left(\frac{\partial L}{\partial \mathbf{Y}}\right)^{T} \mathbf{X}"
    X, G = rng().normal(size=(7, 2)), rng(2).normal(size=(7, 6))
    assert_close(call(res, X=X, dL_dY=G, W=None, b=None), G.T @ X)


def test_linear_layer_wrt_b():
    """Seed 002, 1b: dL/db = 1^T dL/dY (the column sums of dL/dY)."""
    res = result(derivation("linear_layer"), "b")
    assert to_text(res.index) == "sum_s dL_dY[s,i]"
    assert res.matrix.text == "dL_dY.sum(axis=0)"
    assert res.matrix.latex == r"\mathbf{1}^{T} \frac{\partial L}{\partial \mathbf{Y}}"
    G = rng().normal(size=(7, 6))
    assert_close(call(res, dL_dY=G), G.sum(axis=0))


def test_linear_layer_wrt_X():
    """Seed 002, 1c: dL/dX = dL/dY W."""
    res = result(derivation("linear_layer"), "X")
    assert to_text(res.index) == "sum_n dL_dY[i,n] * W[n,j]"
    assert res.matrix.text == "dL_dY @ W"
    assert res.matrix.latex == r"\frac{\partial L}{\partial \mathbf{Y}} \mathbf{W}"
    W, G = rng().normal(size=(6, 2)), rng(2).normal(size=(7, 6))
    assert_close(call(res, W=W, dL_dY=G), G @ W)


def test_activation():
    """Seed 002, 1d: dL/dX = dL/dY ⊙ h'(X).  The document's middle line writes
    dL/dY_sn / (h'(X_sn) delta delta) -- a division; the derivative multiplies."""
    res = result(derivation("activation"), "X")
    assert to_text(res.index) == "dL_dY[i,j] * h'(X[i,j])"
    assert res.matrix.text == "dL_dY * h_prime(X)"
    assert r"\odot" in res.matrix.latex and r"\oslash" not in res.matrix.latex
    assert "/" not in res.numpy.source
    X, G = rng().normal(size=(2, 9)), rng(2).normal(size=(2, 9))
    got = call(res, X=X, dL_dY=G, h=h, h_prime=h_prime)
    assert_close(got, G * h_prime(X))
    # the document's division gives something else
    assert not np.allclose(got, G / h_prime(X))
    # and ours is the true gradient of L = sum(G * h(X))
    assert_close(got, numeric_gradient(lambda x: np.sum(G * h(x)), X), rtol=1e-5)


def test_softmax_jacobian():
    """Seed 002, 1e: dY_sc/dX_ij = delta_si Y_sc (delta_cj - Y_sj); four indices, so no matrix
    form (einsum), with the shape of Y followed by the shape of X (CONTRACT section 2)."""
    res = result(derivation("softmax"), "X", kind="jacobian")
    assert res.matrix is None
    X = rng().normal(size=(3, 6))
    Y = softmax(X)
    expected = np.einsum("si,sc,cj->scij", np.eye(3), Y, np.eye(6)) - \
        np.einsum("si,sc,sj->scij", np.eye(3), Y, Y)
    got = call(res, X=X)
    assert got.shape == (3, 6, 3, 6)
    assert_close(got, expected)
    assert_close(got, numeric_gradient(softmax, X), rtol=1e-5, atol=1e-8)


def test_softmax_gradient():
    """Seed 002, 1e, final answer: dL/dX = Y ⊙ (dL/dY - (dL/dY ⊙ Y) 1 1^T)."""
    res = result(derivation("softmax"), "X", kind="grad")
    assert to_text(res.index) == "Y[i,j] * (dL_dY[i,j] - sum_c dL_dY[i,c] * Y[i,c])"
    assert res.matrix.text.startswith("Y * (dL_dY - ")
    assert res.matrix.latex == (
        r"\mathbf{Y} \odot \left(\frac{\partial L}{\partial \mathbf{Y}} - "
        r"\left(\frac{\partial L}{\partial \mathbf{Y}} \odot \mathbf{Y}\right) "
        r"\mathbf{1} \mathbf{1}^{T}\right)")
    X, G = rng().normal(size=(8, 3)), rng(2).normal(size=(8, 3))
    Y = softmax(X)
    assert_close(call(res, X=X, dL_dY=G), Y * (G - (G * Y).sum(axis=1, keepdims=True)))
    assert_close(call(res, X=X, dL_dY=G), numeric_gradient(lambda x: np.sum(G * softmax(x)), X),
                 rtol=1e-5, atol=1e-8)


def test_cross_entropy_is_an_elementwise_division():
    """Seed 002, 1f: dL/dX = -(1/S) T ⊘ X.  The document writes T ⊗ X (a Kronecker product);
    the result is an elementwise division."""
    res = result(derivation("cross_entropy"), "X")
    assert to_text(res.index) == "-1/S * T[i,j] / X[i,j]"
    latex = res.matrix.latex
    assert r"\oslash" in latex and r"\otimes" not in latex
    assert latex.startswith(r"-\frac{1}{S}")
    gen = rng()
    X, T = gen.uniform(0.5, 1.5, size=(7, 4)), gen.uniform(0, 1, size=(7, 4))
    got = call(res, X=X, T=T)
    assert_close(got, -(T / X) / 7)
    assert_close(got, numeric_gradient(lambda x: -np.sum(T * np.log(x)) / 7, X), rtol=1e-5)
    # the document's Kronecker product does not even have the shape of X
    assert np.kron(T, X).shape != X.shape


# --- seed 002, question 2 ------------------------------------------------------------------------------

def one_hot(rows: int, classes: int, seed: int = 5) -> np.ndarray:
    labels = rng(seed).integers(0, classes, size=rows)
    return np.eye(classes)[labels]


def test_softmax_cross_entropy():
    """Seed 002, 2a: with one-hot rows of T the gradient of
    L = -1/S sum_{s,c} T_sc log softmax(Z)_sc is (Y - T)/S."""
    res = result(derivation("softmax_cross_entropy"), "Z")
    assert res.matrix.text == "(Y - T) / S"
    assert res.matrix.latex == r"\frac{1}{S} \left(\mathbf{Y} - \mathbf{T}\right)"
    Z, T = rng().normal(size=(6, 4)), one_hot(6, 4)
    assert_close(call(res, Z=Z, T=T), (softmax(Z) - T) / 6)


def test_softmax_cross_entropy_corrects_the_documents_M():
    """Seed 002, 2a: the document ends with alpha = 1/S and M = (T ⊙ Y) 1 1^T - T, i.e. the
    gradient -(1/S)(T - (T ⊙ Y) 1 1^T).  For one-hot T that is not the gradient; ours is."""
    res = result(derivation("softmax_cross_entropy"), "Z")
    S = 6
    Z, T = rng(11).normal(size=(S, 4)), one_hot(S, 4, seed=12)

    def loss(z):
        return -np.sum(T * np.log(softmax(z))) / S

    true_gradient = numeric_gradient(loss, Z)
    ours = call(res, Z=Z, T=T)
    Y = softmax(Z)
    documents = -(1 / S) * (T - (T * Y).sum(axis=1, keepdims=True) * np.ones((1, 4)))
    assert_close(ours, true_gradient, rtol=1e-5, atol=1e-8)
    assert not np.allclose(documents, true_gradient, atol=1e-3)


# --- seed 000 ------------------------------------------------------------------------------------------

def test_scores_single_datapoint():
    """Seed 000, single datapoint: dF/dW = x^T (grad_s F), an outer product x (dF/ds)^T."""
    res = result(derivation("scores_single"), "W")
    assert to_text(res.index) == "dF_ds[k] * x[j]"
    assert res.matrix.text == "np.outer(x, dF_ds)"
    assert res.matrix.latex == r"\mathbf{x} \left(\frac{\partial F}{\partial \mathbf{s}}\right)^{T}"
    x, G = rng().normal(size=7), rng(2).normal(size=2)
    assert_close(call(res, x=x, dF_ds=G), np.outer(x, G))


def test_scores_multiple_datapoints():
    """Seed 000, multiple datapoints: dF/dW = X^T grad_s L; and dF/dX = grad_s L W^T."""
    derived = derivation("scores_batch")
    gen = rng()
    X, W, G = gen.normal(size=(7, 2)), gen.normal(size=(2, 6)), gen.normal(size=(7, 6))
    res = result(derived, "W")
    assert to_text(res.index) == "sum_i dL_ds[i,l] * X[i,k]"
    assert res.matrix.text == "X.T @ dL_ds"
    assert_close(call(res, X=X, dL_ds=G), X.T @ G)
    res = result(derived, "X")
    assert res.matrix.text == "dL_ds @ W.T"
    assert_close(call(res, W=W, dL_ds=G), G @ W.T)


# --- seed 001 ------------------------------------------------------------------------------------------

def test_softmax_single_point():
    """Seed 001: dp_i/do_k = p_i (delta_ik - p_k) and dL/do = p - y for one-hot y."""
    derived = derivation("softmax_single")
    jac = result(derived, "o", kind="jacobian")
    assert jac.matrix is not None
    o = rng().normal(size=7)
    p = softmax(o)
    assert_close(call(jac, o=o), np.diag(p) - np.outer(p, p))
    res = result(derived, "o", kind="grad")
    assert to_text(res.index) == "p[k] - y[k]"
    assert res.matrix.text == "p - y"
    y = np.eye(7)[2]
    assert_close(call(res, o=o, y=y), p - y)
    assert_close(call(res, o=o, y=y), numeric_gradient(lambda v: -np.sum(y * np.log(softmax(v))), o),
                 rtol=1e-5, atol=1e-8)


# --- seed 003 ------------------------------------------------------------------------------------------

def _softmax_columns_inputs():
    gen = rng(21)
    M, K, N = 3, 5, 8
    X, W = gen.normal(size=(M, N)), gen.normal(size=(M, K))
    Y = np.eye(K)[:, gen.integers(0, K, size=N)]  # one-hot columns
    return X, W, Y


def test_softmax_columns():
    """Seed 003: grad E = X (S - Y)^T with S = softmax(W^T X) column by column."""
    res = result(derivation("softmax_columns"), "W")
    assert to_text(res.index) == "sum_n (S[l,n] - Y[l,n]) * X[i,n]"
    assert res.matrix is not None
    X, W, Y = _softmax_columns_inputs()
    S = softmax(W.T @ X, axis=0)
    assert_close(call(res, X=X, W=W, Y=Y), X @ (S - Y).T)

    def E(w):
        return -np.sum(Y * np.log(softmax(w.T @ X, axis=0)))

    assert_close(call(res, X=X, W=W, Y=Y), numeric_gradient(E, W), rtol=1e-5, atol=1e-8)


def test_softmax_columns_matrix_text_is_the_documents():
    """Seed 003, last line: grad E_in(W) = X (S - Y)^T."""
    res = result(derivation("softmax_columns"), "W")
    assert res.matrix.text == "X @ (S - Y).T"
    assert res.matrix.latex == r"\mathbf{X} \left(\mathbf{S} - \mathbf{Y}\right)^{T}"


def test_layer_norm_input_gradient_is_written_with_the_normalised_tensor():
    """dL/dX = (G - mean(G) - Y mean(G Y)) / sqrt(v + eps) (Ba et al. 2016; the textbook form
    the benchmark compares with): (X - mu) / sqrt(v + eps) folds back into Y, which needs
    sqrt(v + eps)^2 kept as it is (only a constant's square root squares away)."""
    from conftest import derivation, result
    from indexcalc.render.printing import to_text
    text = to_text(result(derivation("layer_norm"), "X").index)
    assert "Y[i,j] * (sum_d dL_dY[i,d] * Y[i,d])" in text and "mu" not in text
