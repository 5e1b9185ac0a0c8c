"""The generated NumPy function (CONTRACT section 2) and the finite-difference check.

* the lambda works for any sizes: hypothesis draws shapes other than the check's and the
  result is compared with a NumPy formula written here;
* ``numpy.args``: upstream gradients, inputs, callables of unspecified functions, dims no
  argument carries, and nothing else; the source reads no other name than ``np``;
* result shapes: wrt (grad), of + wrt (jacobian), wrt + wrt (hessian);
* the check can fail: a deliberately wrong lambda is caught.
"""
from __future__ import annotations

import ast
import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import (
    DERIVATIONS, assert_close, call, compiled, derivation, derive_text, lambda_free_names,
    numeric_gradient, problem, result, rng, softmax,
)
from indexcalc.check import numeric
from indexcalc.check.numeric import check
from indexcalc.derivation import NumpyFunction

ALL_FILES = sorted(p.stem for p in DERIVATIONS.glob("*.idx"))
FAST = settings(max_examples=15, deadline=None, database=None)
size = st.integers(min_value=1, max_value=7)

COLUMNS = """
    dims S, M, N
    input X[M,S], W[N,M], b[N]
    Y[n,s] = W[n,m] X[m,s] + b[n]
    L = loss(Y)
    grad L wrt W, X, b
"""

SOFTMAX_CE = """
    dims S, C, M
    input X[S,M], W[C,M], T[S,C]
    assume sum_c T[s,c] = 1
    Z[s,c] = X[s,m] W[c,m]
    Y[s,c] = exp(Z[s,c]) / sum_k exp(Z[s,k])
    L = -1/S sum_{s,c} T[s,c] * log(Y[s,c])
    grad L wrt W
"""

GRAM = """
    dims S, M
    input X[S,M], lam
    G[a,b] = X[s,a] X[s,b]
    f = lam * sum_{a,b} G[a,b] * G[a,b]
    grad f wrt X
"""

MLP = """
    dims S, A, B, C
    input X[S,A], W1[B,A], W2[C,B]
    function h
    H[s,b] = h(X[s,a] W1[b,a])
    Y[s,c] = H[s,b] W2[c,b]
    L = loss(Y)
    grad L wrt W1, X
"""


@functools.lru_cache(maxsize=None)
def derived(text: str):
    return derive_text(text)


def h(x):
    return np.tanh(x) + 0.1 * x


def h_prime(x):
    return 1 - np.tanh(x) ** 2 + 0.1


# --- any sizes --------------------------------------------------------------------------------------

@FAST
@given(S=size, M=size, N=size, seed=st.integers(0, 2**16))
def test_columns_layout_lambda_works_for_any_sizes(S, M, N, seed):
    gen = np.random.default_rng(seed)
    X, W, b, G = gen.normal(size=(M, S)), gen.normal(size=(N, M)), gen.normal(size=N), \
        gen.normal(size=(N, S))
    d = derived(COLUMNS)
    values = dict(X=X, W=W, b=b, dL_dY=G)
    assert_close(call(result(d, "W"), **values), G @ X.T)
    assert_close(call(result(d, "X"), **values), W.T @ G)
    assert_close(call(result(d, "b"), **values), G.sum(axis=1))


@FAST
@given(S=size, C=st.integers(2, 6), M=size, seed=st.integers(0, 2**16))
def test_softmax_cross_entropy_lambda_works_for_any_sizes(S, C, M, seed):
    """Seed 002 2a through a linear layer: dL/dW = ((Y - T)/S)^T X for one-hot T."""
    gen = np.random.default_rng(seed)
    X, W = gen.normal(size=(S, M)), gen.normal(size=(C, M))
    T = np.eye(C)[gen.integers(0, C, size=S)]
    Y = softmax(X @ W.T)
    assert_close(call(result(derived(SOFTMAX_CE), "W"), X=X, W=W, T=T), ((Y - T) / S).T @ X)


@FAST
@given(S=size, M=size, seed=st.integers(0, 2**16))
def test_gram_lambda_works_for_any_sizes(S, M, seed):
    """f = lam ||X^T X||_F^2: df/dX = 4 lam X X^T X."""
    gen = np.random.default_rng(seed)
    X, lam = gen.normal(size=(S, M)), float(gen.uniform(0.5, 2))
    assert_close(call(result(derived(GRAM), "X"), X=X, lam=lam), 4 * lam * X @ X.T @ X)


