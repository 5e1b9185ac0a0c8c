"""Iverson brackets ``[a op b]`` and ``where(a op b, p, q)`` (CONTRACT section 3).

``where(c, p, q)`` reads as ``[c] p + [not c] q``; a bracket's derivative is 0 (it is
constant wherever it is differentiable), so the derivation goes branch by branch and reads
as a textbook's ``[x > 0]`` factors.  The code chooses with ``np.where``, so a branch that is
undefined where it is not taken does not turn the result into NaN."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import derive_text
from indexcalc.problem import InputError
from indexcalc.syntax.idx import parse_text
from indexcalc.terms import Bracket, Tensor

LEAKY = """
dims N
input x[N], c
r[n] = where(x[n] > 0, x[n], c * x[n])
f = sum_n r[n]^2
grad f wrt x, c
"""

HUBER = """
title: Huber loss of a linear regression
dims N, D
input X[N,D], y[N], w[D], d
r[n] = sum_k X[n,k] w[k] - y[n]
L = sum_n where(abs(r[n]) <= d, r[n]^2 / 2, d * (abs(r[n]) - d / 2))
grad L wrt w
"""


def test_where_reads_as_two_brackets_that_exclude_each_other():
    body = parse_text(LEAKY).definitions["r"].body
    brackets = [f for t in body.terms for f in t.factors if isinstance(f, Bracket)]
    assert [b.op for b in brackets] == [">", "<="]
    assert all(b.a == Tensor("x", (b.a.indices)) for b in brackets)


@pytest.mark.parametrize("line, message", [
    ("f = sum_n [x[n] 0] x[n]", "expected a comparison (< <= > >= == !=)"),
    ("f = sum_n where(x[n], 1, 2)", "expected a comparison"),
    ("f = sum_n where(x[n] > 0, x[n])", "',' between where's two values"),
    ("f = sum_n [x[n] > 0 x[n]", "']' to close the bracket"),
])
def test_a_malformed_bracket_is_bad_input_at_its_place(line, message):
    with pytest.raises(InputError) as caught:
        parse_text(f"dims N\ninput x[N]\n{line}\ngrad f wrt x\n", "f.idx")
    assert message in str(caught.value) and caught.value.location.line == 3


def test_a_bracket_differentiates_to_zero_and_the_branches_are_kept():
    d = derive_text(LEAKY)
    dx, dc = d.results
    assert dx.check.passed and dc.check.passed
    rules = [s.rule for block in dx.blocks for s in block.steps]
    assert "derivative of a bracket" in rules
    from indexcalc.render.printing import to_text
    assert "[x[i] > 0]" in to_text(dx.index) and "[x[i] <= 0]" in to_text(dx.index)
    fn = eval(dx.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    x, c = np.array([-2.0, 3.0]), 0.1
    r = np.where(x > 0, x, c * x)
    np.testing.assert_allclose(fn(x, c), 2 * r * np.where(x > 0, 1.0, c))


def test_the_huber_gradient_chooses_its_branch_entry_by_entry():
    """dL/dw = X^T psi(r) with psi(r) = r where |r| <= d, else d sign(r) (Huber, 1964)."""
    (r,) = derive_text(HUBER).results
    assert r.check.passed
    assert "np.where(" in r.numpy.source and "1.0, 0.0" not in r.numpy.source
    rng = np.random.default_rng(3)
    X, y, w = rng.normal(size=(20, 3)), rng.normal(size=20) * 3, rng.normal(size=3)
    d = 1.0
    res = X @ w - y
    assert (np.abs(res) > d).any() and (np.abs(res) <= d).any()
    psi = np.where(np.abs(res) <= d, res, d * np.sign(res))
    fn = eval(r.numpy.source, {"np": np})  # noqa: S307
    np.testing.assert_allclose(fn(X, y, w, d), X.T @ psi, rtol=1e-12)


def test_a_branch_undefined_where_it_is_not_taken_gives_no_nan():
    """where(x > 1, log(x - 1), 0): the code does not multiply log of a negative by 0."""
    (r,) = derive_text("""
