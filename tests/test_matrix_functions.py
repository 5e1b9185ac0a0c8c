"""``inv(A)[i,j]``, ``det(A)`` and ``logdet(A)`` (CONTRACT section 3).

Each identity is checked twice: by the tool's own numeric check (complex step on the
forward definitions), and here against the Matrix Cookbook's matrix result (Petersen &
Pedersen, 2012) evaluated with NumPy, on well-conditioned random matrices.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import derivation, derive_text, result
from indexcalc.problem import InputError
from indexcalc.render.printing import to_latex, to_text
from indexcalc.syntax.idx import parse_text
from indexcalc.terms import MatrixFunc

RNG = np.random.default_rng(7)
N = 4
A = np.eye(N) + 0.3 * RNG.normal(size=(N, N))
B = RNG.normal(size=(N, N))
a, b = RNG.normal(size=N), RNG.normal(size=N)
VALUES = {"X": A, "B": B, "a": a, "b": b, "N": N}


def _call(r, values=VALUES):
    fn = eval(r.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    return fn(*(values[x] for x in r.numpy.args))


def _grad(body: str, wrt: str = "X"):
    d = derive_text(f"dims N={N}\ninput X[N,N], B[N,N], a[N], b[N]\nf = {body}\n"
                    f"grad f wrt {wrt}\n")
    (r,) = d.results
    assert r.check.passed, r.check.detail
    return r


X_INV = np.linalg.inv(A)


@pytest.mark.parametrize("body, expected, source", [
    ("logdet(X)", X_INV.T, "eq. 57: d log|det X| / dX = X^-T"),
    ("det(X)", np.linalg.det(A) * X_INV.T, "eq. 49: d det X / dX = det(X) X^-T"),
    ("sum_{i,j} a[i] inv(X)[i,j] b[j]", -X_INV.T @ np.outer(a, b) @ X_INV.T,
     "eq. 61: d a^T X^-1 b / dX = -X^-T a b^T X^-T"),
    ("sum_{i,j,k} B[i,j] inv(X)[j,k] B[k,i]", -(X_INV @ B @ B @ X_INV).T,
     "eq. 124: d tr(A X^-1 B) / dX = -(X^-1 B A X^-1)^T, with A = B"),
    ("sum_i inv(X)[i,i]", -(X_INV @ X_INV).T, "eq. 64 at A = 0: d tr(X^-1) / dX = -X^-2T"),
])
def test_cookbook_identities(body, expected, source):
    r = _grad(body)
    np.testing.assert_allclose(_call(r), expected, rtol=1e-10, atol=1e-12, err_msg=source)
    assert r.matrix is not None, source  # a textbook matrix form (checked by the tool)


def test_each_rule_is_one_named_step_with_the_cookbook_equation():
    r = _grad("logdet(X) + det(X) + sum_{i,j} a[i] inv(X)[i,j] a[j]")
    steps = {s.rule: s.reason for blk in r.blocks for s in blk.steps}
    assert "eq. 57" in steps["derivative of a log-determinant"]
    assert "eq. 49" in steps["derivative of a determinant"]
    assert "eq. 59" in steps["derivative of an inverse"]


def test_a_product_with_the_inverse_is_a_solve():
    r = _grad("sum_{i,j} b[i] inv(X)[i,j] a[j]", wrt="b")
    assert "np.linalg.solve(X, a)" in r.numpy.source and "inv" not in r.numpy.source
    np.testing.assert_allclose(_call(r), np.linalg.solve(A, a), rtol=1e-12)
    assert r.matrix.text == "np.linalg.inv(X) @ a"  # the displayed form as a textbook has it


def test_printing():
    p = parse_text("dims N\ninput S[N,N]\nf = logdet(S) + det(S) + sum_i inv(S)[i,i]\n")
    body = p.definitions["f"].body
    texts = {to_text(t) for t in body.walk() if isinstance(t, MatrixFunc)}
    assert texts == {"logdet(S)", "det(S)", "inv(S)[i,i]"}
    latex = to_latex(body)
    assert "\\log\\lvert \\mathbf{S}\\rvert" in latex and "\\det \\mathbf{S}" in latex


@pytest.mark.parametrize("line, message, column", [
    ("f = det(W)", "det needs a square matrix; W is W[N,M]", 9),
    ("f = det(Z)", "Z", 9),
    ("f = inv(S)", "'[' and two indices after inv(S)", 11),
    ("f = inv(S)[i] a[i]", "inv(S) takes two indices", 12),
    ("f = det S", "'(' after det", 9),
])
def test_bad_matrix_functions_are_bad_input_at_their_place(line, message, column):
    with pytest.raises(InputError) as caught:
        parse_text(f"dims N, M\ninput S[N,N], W[N,M], a[N]\n{line}\ngrad f wrt S\n", "f.idx")
    assert message in str(caught.value)
    assert (caught.value.location.line, caught.value.location.column) == (3, column)


def test_the_check_draws_inverted_inputs_well_conditioned_and_says_so():
    r = _grad("logdet(X)")
    assert "drawn well-conditioned" in r.check.detail


def test_the_gp_marginal_likelihood_gradients():
    """Rasmussen & Williams (2006) eq. 5.9: dL/dtheta = (1/2) tr((K^-1 - al al^T) dK/dtheta)
    with al = K^-1 y, for the negative log marginal likelihood."""
    d = derivation("gaussian_process")
    rng = np.random.default_rng(3)
    X, y, ell, s = rng.normal(size=(6, 2)), rng.normal(size=6), 0.8, 0.3
    sq = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    rbf = np.exp(-sq / (2 * ell**2))
    K = rbf + s**2 * np.eye(6)
    Ki = np.linalg.inv(K)
    al = Ki @ y
    inner = Ki - np.outer(al, al)
    values = {"X": X, "y": y, "ell": ell, "s": s, "Kx": K, "N": 6, "D": 2}
    want = {"ell": 0.5 * np.sum(inner * (rbf * sq / ell**3)),
            "s": 0.5 * np.sum(inner * (2 * s * np.eye(6))), "y": al}
    for wrt, value in want.items():
        r = result(d, wrt)
        assert r.check.passed
        np.testing.assert_allclose(_call(r, values), value, rtol=1e-9, atol=1e-12)


def test_the_full_covariance_gaussian_nll_gradients():
    d = derivation("gaussian_nll_full")
    rng = np.random.default_rng(4)
    x, mu = rng.normal(size=(5, 3)), rng.normal(size=3)
    L0 = rng.normal(size=(3, 3))
    S = L0 @ L0.T + np.eye(3)
    r = x - mu
    Si = np.linalg.inv(S)
    values = {"x": x, "mu": mu, "S": S, "r": r, "N": 5, "D": 3}
    np.testing.assert_allclose(_call(result(d, "mu"), values), -Si @ r.sum(axis=0), rtol=1e-10)
    want_S = 0.5 * (5 * Si - Si @ r.T @ r @ Si)  # Matrix Cookbook eqs. 57 and 61, S symmetric
    np.testing.assert_allclose(_call(result(d, "S"), values), want_S, rtol=1e-10)


def test_a_sum_of_diagonal_entries_reads_as_a_trace():
    """d log|det(A + s I)| / ds = tr((A + s I)^-1) (Matrix Cookbook eq. 43 with eq. 57: the
    chain rule through every entry of A + s I leaves sum_j inv(M)_jj): the matrix form is
    the trace, checked by the tool and against NumPy here."""
    d = derive_text("""
dims N=4
input A[N,N], s
M[i,j] = A[i,j] + s * delta(i,j)
f = logdet(M)
grad f wrt s
""")
    (r,) = d.results
    assert r.check.passed and r.matrix is not None
    assert r.matrix.text == "np.trace(np.linalg.inv(M))"
    assert "\\operatorname{tr}" in r.matrix.latex
    rng = np.random.default_rng(2)
    A = np.eye(4) + 0.2 * rng.normal(size=(4, 4))
    fn = eval(r.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    np.testing.assert_allclose(fn(A, 0.3), np.trace(np.linalg.inv(A + 0.3 * np.eye(4))),
                               rtol=1e-12)