@FAST
@given(S=size, A=size, B=size, C=size, seed=st.integers(0, 2**16))
def test_mlp_with_an_unspecified_activation_works_for_any_sizes(S, A, B, C, seed):
    gen = np.random.default_rng(seed)
    X, W1, W2, G = (gen.normal(size=(S, A)), gen.normal(size=(B, A)), gen.normal(size=(C, B)),
                    gen.normal(size=(S, C)))
    d = derived(MLP)
    values = dict(X=X, W1=W1, W2=W2, dL_dY=G, h=h, h_prime=h_prime)
    local = (G @ W2) * h_prime(X @ W1.T)
    assert_close(call(result(d, "W1"), **values), local.T @ X)
    assert_close(call(result(d, "X"), **values), local @ W1)


def test_new_problems_pass_their_checks_on_several_seeds():
    """Every result derived above, checked by finite differences on several random worlds."""
    for text in (COLUMNS, SOFTMAX_CE, GRAM, MLP):
        d = derived(text)
        for res in d.results:
            assert res.check.passed, (res.wrt, res.check)
            goal = next(g for g in d.problem.goals if g.wrt == res.wrt and g.kind == res.kind)
            for seed in (1, 2, 3):
                again = check(goal, res.numpy, d.problem, seed=seed)
                assert again.passed and again.max_rel_error < 1e-6, (res.wrt, seed, again)


# --- numpy.args ---------------------------------------------------------------------------------------

def _category(name: str, prob) -> int:
    if name.startswith("d") and "_d" in name and name not in prob.inputs:
        return 0  # upstream gradient
    if name in prob.inputs:
        return 1
    if name in prob.functions or name.split("_prime")[0] in prob.functions:
        return 2
    if name in prob.dims:
        return 3
    raise AssertionError(f"argument {name!r} is none of the kinds CONTRACT section 2 allows")


def all_results():
    out = [(name, res, derivation(name).problem) for name in ALL_FILES
           for res in derivation(name).results]
    for text in (COLUMNS, SOFTMAX_CE, GRAM, MLP):
        d = derived(text)
        out += [("new", res, d.problem) for res in d.results]
    return out


def test_numpy_args_follow_the_contract():
    """CONTRACT section 2: arguments are upstream gradients dL_dY, input tensors and scalar
    inputs by their declared names, callables h / h_prime, and dims no argument carries;
    upstream gradients first (as in ``lambda dL_dY, X``), inputs in declaration order; the
    source reads only ``np`` and its own arguments."""
    for name, res, prob in all_results():
        args = list(res.numpy.args)
        assert len(args) == len(set(args)), (name, args)
        assert res.numpy.source.startswith(f"lambda {', '.join(args)}:"), (name, res.numpy.source)
        categories = [_category(a, prob) for a in args]
        assert categories == sorted(categories), (name, res.wrt, args)
        inputs = [a for a in args if a in prob.inputs]
        assert inputs == [i for i in prob.inputs if i in inputs], (name, args)
        assert lambda_free_names(res.numpy.source) <= {"np"}, (name, res.numpy.source)


def test_numpy_args_of_the_contract_example():
    """CONTRACT section 2: ``"numpy": {"source": "lambda dL_dY, X: dL_dY.T @ X",
    "args": ["dL_dY", "X"]}`` for the linear layer's gradient with respect to W."""
    res = result(derivation("linear_layer"), "W")
    assert res.numpy.args == ("dL_dY", "X")
    assert res.numpy.source == "lambda dL_dY, X: dL_dY.T @ X"


def test_numpy_args_of_an_unspecified_function_are_callables():
    """CONTRACT section 2: for an unspecified function h the callables h / h_prime are
    arguments (seed 002, 1d)."""
    res = result(derivation("activation"), "X")
    assert "h_prime" in res.numpy.args
    assert set(res.numpy.args) <= {"dL_dY", "X", "h", "h_prime"}
    X, G = rng().normal(size=(2, 3)), rng(2).normal(size=(2, 3))
    assert_close(call(res, X=X, dL_dY=G, h=np.sin, h_prime=np.cos), G * np.cos(X))


def test_a_dim_no_argument_carries_becomes_an_argument():
    """CONTRACT section 2: "a dim that no argument carries becomes an extra argument named
    after the dim".  df/dx_i = K: neither K nor N is the size of an argument."""
    res = result(derive_text("""
        dims N, K
        input x[N]
        f = sum_n x[n] * K
        grad f wrt x
    """), "x")
    assert {"K", "N"} <= set(res.numpy.args)
    assert_close(call(res, K=4, N=6, x=np.zeros(6)), np.full(6, 4.0))
    assert res.check.passed, res.check