dims N
input x[N]
f = sum_n where(x[n] > 1, x[n] * log(x[n] - 1), 0)
grad f wrt x
""").results
    fn = eval(r.numpy.source, {"np": np})  # noqa: S307
    with np.errstate(all="ignore"):
        got = fn(np.array([0.5, 3.0]))
    np.testing.assert_allclose(got, [0.0, np.log(2.0) + 3.0 / 2.0])


def test_brackets_print_as_iverson_brackets_in_latex():
    import indexcalc

    latex = indexcalc.derive(HUBER).latex()
    assert "\\left[\\left|r_{n}\\right| \\le d\\right]" in latex
    assert "\\left[\\left|r_{n}\\right| > d\\right]" in latex


# --- conjunctions: comparisons joined with `and` (CONTRACT section 3) ----------------------

CONJUNCTIONS = """
dims T, W=3
input x[T], a[T,T]
y[t] = [t >= 1 and t < T - 1] * (x[t+1] - x[t-1]) / 2
c[t] = sum_{u <= t and u > t - W} a[t,u] x[u]
r[t] = where(x[t] > -0.5 and x[t] < 0.5, x[t]^2, x[t])
L = sum_t y[t]^2 + sum_t c[t]^2 + sum_t r[t]^2
grad L wrt x, a
"""


def test_a_conjunction_is_the_product_of_its_brackets():
    problem = parse_text(CONJUNCTIONS)
    y = problem.definitions["y"].body
    brackets = [f for f in y.walk() if isinstance(f, Bracket)]
    assert [b.op for b in brackets] == [">=", "<"]
    c = problem.definitions["c"].body  # sum_u [u <= t] [u > t - W] a[t,u] x[u]
    assert [b.op for b in c.walk() if isinstance(b, Bracket)] == ["<=", ">"]


def test_where_on_a_conjunction_takes_the_second_branch_where_any_comparison_fails():
    problem = parse_text(CONJUNCTIONS)
    r = problem.definitions["r"].body
    from indexcalc.terms import Add
    assert isinstance(r, Add) and len(r.terms) == 2
    d = derive_text(CONJUNCTIONS)
    assert all(r.check.passed for r in d.results)
    dx = d.results[0]
    x = np.array([-0.9, -0.2, 0.3, 0.8, 0.1, -0.6])
    a = np.random.default_rng(1).uniform(-1, 1, (6, 6))
    # an independent forward pass and its central differences
    def loss(x):
        T = len(x)
        y = np.zeros(T)
        y[1:T - 1] = (x[2:] - x[:-2]) / 2
        c = np.array([sum(a[t, u] * x[u] for u in range(T) if t - 3 < u <= t) for t in range(T)])
        r = np.where((x > -0.5) & (x < 0.5), x ** 2, x)
        return (y ** 2).sum() + (c ** 2).sum() + (r ** 2).sum()
    h = 1e-6
    numeric = [(loss(x + h * e) - loss(x - h * e)) / (2 * h) for e in np.eye(6)]
    fn = eval(dx.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    assert tuple(dx.numpy.args) == ("x", "a", "W")
    assert np.allclose(fn(x, a, 3), numeric, rtol=1e-6)


@pytest.mark.parametrize("line, message", [
    ("f = sum_t [t >= 1 and] x[t]", "expected a number, a name"),
    ("f = sum_t [t >= 1 and t] x[t]", "expected a comparison"),
    ("f = sum_t [t >= 1 t < 2] x[t]", "']' to close the bracket"),
    ("f = sum_t and x[t]", "reserved word"),
])
def test_a_malformed_conjunction_is_bad_input_at_its_place(line, message):
    with pytest.raises(InputError) as caught:
        parse_text(f"dims T\ninput x[T]\n{line}\ngrad f wrt x\n", "f.idx")
    assert message in str(caught.value) and caught.value.location.line == 3
