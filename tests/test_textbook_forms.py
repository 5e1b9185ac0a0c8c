"""Matrix forms as a textbook writes them (issue 13): factored, transposes where they are
fewest, sums over an axis and broadcasts as NumPy users write them, an inline softmax named,
assumptions used inside sums over several indices.  Every form here is also checked
numerically by the pipeline (``check.passed``)."""
from __future__ import annotations

import pytest

from conftest import derive_text


def matrix(text: str, k: int = 0):
    r = derive_text(text).results[k]
    assert r.check.passed, r.check.detail
    assert r.matrix is not None, "no matrix form"
    return r.matrix


def test_seed_003_as_the_document_writes_it():
    """Seed 003: E = sum_{n,k} 1{y_n = k} (log sum_j e^{w_j^T x_n} - w_k^T x_n) with one-hot
    columns of Y; the document's (empirical) answer is X (S(X) - Y)^T."""
    m = matrix("""
        dims M, N, K
        input X[M,N], W[M,K], Y[K,N]
        assume sum_k Y[k,n] = 1
        E = sum_{n,k} Y[k,n] * (log(sum_j exp(sum_m W[m,j] X[m,n])) - sum_m W[m,k] X[m,n])
        grad E wrt W
    """)
    assert m.text == "X @ (S - Y).T"
    assert m.where == (("S", "np.exp(W.T @ X) / np.exp(W.T @ X).sum(axis=0)"),)
    assert m.latex == r"\mathbf{X} \left(\mathbf{S} - \mathbf{Y}\right)^{T}"
    assert m.named[0][0] == "S" and r"\exp" in m.named[0][1]


def test_the_softmax_name_avoids_the_files_names():
    m = matrix("""
        dims M, N, K
        input X[M,N], W[M,K], Y[K,N], S[K,K], P[K,K]
        assume sum_k Y[k,n] = 1
        E = sum_{n,k} Y[k,n] * (log(sum_j exp(sum_m W[m,j] X[m,n])) - sum_m W[m,k] X[m,n]) + sum_{i,j} S[i,j] P[i,j]
        grad E wrt W
    """)
    assert m.text == "X @ (A - Y).T" and m.where[0][0] == "A"


def test_an_assumption_is_used_inside_a_sum_over_several_indices():
    """sum_{n,k} Y_kn f_n = sum_n f_n once sum_k Y_kn = 1."""
    r = derive_text("""
        dims N, K
        input Y[K,N], f[N], a[N]
        assume sum_k Y[k,n] = 1
        L = sum_{n,k} Y[k,n] * f[n] * a[n]
        grad L wrt a
    """).results[0]
    assert r.check.passed
    assert r.matrix.text == "f"


def test_products_with_a_common_factor_are_gathered():
    """Matrix Cookbook eq. 97: d(x^T B x)/dx = (B + B^T) x, here for a matrix X."""
    m = matrix("""
        dims N, K
        input X[N,K], B[N,N]
        f = sum_{i,j,k} X[i,k] B[i,j] X[j,k]
        grad f wrt X
    """)
    assert m.text == "(B + B.T) @ X"
    assert m.latex == r"\left(\mathbf{B} + \mathbf{B}^{T}\right) \mathbf{X}"


@pytest.mark.parametrize("body, wrt, text", [
    ("Y[s,n] = sum_m X[s,m] W[n,m] + b[n]", "b", "dL_dY.sum(axis=0)"),   # seed 002, 1b
    ("Y[s,n] = X[s,n] * b[n]", "X", "dL_dY * b"),                          # not dL_dY @ np.diag(b)
    ("Y[s,n] = X[s,n] - a[s]", "a", "-dL_dY.sum(axis=1)"),
    ("Y[s,n] = X[s,n] * a[s]", "X", "a[:, None] * dL_dY"),
])
def test_sums_over_an_axis_and_broadcasts_as_numpy_writes_them(body, wrt, text):
    m = matrix(f"""
        dims S, M, N
        input X[S,N], W[N,N], b[N], a[S]
        {body}
        L = loss(Y)
        grad L wrt {wrt}
    """)
    assert m.text == text


def test_a_zero_gradient_prints_as_zeros():
    m = matrix("""
        dims N, D
        input X[N,D], W[D,D]
        Y[n,d] = 2 * X[n,d]
        L = loss(Y)
        grad L wrt W
    """)
    assert m.text == "np.zeros((D, D))"


def test_the_transpose_of_a_difference_is_taken_once():
    """(A^T - B^T) prints (A - B)^T: one transpose instead of two."""
    m = matrix("""
        dims N, K
        input X[N,K], A[K,N], B[K,N]
        f = sum_{n,k} X[n,k] * (A[k,n] - B[k,n])
        grad f wrt X
    """)
    assert m.text == "(A - B).T"


def test_outer_products_with_a_common_matrix_are_gathered():
    """Matrix Cookbook eq. 77: d(b^T X^T X c)/dX = X (b c^T + c b^T)."""
    m = matrix("""
        dims S, N
        input X[S,N], b[N], c[N]
        f = sum_{s,i,j} b[i] X[s,i] X[s,j] c[j]
        grad f wrt X
    """)
    assert m.text == "X @ (np.outer(c, b) + np.outer(b, c))"


def test_a_vector_on_the_left_is_turned_to_find_a_common_factor():
    """Matrix Cookbook eq. 83: d((Xb + c)^T D (Xb + c))/dX = (D + D^T)(Xb + c) b^T."""
    m = matrix("""
        dims P, N
        input X[P,N], b[N], c[P], D[P,P]
        f = sum_{p,q} (sum_i X[p,i] b[i] + c[p]) * D[p,q] * (sum_j X[q,j] b[j] + c[q])
        grad f wrt X
    """)
    assert m.text == "np.outer((D + D.T) @ (X @ b + c), b)"


def test_no_double_negation():
    """Logistic regression, labels +-1: sigmoid(-u) prints 1 / (1 + np.exp(u))."""
    m = matrix("""
        dims N, D
        input X[N,D], w[D], y[N]
        f = sum_n log(1 + exp(-y[n] * sum_d X[n,d] w[d]))
        grad f wrt w
    """)
    assert "-(-" not in m.text and "np.exp(y * (X @ w))" in m.text


def test_a_sum_of_a_product_of_two_vectors_is_a_dot_product():
    """d(sqrt(x^T x))/dx = x / sqrt(x @ x): not (x ** 2).sum()."""
    m = matrix("""
        dims N
        input x[N]
        f = sqrt(sum_n x[n] * x[n])
        grad f wrt x
    """)
    assert m.text == "x / np.sqrt(x @ x)"


def test_a_product_with_a_sigmoid_divides():
    """A softplus layer: dL/dZ * sigmoid(Z) reads dL/dZ / (1 + exp(-Z))."""
    m = matrix("""
        dims N, D, H
        input X[N,D], W[D,H]
        P[n,h] = softplus(sum_d X[n,d] W[d,h])
        L = loss(P)
        grad L wrt W
    """)
    assert m.text == "X.T @ (dL_dP / (1 + np.exp(-(X @ W))))"