def test_every_loss_argument_gets_an_upstream_gradient():
    """CONTRACT section 2: for every loss(...) argument the upstream gradient d<loss>_d<arg>."""
    d = derive_text("""
        dims S, M
        input X[S,M], W[M,M]
        Y[s,n] = X[s,m] W[m,n]
        L = loss(Y, X)
        grad L wrt X
    """)
    res = result(d, "X")
    assert res.numpy.args[:2] == ("dL_dY", "dL_dX")
    gen = rng(3)
    X, W, GY, GX = (gen.normal(size=(5, 2)), gen.normal(size=(2, 2)), gen.normal(size=(5, 2)),
                    gen.normal(size=(5, 2)))
    assert_close(call(res, X=X, W=W, dL_dY=GY, dL_dX=GX), GY @ W.T + GX)
    assert res.check.passed


# --- result shapes ----------------------------------------------------------------------------------

def test_result_shapes():
    """CONTRACT section 2: wrt.shape (grad), of.shape + wrt.shape (jacobian),
    wrt.shape + wrt.shape (hessian) -- at sizes other than the check's."""
    d = derive_text("""
        dims N, M
        input x[M], A[N,M]
        y[i] = A[i,j] x[j]
        f = sum_i y[i] * y[i]
        jacobian y wrt x, A
        grad f wrt A
        hessian f wrt x
    """)
    gen = rng(4)
    x, A = gen.normal(size=6), gen.normal(size=(2, 6))
    jx = call(result(d, "x", "jacobian"), x=x, A=A, N=2, M=6)
    assert_close(jx, A)
    jA = call(result(d, "A", "jacobian"), x=x, A=A, N=2, M=6)
    assert jA.shape == (2, 2, 6)
    assert_close(jA, np.einsum("ik,l->ikl", np.eye(2), x))
    gA = call(result(d, "A", "grad"), x=x, A=A, N=2, M=6)
    assert_close(gA, 2 * np.outer(A @ x, x))
    hx = call(result(d, "x", "hessian"), x=x, A=A, N=2, M=6)
    assert hx.shape == (6, 6)
    assert_close(hx, 2 * A.T @ A)
    for res in d.results:
        assert res.check.passed, (res.kind, res.wrt, res.check)


def test_hessian_through_a_defined_scalar():
    """d^2 g/dx dx for g = f^2, f = x^T x: 4 f I + 8 x x^T (the definition of f must be
    expanded in the second derivative, not treated as a constant)."""
    d = derive_text("""
        dims N
        input x[N]
        f = sum_i x[i] * x[i]
        g = f * f
        hessian g wrt x
    """)
    res = result(d, "x", "hessian")
    x = rng(5).normal(size=4)
    assert_close(call(res, x=x, N=4), 4 * (x @ x) * np.eye(4) + 8 * np.outer(x, x))
    assert res.check.passed, res.check


def test_a_gradient_constant_along_its_axis_has_the_wrt_shape():
    d = derive_text("""
        dims N, M
        input x[N], y[M]
        f = sum_{n,m} x[n] * y[m]
        grad f wrt x
    """)
    res = result(d, "x")
    y = rng(6).normal(size=3)
    assert_close(call(res, x=np.zeros(5), y=y, N=5, M=3), np.full(5, y.sum()))
    assert res.check.passed, res.check


# --- the check can fail --------------------------------------------------------------------------------

def _linear_layer_goal():
    d = derivation("linear_layer")
    return d.problem, next(g for g in d.problem.goals if g.wrt == "W")


def test_check_passes_an_independently_written_correct_lambda():
    prob, goal = _linear_layer_goal()
    ok = check(goal, NumpyFunction("lambda G, X: np.einsum('sn,sm->nm', G, X)", ("dL_dY", "X")),
               prob)
    assert ok.passed and ok.max_rel_error < 1e-6


@pytest.mark.parametrize("source, args", [
    ("lambda dL_dY, X: 1.01 * (dL_dY.T @ X)", ("dL_dY", "X")),  # 1 % off
    ("lambda dL_dY, X: (dL_dY.T @ X)[::-1]", ("dL_dY", "X")),  # rows swapped
    ("lambda dL_dY, X: X.T @ dL_dY", ("dL_dY", "X")),  # transposed: wrong shape
    ("lambda dL_dY, X: dL_dY.T @ X @ np.eye(7)", ("dL_dY", "X")),  # raises
    ("lambda dL_dY, X: np.full((5, 4), np.nan)", ("dL_dY", "X")),  # not finite
])
def test_check_fails_a_wrong_lambda(source, args):
    """The check must be able to fail: a deliberately wrong derived result is caught."""
    prob, goal = _linear_layer_goal()
    outcome = check(goal, NumpyFunction(source, args), prob)
    assert outcome.passed is False, (source, outcome)


