"""Dims defined from other dims (CONTRACT section 3): ``dims U = T - K + 1``.

The formula takes whole numbers and dims declared before it under ``+ - *`` and ``//``; its
size is computed where theirs are given; the check draws sizes that make every such dim at
least 2; generated code reads a dim off an argument's shape where one carries it and
computes it from the dims it uses otherwise (never baked in)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import derive_text
from indexcalc.check.numeric import check_sizes
from indexcalc.problem import InputError
from indexcalc.syntax.idx import parse_text


def test_a_formula_gives_the_size_when_the_dims_it_uses_have_sizes():
    p = parse_text("dims T=10, K=3, U = T - K + 1, V = (T - K) // 2 + 1, W = 2*K, M\n"
                   "dims Z = M + 1\n")
    assert p.dims == {"T": 10, "K": 3, "U": 8, "V": 4, "W": 6, "M": None, "Z": None}
    assert p.dim_formulas["V"].text == "(T - K) // 2 + 1"
    assert p.dim_formulas["U"].dims == ("T", "K")


@pytest.mark.parametrize("line, message, column", [
    ("dims T, U = T - S", "unknown dim S", 17),
    ("dims T, U = U + 1", "U is defined from itself", 13),
    ("dims T, U = T / 2", "divide with //", 15),
    ("dims T=2, K=3, U = T - K", "U = T - K is -1 for the sizes given", 20),
    ("dims T, U = T +", "expected a dim, a whole number or '('", 16),
    ("dims T, U = T 2", "expected an operator", 15),
    ("dims T, U = 1.5 * T", "whole numbers", 13),
])
def test_a_bad_formula_is_bad_input_at_its_place(line, message, column):
    with pytest.raises(InputError) as caught:
        parse_text(line + "\n", "f.idx")
    assert message in str(caught.value)
    assert caught.value.location.column == column


def test_the_check_draws_sizes_that_make_every_formula_at_least_two():
    """With T and K free the first sizes tried (3, 4) make T - K + 1 zero: others are
    drawn, distinct, so that the window count is at least 2."""
    p = parse_text("dims T, K, U = T - K + 1\ninput x[T], w[K], y[U]\n"
                   "f = sum_u y[u] + sum_t x[t] + sum_k w[k]\ngrad f wrt y\n")
    sizes, note = check_sizes(p)
    assert sizes["U"] == sizes["T"] - sizes["K"] + 1 >= 2 and sizes["T"] != sizes["K"]
    assert note == ""


def test_generated_code_computes_a_dim_no_argument_carries_from_its_formula():
    """df/dx = U = T - K + 1: no argument carries U, T or K, so T and K are arguments (as
    any dim no argument carries) and U is computed from them."""
    d = derive_text("""
dims T, K, U = T - K + 1
input x[T], w[K]
f = U * sum_t x[t] + sum_k w[k]^2
grad f wrt x
""")
    (r,) = d.results
    assert r.numpy.args == ("T", "K")
    assert "(T - K + 1)" in r.numpy.source
    fn = eval(r.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    np.testing.assert_array_equal(fn(9, 4), np.full(9, 6.0))
    assert r.check.passed


def test_generated_code_reads_a_dim_off_an_argument_that_carries_it():
    """U is y's length: read off y.shape[0], not computed from T and K (K is then not
    needed at all; T, which no argument carries, is an argument)."""
    d = derive_text("""
dims T, K, U = T - K + 1
input y[U], x[T]
f = (T - U) * sum_u y[u]^2 + sum_t x[t]
grad f wrt y
""")
    (r,) = d.results
    assert r.numpy.args == ("y", "T") and "y.shape[0]" in r.numpy.source
    fn = eval(r.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    y = np.arange(3.0)
    np.testing.assert_allclose(fn(y, 7), 2 * (7 - 3) * y)
    assert r.check.passed


def test_a_formula_that_is_one_whatever_the_sizes_is_checked_at_one():
    sizes, _ = check_sizes(parse_text("dims T, U = T - T + 1\ninput x[T], y[U]\n"
                                      "f = sum_t x[t] + sum_u y[u]\ngrad f wrt x\n"))
    assert sizes["U"] == 1


def test_a_formula_below_one_whatever_the_sizes_is_bad_input_at_its_place():
    with pytest.raises(InputError) as caught:
        derive_text("dims T, U = T - T\ninput x[T], y[U]\n"
                    "f = sum_t x[t] + sum_u y[u]\ngrad f wrt x\n")
    assert "U = T - T is below 1 for every size tried" in str(caught.value)
    assert (caught.value.location.line, caught.value.location.column) == (1, 13)
