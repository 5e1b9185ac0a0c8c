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