def test_a_wrong_gradient_of_small_size_fails():
    """Differences are relative to the derivatives compared, not to max(them, 1): for
    f = 1e-7 sum v^2 the gradient 2e-7 v is of size 1e-7, and 0 passed as its value."""
    prob = problem("""
        dims N
        input v[N]
        f = 1e-7 * sum_i v[i]^2
        grad f wrt v
    """)
    goal = prob.goals[0]
    assert check(goal, NumpyFunction("lambda v: 2e-7 * v", ("v",)), prob).passed
    assert not check(goal, NumpyFunction("lambda v: 0 * v", ("v",)), prob).passed
    assert not check(goal, NumpyFunction("lambda v: 2.00001e-7 * v", ("v",)), prob).passed


def test_a_wrong_small_entry_beside_large_ones_fails():
    """Against the complex step an entry is judged on its own digits down to SMALL_ENTRY of
    the largest: an entry 1e-4 of the largest and 1 % off fails (relative to the largest it
    is 1e-6 off and passed); against a Hessian's differences, which carry truncation error
    of the size of the largest entry, the largest entry alone sets the scale."""
    expected = np.array([1.0, -0.5, 1e-4])
    wrong = np.array([1.0, -0.5, 1.01e-4])
    exact = numeric._Attempt("complex step", None, expected, 0.0)
    assert numeric._Verdict.of(exact, [wrong], [0.0]).worst > numeric.TOLERANCE
    assert numeric._Verdict.of(exact, [expected * (1 + 1e-9)], [0.0]).worst < numeric.TOLERANCE
    stepped = numeric._Attempt("central differences of complex steps", 1e-4, expected, 0.0)
    assert numeric._Verdict.of(stepped, [wrong], [0.0]).worst < numeric.TOLERANCE


def test_check_fails_a_wrong_hessian():
    """d^2(x^T A x) = A + A^T (Matrix Cookbook (81)); A alone must fail for a general A."""
    prob = problem("""
        dims N
        input x[N], A[N,N]
        f = x[i] A[i,j] x[j]
        hessian f wrt x
    """)
    goal = prob.goals[0]
    assert check(goal, NumpyFunction("lambda A: A + A.T", ("A",)), prob).passed
    assert not check(goal, NumpyFunction("lambda A: A", ("A",)), prob).passed
    assert not check(goal, NumpyFunction("lambda A: 2 * A", ("A",)), prob).passed


def test_check_fails_a_wrong_gradient_through_an_assumption():
    """Seed 002 2a: the document's -(1/S)(T - (T ⊙ Y) 1 1^T) fails the check; (Y - T)/S passes."""
    d = derivation("softmax_cross_entropy")
    goal = d.problem.goals[0]
    res = result(d, "Z")
    assert check(goal, res.numpy, d.problem).passed
    documents = NumpyFunction(
        "lambda Z, T: (lambda Y: -(T - (T * Y).sum(axis=1, keepdims=True)) / Z.shape[0])"
        "(np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True))", ("Z", "T"))
    assert not check(goal, documents, d.problem).passed


def test_generated_lambda_is_a_plain_expression():
    """CONTRACT section 2: numpy.source is a lambda using only np; it compiles without any
    other name in scope and returns an ndarray-compatible value."""
    res = result(derivation("softmax"), "X", "grad")
    fn = compiled(res)
    assert callable(fn)
    X, G = rng().normal(size=(2, 3)), rng(2).normal(size=(2, 3))
    Y = softmax(X)
    assert_close(fn(G, X) if res.numpy.args == ("dL_dY", "X") else call(res, X=X, dL_dY=G),
                 Y * (G - (G * Y).sum(axis=1, keepdims=True)))
    assert_close(call(res, X=X, dL_dY=G),
                 numeric_gradient(lambda x: np.sum(G * softmax(x)), X), rtol=1e-5, atol=1e-8)


# --- the displayed matrix form is checked too (CONTRACT section 2, matrix.where) -------------

def test_check_fails_a_wrong_displayed_form_beside_a_right_lambda():
    """A printer bug in matrix.text must fail the check even when the lambda is right."""
    from indexcalc.derivation import MatrixForm

    prob, goal = _linear_layer_goal()
    res = result(derivation("linear_layer"), "W")
    assert check(goal, res.numpy, prob, displayed=res.matrix).passed
    for text in ("X.T @ dL_dY", "dL_dY.T @ X * 1.01", "dL_dY.T @ Z", "sqrt(S) * dL_dY.T @ X"):
        shown = MatrixForm(res.matrix.expr, text, res.matrix.latex, ())
        outcome = check(goal, res.numpy, prob, displayed=shown)
        assert not outcome.passed, (text, outcome)
        assert "displayed" in outcome.detail, outcome.detail


@pytest.mark.parametrize("name", ALL_FILES)
def test_displayed_form_of_every_shipped_result_is_checked_numpy(name):
    """matrix.text evaluated with matrix.where (dims by name) gives the lambda's value."""
    from indexcalc.check.numeric import evaluate_displayed, lambda_arguments, make_world

    d = derivation(name)
    world = make_world(d.problem)
    for res in d.results:
        assert res.check.passed, (name, res.wrt, res.check)
        if res.matrix is None:
            continue
        assert "displayed matrix form" in res.check.detail
        got = evaluate_displayed(res.matrix, world)
        expected = compiled(res)(*lambda_arguments(res.numpy, world))
        assert got.shape == np.shape(expected), (name, res.wrt)
        assert_close(got, expected)


def test_power_of_a_power_is_bracketed():
    """(f^3)^(2/3) in code is (f ** 3) ** (2 / 3): Python's ** groups to the right, so the
    unbracketed f ** 3 ** (2/3) is another number (the check failed on a right result)."""
    d = derive_text("""
        dims N=4
        input c[N], a[N], x[N], b[N]
        f = (c[i] a[i] * x[j] b[j])^(1/3)
        grad f wrt x
        hessian f wrt x
    """)
    for res in d.results:
        assert res.check.passed, (res.kind, res.check)
        assert "** 3 ** " not in res.numpy.source and "** 3 ** " not in res.matrix.text


def test_third_and_fourth_derivatives_of_a_declared_function_are_arguments():
    """f = sum_n h''(x_n): the gradient needs h''' (h_prime3) and the Hessian h''''."""
    d = derive_text("""
        dims N=4
        input x[N]
        function h
        f = sum_n h''(x[n])
        grad f wrt x
        hessian f wrt x
    """)
    grad, hess = d.results
    assert grad.check.passed and hess.check.passed
    assert grad.numpy.args == ("x", "h", "h_prime", "h_prime3")
    assert hess.numpy.args == ("x", "h", "h_prime", "h_prime4")
    x = rng().normal(size=4)
    assert_close(call(grad, x=x, h=np.sin, h_prime=np.cos, h_prime3=lambda v: -np.cos(v)),
                 -np.cos(x))


def test_attention_matrix_text_is_numpy():
    """attention.idx: the scale 1/sqrt(D) reads np.sqrt(D) (it read sqrt(D), not NumPy)."""
    for res in derivation("attention").results:
        assert "sqrt(" not in res.matrix.text.replace("np.sqrt(", "")
        assert res.check.passed


def test_a_user_name_that_is_a_python_builtin_does_not_break_the_code():
    """input float, a: the generated code names no builtin (dtype=np.float64), so a user's
    float is just an argument (it failed inside the lambda)."""
    res = derive_text("""
        input float, a
        f = float * a^2
        grad f wrt a
    """).results[0]
    assert res.check.passed, res.check
    assert res.numpy.args == ("float", "a")
    assert float(compiled(res)(3.0, 2.0)) == 12.0


def test_names_python_needs_are_renamed_in_the_generated_code():
    """np, keywords and a name ending in _ next to one: generated code spells them np_,
    lambda_, lambda__ (naming.code_name), the LaTeX keeps the user's names (issue 9)."""
    res_all = derive_text("""
        dims N, def
        input np[N], lambda[N,def], lambda_[def], for
        function yield
        class[n] = yield(sum_d lambda[n,d] lambda_[d]) + for
        f = sum_n np[n] * class[n]^2
        grad f wrt np, lambda, lambda_, for
    """).results
    for res in res_all:
        assert res.check.passed, (res.wrt, res.check)
        assert res.check.checked
    by_wrt = {r.wrt: r for r in res_all}
    args = by_wrt["lambda"].numpy.args
    assert set(args) >= {"np_", "lambda_", "lambda__", "for_", "yield_", "yield_prime"}
    shown = by_wrt["np"].matrix
    assert shown.text == "class_ ** 2" and "\\mathbf{class}" in shown.latex
    assert shown.where == (("class_", "yield_(lambda_ @ lambda__) + for_"),)
    compile(by_wrt["lambda"].numpy.source, "<test>", "eval")  # valid Python


def test_an_extra_dim_argument_named_like_a_keyword():
    res = derive_text("""
        dims in
        input x
        f = in * x^2
        grad f wrt x
    """).results[0]
    assert res.check.passed, res.check
    assert res.numpy.args == ("x", "in_")
    assert float(compiled(res)(3.0, 4)) == 24.0


# --- the order of the work (issue 10, item 6) ----------------------------------------------

def run_measuring_memory(r, arrays: dict):
    """The generated lambda of ``r`` on ``arrays`` (by argument name), and the peak memory
    (bytes) NumPy allocated while it ran."""
    import tracemalloc

    fn = compiled(r)
    tracemalloc.start()
    try:
        got = fn(*(arrays[a] for a in r.numpy.args))
        return got, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


CRF = """
dims S
input u[S], v[S], w[S], A[S,S], B[S,S]
Z = log(sum_{i,j,k} exp(u[i] + A[i,j] + v[j] + B[j,k] + w[k]))
grad Z wrt A, u
"""


def test_an_exp_of_a_sum_over_several_indices_is_factored_to_keep_the_order_down():
    """A CRF-style log-partition: ``sum_{i,j,k} exp(u_i + A_ij + v_j + B_jk + w_k)`` is
    ``exp(u_i + A_ij + v_j) exp(B_jk + w_k)`` contracted, O(S^2) memory, never an S^3 array
    (which at S = 400 would be 512 MB).  The values agree with the textbook formula
    (forward recursion): dZ/dA_ij = exp(u_i + A_ij + v_j) sum_k exp(B_jk + w_k) / e^Z."""
    derived = derive_text(CRF)
    S = 400
    rng = np.random.default_rng(1)
    u, v, w = (rng.normal(size=S) * 0.1 for _ in range(3))
    A, B = (rng.normal(size=(S, S)) * 0.1 for _ in range(2))
    arrays = {"u": u, "v": v, "w": w, "A": A, "B": B}
    left = np.exp(u[:, None] + A + v[None, :])
    right = np.exp(B + w[None, :]).sum(axis=1)
    partition = left @ right
    textbook = {"A": left * right[None, :] / partition.sum(), "u": partition / partition.sum()}
    for r in derived.results:
        got, peak = run_measuring_memory(r, arrays)
        np.testing.assert_allclose(got, textbook[r.wrt], rtol=1e-10)
        assert peak < 20 * S * S * 8, (r.wrt, peak)  # a few S x S arrays, not S^3


RBF = """
dims N, M, D
input X[N,D], Z[M,D], ell
K[n,m] = exp(-sum_d (X[n,d] - Z[m,d])^2 / (2 ell^2))
L = loss(K)
grad L wrt X, Z
"""


def test_an_rbf_kernel_gradient_never_builds_an_n_by_m_by_d_array():
    """``sum_m G_im K_im (Z_mj - X_ij)`` is distributed into ``(G K) Z - X (G K) 1`` and the
    squared distance expanded (``|x|^2 + |z|^2 - 2 X Z^T``), as the textbook computes them:
    O(NM + (N + M) D) memory, not an N x M x D array (here 256 MB)."""
    derived = derive_text(RBF)
    N, M, D = 400, 500, 160
    generator = np.random.default_rng(3)
    X, Z, G = generator.normal(size=(N, D)), generator.normal(size=(M, D)), \
        generator.normal(size=(N, M))
    ell = 9.0
    sq = (X**2).sum(1)[:, None] + (Z**2).sum(1)[None, :] - 2 * X @ Z.T
    K = np.exp(-sq / (2 * ell**2))
    GK = G * K
    textbook = {"X": (GK @ Z - GK.sum(1)[:, None] * X) / ell**2,
                "Z": (GK.T @ X - GK.sum(0)[:, None] * Z) / ell**2}
    arrays = {"X": X, "Z": Z, "ell": ell, "dL_dK": G}
    for r in derived.results:
        got, peak = run_measuring_memory(r, arrays)
        np.testing.assert_allclose(got, textbook[r.wrt], rtol=1e-8, atol=1e-12)
        assert peak < 20 * N * M * 8, (r.wrt, peak)


def test_the_check_evaluates_the_definitions_as_written():
    """The rewrites serve the generated code only: the literal plan of the CRF partition
    function still takes one exp of the whole sum, so the check's forward pass is the
    definition as written and a wrong rewrite would fail the check."""
    from indexcalc.emit.plan import Call, Product, plan

    prob = problem(CRF)
    body = prob.definitions["Z"].body.arg  # the sum inside the log
    literal, fast = plan(body), plan(body, fast=True)
    assert isinstance(literal, Product) and isinstance(fast, Product)
    assert sum(isinstance(f, Call) and f.fn == "exp" for f in literal.factors) == 1
    exps = [f for f in _walk_plan(fast) if isinstance(f, Call) and f.fn == "exp"]
    assert len(exps) == 2 and all(not isinstance(f.arg, Call) for f in exps)


RBF_SCALE = RBF.replace("grad L wrt X, Z", "grad L wrt X, ell")  # and the length scale


def _calls(source: str, attr: str) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(source, mode="eval"))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == attr]


def _contractions(source: str) -> list[ast.AST]:
    """The einsum calls and matrix products (``@``) of ``source``."""
    return _calls(source, "einsum") + [
        n for n in ast.walk(ast.parse(source, mode="eval"))
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult)]


def _operand_names(node: ast.AST) -> set[str]:
    """The names that are operands of a contraction (not inside another expression)."""
    operands = node.args if isinstance(node, ast.Call) else [node.left, node.right]
    return {a.id for a in operands if isinstance(a, ast.Name)}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def test_a_scale_free_of_the_summed_index_multiplies_the_distributed_sum_once():
    """``sum_d -(X_nd - Z_md)^2 / (2 ell^2)`` is ``-1/(2 ell^2) (|x|^2 + |z|^2 - 2 X Z^T)``:
    the length scale multiplies the N x M sum once, not each of its three parts."""
    from indexcalc.emit.plan import Read, Total, plan

    exponent = problem(RBF_SCALE).definitions["K"].body.arg
    (total,) = [p for p in _walk_plan(plan(exponent, fast=True)) if isinstance(p, Total)]
    assert len(total.terms) == 3
    assert {p.name for p in _walk_plan(total) if isinstance(p, Read)} == {"X", "Z"}


def _walk_plan(p):
    from dataclasses import fields
    from indexcalc.emit.plan import Plan

    yield p
    for f in fields(p):
        value = getattr(p, f.name)
        for child in value if isinstance(value, tuple) else (value,):
            if isinstance(child, Plan):
                yield from _walk_plan(child)


def test_an_array_of_a_definition_and_the_body_is_computed_once():
    """dL/dell = sum_{n,m} G_nm K_nm d_nm / ell^3 with d the squared distances that K's
    definition computes too: the lambda forms X Z^T once (bound where K computes it) and
    equals the textbook formula."""
    (r,) = [r for r in derive_text(RBF_SCALE).results if r.wrt == "ell"]
    products = [c for c in _contractions(r.numpy.source) if {"X", "Z"} <= _names(c)]
    assert len(products) == 1, r.numpy.source
    generator = np.random.default_rng(5)
    X, Z, G = generator.normal(size=(6, 3)), generator.normal(size=(7, 3)), \
        generator.normal(size=(6, 7))
    ell = 1.7
    sq = (X**2).sum(1)[:, None] + (Z**2).sum(1)[None, :] - 2 * X @ Z.T
    textbook = (G * np.exp(-sq / (2 * ell**2)) * sq).sum() / ell**3
    np.testing.assert_allclose(compiled(r)(G, X, Z, ell), textbook, rtol=1e-12)


def test_factors_on_the_same_axes_are_multiplied_once_for_two_contractions():
    """dL/dX = ((G K) Z - rowsum(G K) X) / ell^2: the Hadamard product G K is one array
    that both contractions use, as the textbook computes it."""
    (r,) = [r for r in derive_text(RBF_SCALE).results if r.wrt == "X"]
    tree = ast.parse(r.numpy.source, mode="eval")
    products = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp)
                and isinstance(n.op, ast.Mult) and _names(n) == {"dL_dK", "K"}]
    assert len(products) == 1, r.numpy.source
    assert not [c for c in _contractions(r.numpy.source)
                if {"dL_dK", "K"} <= _operand_names(c)], r.numpy.source


CONTRACTIONS = """
dims I, J, K
input A[I,K], B[J,K], C[K,J], u[J]
P[i,j] = exp(sum_k A[i,k] B[j,k])
Q[j,i] = exp(sum_k A[i,k] B[j,k])
R[i] = exp(sum_{k,j} A[i,k] C[k,j])
f = sum_{i,j} P[i,j] + sum_{j,i} Q[j,i] + sum_i R[i]
grad f wrt A
"""


def _definition_code(text: str, name: str, inside_exp: bool = True) -> tuple[str, tuple]:
    """The generated code of one definition's body (or of its exp's argument), and its
    axes."""
    from indexcalc.emit.numpy import Names, from_index

    prob = problem(text)
    d = prob.definitions[name]
    body = d.body.arg if inside_exp else d.body
    return from_index(body, d.indices, Names(prob)), d.indices


@pytest.mark.parametrize("name, expected", [("P", "A @ B.T"), ("Q", "B @ A.T")])
def test_a_contraction_of_two_matrices_is_a_c_ordered_matrix_product(name, expected):
    """einsum(..., optimize=True) returns a matrix product in Fortran order, which slows the
    elementwise operations after it (the RBF kernel's distances took twice the textbook's
    time); the generated code writes ``@``, in the output's order, for either order."""
    code, _ = _definition_code(CONTRACTIONS, name)
    assert code.replace("(", "").replace(")", "") == expected, code
    generator = np.random.default_rng(2)
    A, B = generator.normal(size=(4, 3)), generator.normal(size=(5, 3))
    value = eval(code, {"np": np, "A": A, "B": B})
    assert value.flags.c_contiguous
    np.testing.assert_allclose(value, A @ B.T if name == "P" else B @ A.T, rtol=1e-13)


def test_an_index_only_one_factor_has_is_summed_out_of_it_first():
    """``sum_{k,j} A_ik C_kj`` is ``A (C 1)``: the row sums of C, then a matrix-vector
    product, rather than a contraction that carries j through it."""
    code, _ = _definition_code(CONTRACTIONS, "R")
    assert "C.sum(axis=1)" in code and "einsum" not in code, code
    generator = np.random.default_rng(3)
    A, C = generator.normal(size=(4, 3)), generator.normal(size=(3, 5))
    np.testing.assert_allclose(eval(code, {"np": np, "A": A, "C": C}), A @ C.sum(1),
                               rtol=1e-13)


def test_a_factor_repeated_in_a_product_is_not_summed_alone():
    """``sum_d X_nd X_nd``: d is in both factors (the same array twice), so neither is
    summed alone; the sum of squares, not the square of the sum."""
    prob = problem(RBF_SCALE)
    (r,) = [r for r in derive_text(RBF_SCALE).results if r.wrt == "ell"]
    assert "X.sum" not in r.numpy.source and "Z.sum" not in r.numpy.source, r.numpy.source
    assert r.check.passed and prob is not None


def test_a_normaliser_is_the_sum_of_the_array_it_normalises():
    """The CRF's marginals and node marginals, ``f / sum f``: the textbook forms ``f`` and
    sums it (``marginal / marginal.sum()``, ``alpha / alpha.sum()``), rather than
    contracting the same exps a second time; so the lambda takes each exp once and divides
    by the sum of the array it has."""
    for r in derive_text(CRF).results:
        tree = ast.parse(r.numpy.source, mode="eval")
        divisions = [n for n in ast.walk(tree)
                     if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)
                     and isinstance(n.right, ast.Call) and n.right.func.attr == "sum"]
        assert len(divisions) == 1, r.numpy.source
        (division,) = divisions
        assert isinstance(division.left, ast.NamedExpr), r.numpy.source
        assert division.right.func.value.id == division.left.target.id, r.numpy.source
        assert len(_calls(r.numpy.source, "exp")) == 2, r.numpy.source
        assert r.check.passed


def test_a_reciprocal_factor_divides():
    """``a_i c_i / b_i / sum_j a_j``: one division by the scalar, not ``z ** -1`` times the
    product, and an array divisor divides too (``a / b``, not ``a * (1.0 / b)``)."""
    code, _ = _definition_code("""
dims N
input a[N], b[N], c[N]
Y[i] = a[i] c[i] / b[i] / sum_j a[j]
f = sum_i Y[i]
grad f wrt c
""", "Y", inside_exp=False)
    assert "** (-1)" not in code and "1.0 /" not in code, code
    generator = np.random.default_rng(4)
    a, b, c = (generator.uniform(1, 2, size=5) for _ in range(3))
    np.testing.assert_allclose(eval(code, {"np": np, "a": a, "b": b, "c": c}),
                               a * c / b / a.sum(), rtol=1e-13)
