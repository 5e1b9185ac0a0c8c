"""Tests of the text and LaTeX printers: every node type, the bracketing rules, and whole
expressions from the hand derivation of seed 002."""
from __future__ import annotations

from fractions import Fraction

import pytest

from indexcalc.render.printing import function_latex, name_latex, to_latex, to_text
from indexcalc.syntax.idx import parse_text
from indexcalc.terms import (
    MINUS_ONE,
    ONE,
    Add,
    Delta,
    Deriv,
    DimSize,
    Func,
    Grad,
    Index,
    Mul,
    Pow,
    Sum,
    Tensor,
    add,
    div,
    mul,
    neg,
    num,
    power,
    same,
    sub,
)

s, i = Index("s", "S"), Index("i", "S")
c, j, k = Index("c", "C"), Index("j", "C"), Index("k", "C")
n, m = Index("n", "N"), Index("m", "M")
i2 = Index("i2", "S")
S = DimSize("S")


def X(*ix):
    return Tensor("X", ix)


def Y(*ix):
    return Tensor("Y", ix)


def T(*ix):
    return Tensor("T", ix)


def W(*ix):
    return Tensor("W", ix)


def dL_dY(*ix):
    return Grad("L", "Y", ix)


def inv(t):
    return power(t, MINUS_ONE)


def check(term, text, latex):
    assert to_text(term) == text
    assert to_latex(term) == latex


# --- leaves -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "term, text, latex",
    [
        (num(3), "3", "3"),
        (num(-3), "-3", "-3"),
        (num(Fraction(1, 3)), "1/3", r"\frac{1}{3}"),
        (num(Fraction(-2, 3)), "-2/3", r"-\frac{2}{3}"),
        (S, "S", "S"),
        (DimSize("NB"), "NB", r"\mathrm{NB}"),
        (X(s, j), "X[s,j]", "X_{sj}"),
        (X(s, i2), "X[s,i2]", "X_{s,i2}"),
        (Tensor("lam"), "lam", r"\lambda"),
        (Tensor("eps"), "eps", r"\epsilon"),
        (Tensor("alpha"), "alpha", r"\alpha"),
        (Tensor("lr"), "lr", r"\mathrm{lr}"),
        (Tensor("W1", (n, m)), "W1[n,m]", "W^{(1)}_{nm}"),
        (Tensor("x_hat", (s,)), "x_hat[s]", r"\mathrm{x\_hat}_{s}"),
        (dL_dY(s, i), "dL_dY[s,i]", r"\frac{\partial L}{\partial Y_{si}}"),
        (Grad("f", "lam"), "df_dlam", r"\frac{\partial f}{\partial \lambda}"),
        (Delta(n, i), "delta(n,i)", r"\delta_{ni}"),
        (Delta(s, i2), "delta(s,i2)", r"\delta_{s,i2}"),
    ],
)
def test_leaves(term, text, latex):
    check(term, text, latex)


def test_name_latex():
    assert name_latex("sigma") == r"\sigma"
    assert name_latex("Sigma") == r"\Sigma"
    assert name_latex("act", operator=True) == r"\operatorname{act}"


def test_function_latex_for_other_printers():
    assert function_latex("exp", 0, r"\mathbf{X}") == r"\exp\left(\mathbf{X}\right)"
    assert function_latex("exp", 0, "x", atomic=True) == "e^{x}"
    assert function_latex("h", 1, r"\mathbf{X}") == r"h'\left(\mathbf{X}\right)"
    assert function_latex("sigmoid", 0, "x", atomic=True) == r"\sigma(x)"
    assert function_latex("sqrt", 0, "x") == r"\sqrt{x}"
    assert function_latex("abs", 0, "x") == r"\left|x\right|"


# --- functions ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "term, text, latex",
    [
        (Func("exp", X(s, c)), "exp(X[s,c])", "e^{X_{sc}}"),
        (Func("exp", neg(X(s, c))), "exp(-X[s,c])", r"\exp\left(-X_{sc}\right)"),
        (Func("log", X(s, c)), "log(X[s,c])", r"\log(X_{sc})"),
        (Func("log", add(X(s, c), ONE)), "log(X[s,c] + 1)", r"\log\left(X_{sc} + 1\right)"),
        (Func("sqrt", DimSize("D")), "sqrt(D)", r"\sqrt{D}"),
        (Func("tanh", X(s, c)), "tanh(X[s,c])", r"\tanh(X_{sc})"),
        (Func("sigmoid", X(s, c)), "sigmoid(X[s,c])", r"\sigma(X_{sc})"),
        (Func("relu", X(s, c)), "relu(X[s,c])", r"\operatorname{relu}(X_{sc})"),
        (Func("abs", X(s, c)), "abs(X[s,c])", r"\left|X_{sc}\right|"),
        (Func("sin", X(s, c)), "sin(X[s,c])", r"\sin(X_{sc})"),
        (Func("cos", X(s, c)), "cos(X[s,c])", r"\cos(X_{sc})"),
        (Func("step", X(s, c)), "step(X[s,c])", r"\operatorname{step}(X_{sc})"),
        (Func("sign", X(s, c)), "sign(X[s,c])", r"\operatorname{sign}(X_{sc})"),
        (Func("h", X(s, n)), "h(X[s,n])", "h(X_{sn})"),
        (Func("h", X(s, n), 1), "h'(X[s,n])", "h'(X_{sn})"),
        (Func("h", X(s, n), 2), "h''(X[s,n])", "h''(X_{sn})"),
        (Func("act", X(s, n), 1), "act'(X[s,n])", r"\operatorname{act}'(X_{sn})"),
        (
            Func("exp", Sum((k,), X(s, k))),
            "exp(sum_k X[s,k])",
            r"\exp\left(\sum_{k} X_{sk}\right)",
        ),
    ],
)
def test_functions(term, text, latex):
    check(term, text, latex)


# --- sums, sums of terms, products --------------------------------------------------------

def test_sum_one_index():
    check(Sum((m,), mul(X(s, m), W(n, m))), "sum_m X[s,m] * W[n,m]", r"\sum_{m} X_{sm} W_{nm}")


def test_sum_several_indices():
    check(
        Sum((s, n), mul(dL_dY(s, n), X(s, j))),
        "sum_{s,n} dL_dY[s,n] * X[s,j]",
        r"\sum_{s,n} \frac{\partial L}{\partial Y_{sn}} X_{sj}",
    )


def test_nested_sums_are_kept():
    check(Sum((s,), Sum((n,), X(s, n))), "sum_s sum_n X[s,n]", r"\sum_{s} \sum_{n} X_{sn}")


def test_sum_body_that_is_an_add_is_bracketed():
    check(
        Sum((c,), add(T(s, c), X(s, c))),
        "sum_c (T[s,c] + X[s,c])",
        r"\sum_{c} \left(T_{sc} + X_{sc}\right)",
    )


def test_sum_as_a_term_of_an_add_is_not_bracketed():
    check(
        add(Sum((m,), mul(X(s, m), W(n, m))), Tensor("b", (n,))),
        "sum_m X[s,m] * W[n,m] + b[n]",
        r"\sum_{m} X_{sm} W_{nm} + b_{n}",
    )


def test_sum_not_last_in_product_is_bracketed():
    check(
        mul(Sum((c,), T(i, c)), Y(i, j)),
        "(sum_c T[i,c]) * Y[i,j]",
        r"\left(\sum_{c} T_{ic}\right) Y_{ij}",
    )


def test_sum_last_in_product_is_not_bracketed():
    check(mul(Y(i, j), Sum((c,), T(i, c))), "Y[i,j] * sum_c T[i,c]", r"Y_{ij} \sum_{c} T_{ic}")


def test_sum_before_a_denominator_is_bracketed():
    check(
        mul(Sum((c,), T(i, c)), inv(X(i, j))),
        "(sum_c T[i,c]) / X[i,j]",
        r"\frac{\sum_{c} T_{ic}}{X_{ij}}",
    )


def test_sum_with_quotient_body():
    check(
        Sum((c,), div(T(s, c), X(s, c))),
        "sum_c T[s,c] / X[s,c]",
        r"\sum_{c} \frac{T_{sc}}{X_{sc}}",
    )


def test_add_with_subtraction():
    check(sub(Delta(c, j), Y(s, j)), "delta(c,j) - Y[s,j]", r"\delta_{cj} - Y_{sj}")
    check(
        add(X(s, c), mul(num(-2), Y(s, c)), num(-3)),
        "X[s,c] - 2 * Y[s,c] - 3",
        r"X_{sc} - 2 Y_{sc} - 3",
    )
    check(add(neg(X(s, c)), Y(s, c)), "-X[s,c] + Y[s,c]", r"-X_{sc} + Y_{sc}")


def test_subtracted_add_is_bracketed():
    inner = Add((X(s, c), Y(s, c)))
    check(Add((T(s, c), Mul((MINUS_ONE, inner)))), "T[s,c] - (X[s,c] + Y[s,c])",
          r"T_{sc} - \left(X_{sc} + Y_{sc}\right)")


def test_add_inside_product_is_bracketed():
    check(
        mul(num(2), add(X(s, c), Y(s, c)), T(s, c)),
        "2 * (X[s,c] + Y[s,c]) * T[s,c]",
        r"2 \left(X_{sc} + Y_{sc}\right) T_{sc}",
    )


def test_negative_coefficients():
    check(neg(X(s, c)), "-X[s,c]", "-X_{sc}")
    check(mul(num(-2), X(s, c), Y(s, c)), "-2 * X[s,c] * Y[s,c]", "-2 X_{sc} Y_{sc}")
    check(neg(add(X(s, c), Y(s, c))), "-(X[s,c] + Y[s,c])", r"-\left(X_{sc} + Y_{sc}\right)")
    check(neg(Sum((c,), X(s, c))), "-sum_c X[s,c]", r"-\sum_{c} X_{sc}")
    check(neg(power(X(s, c), num(2))), "-X[s,c]^2", "-X_{sc}^{2}")


def test_fraction_coefficients():
    check(mul(num(Fraction(1, 3)), X(s, c)), "1/3 * X[s,c]", r"\frac{1}{3} X_{sc}")
    check(mul(num(Fraction(-1, 2)), X(s, c)), "-1/2 * X[s,c]", r"-\frac{1}{2} X_{sc}")


def test_dim_coefficients():
    check(mul(inv(S), X(s, c)), "1/S * X[s,c]", r"\frac{1}{S} X_{sc}")
    check(
        mul(num(Fraction(-2, 3)), inv(S), X(s, c)),
        "-2/(3 * S) * X[s,c]",
        r"-\frac{2}{3 S} X_{sc}",
    )
    check(
        mul(inv(Func("sqrt", DimSize("D"))), X(s, c)),
        "1/sqrt(D) * X[s,c]",
        r"\frac{1}{\sqrt{D}} X_{sc}",
    )
    check(inv(S), "1/S", r"\frac{1}{S}")


def test_denominators_are_collected():
    check(div(T(s, c), mul(S, Y(s, c))), "T[s,c] / (S * Y[s,c])", r"\frac{T_{sc}}{S Y_{sc}}")
    check(
        mul(X(s, c), inv(Y(s, c)), T(s, c), power(Y(s, k), num(-2))),
        "X[s,c] * T[s,c] / (Y[s,c] * Y[s,k]^2)",
        r"\frac{X_{sc} T_{sc}}{Y_{sc} Y_{sk}^{2}}",
    )


def test_number_over_denominator():
    check(inv(X(s, c)), "1 / X[s,c]", r"\frac{1}{X_{sc}}")
    check(mul(num(2), power(X(s, c), num(-2))), "2 / X[s,c]^2", r"\frac{2}{X_{sc}^{2}}")
    check(
        mul(num(-1), inv(S), inv(X(s, c))),
        "-1 / (S * X[s,c])",
        r"-\frac{1}{S X_{sc}}",
    )
    check(sub(X(s, c), inv(Y(s, c))), "X[s,c] - 1 / Y[s,c]", r"X_{sc} - \frac{1}{Y_{sc}}")


def test_add_in_numerator_and_denominator():
    check(
        div(add(X(s, c), ONE), add(Y(s, c), ONE)),
        "(X[s,c] + 1) / (Y[s,c] + 1)",
        r"\frac{X_{sc} + 1}{Y_{sc} + 1}",
    )


def test_sum_in_denominator_is_bracketed_in_text():
    check(
        div(Func("exp", X(s, c)), Sum((k,), Func("exp", X(s, k)))),
        "exp(X[s,c]) / (sum_k exp(X[s,k]))",
        r"\frac{e^{X_{sc}}}{\sum_{k} e^{X_{sk}}}",
    )


# --- powers -------------------------------------------------------------------------------

def test_powers():
    check(power(X(s, c), num(2)), "X[s,c]^2", "X_{sc}^{2}")
    check(power(X(s, c), num(Fraction(3, 2))), "X[s,c]^(3/2)", "X_{sc}^{3/2}")
    check(power(X(s, c), num(Fraction(1, 2))), "X[s,c]^(1/2)", r"\sqrt{X_{sc}}")
    check(Pow(X(s, c), Tensor("lam")), "X[s,c]^lam", r"X_{sc}^{\lambda}")
    check(power(num(-2), Tensor("lam")), "(-2)^lam", r"\left(-2\right)^{\lambda}")
    check(Pow(Pow(X(s, c), num(2)), num(3)), "(X[s,c]^2)^3", r"\left(X_{sc}^{2}\right)^{3}")


def test_power_of_a_sum():
    check(
        power(Sum((k,), Func("exp", X(s, k))), num(2)),
        "(sum_k exp(X[s,k]))^2",
        r"\left(\sum_{k} e^{X_{sk}}\right)^{2}",
    )


def test_power_of_an_add_and_of_exp_and_of_grad():
    check(power(add(X(s, c), ONE), num(2)), "(X[s,c] + 1)^2", r"\left(X_{sc} + 1\right)^{2}")
    check(power(Func("exp", X(s, c)), num(2)), "exp(X[s,c])^2", r"\left(e^{X_{sc}}\right)^{2}")
    check(
        power(dL_dY(s, c), num(2)),
        "dL_dY[s,c]^2",
        r"\left(\frac{\partial L}{\partial Y_{sc}}\right)^{2}",
    )


# --- unevaluated derivatives --------------------------------------------------------------

def test_deriv_of_a_tensor():
    check(
        Deriv(Y(s, n), W(i, j)),
        "d(Y[s,n])/d(W[i,j])",
        r"\frac{\partial Y_{sn}}{\partial W_{ij}}",
    )


def test_deriv_of_an_expression():
    check(
        Deriv(Sum((m,), mul(X(s, m), W(n, m))), W(i, j)),
        "d(sum_m X[s,m] * W[n,m])/d(W[i,j])",
        r"\frac{\partial}{\partial W_{ij}} \left(\sum_{m} X_{sm} W_{nm}\right)",
    )


def test_chain_rule_product():
    check(
        Sum((s, n), mul(dL_dY(s, n), Deriv(Y(s, n), W(i, j)))),
        "sum_{s,n} dL_dY[s,n] * d(Y[s,n])/d(W[i,j])",
        r"\sum_{s,n} \frac{\partial L}{\partial Y_{sn}} \frac{\partial Y_{sn}}{\partial W_{ij}}",
    )


# --- thin spaces --------------------------------------------------------------------------

def test_latex_thin_space_between_numbers_and_words():
    assert to_latex(Mul((num(2), num(3)))) == r"2 \, 3"
    assert to_latex(mul(Tensor("lr"), Tensor("wd"))) == r"\mathrm{lr} \, \mathrm{wd}"


# --- whole expressions from seed 002 ------------------------------------------------------

def test_seed_linear_layer_grad():
    check(
        Sum((s,), mul(Grad("L", "Y", (s, i)), X(s, j))),
        "sum_s dL_dY[s,i] * X[s,j]",
        r"\sum_{s} \frac{\partial L}{\partial Y_{si}} X_{sj}",
    )


def test_seed_softmax_jacobian():
    check(
        mul(Delta(s, i), Y(s, c), sub(Delta(c, j), Y(s, j))),
        "delta(s,i) * Y[s,c] * (delta(c,j) - Y[s,j])",
        r"\delta_{si} Y_{sc} \left(\delta_{cj} - Y_{sj}\right)",
    )


def test_seed_softmax_grad():
    term = mul(Y(i, j), sub(dL_dY(i, j), Sum((c,), mul(dL_dY(i, c), Y(i, c), Y(i, j)))))
    check(
        term,
        "Y[i,j] * (dL_dY[i,j] - sum_c dL_dY[i,c] * Y[i,c] * Y[i,j])",
        r"Y_{ij} \left(\frac{\partial L}{\partial Y_{ij}} - "
        r"\sum_{c} \frac{\partial L}{\partial Y_{ic}} Y_{ic} Y_{ij}\right)",
    )


def test_seed_softmax_quotient_rule():
    den = power(Sum((k,), Func("exp", X(s, k))), num(-2))
    numer = sub(
        mul(Func("exp", X(s, c)), Delta(s, i), Delta(c, j), Sum((k,), Func("exp", X(s, k)))),
        mul(Func("exp", X(s, j)), Delta(s, i), Func("exp", X(s, c))),
    )
    check(
        mul(numer, den),
        "(exp(X[s,c]) * delta(s,i) * delta(c,j) * sum_k exp(X[s,k])"
        " - exp(X[s,j]) * delta(s,i) * exp(X[s,c])) / (sum_k exp(X[s,k]))^2",
        r"\frac{e^{X_{sc}} \delta_{si} \delta_{cj} \sum_{k} e^{X_{sk}}"
        r" - e^{X_{sj}} \delta_{si} e^{X_{sc}}}{\left(\sum_{k} e^{X_{sk}}\right)^{2}}",
    )


def test_seed_cross_entropy():
    check(
        mul(MINUS_ONE, inv(S), Sum((s, c), mul(T(s, c), Func("log", X(s, c))))),
        "-1/S * sum_{s,c} T[s,c] * log(X[s,c])",
        r"-\frac{1}{S} \sum_{s,c} T_{sc} \log(X_{sc})",
    )
    check(
        mul(MINUS_ONE, inv(S), T(i, j), inv(X(i, j))),
        "-1/S * T[i,j] / X[i,j]",
        r"-\frac{1}{S} \frac{T_{ij}}{X_{ij}}",
    )


def test_seed_activation():
    check(
        mul(dL_dY(i, j), Func("h", X(i, j), 1)),
        "dL_dY[i,j] * h'(X[i,j])",
        r"\frac{\partial L}{\partial Y_{ij}} h'(X_{ij})",
    )


def test_output_is_deterministic():
    term = mul(Y(i, j), sub(dL_dY(i, j), Sum((c,), mul(dL_dY(i, c), Y(i, c)))))
    assert {to_text(term) for _ in range(3)} == {to_text(term)}
    assert {to_latex(term) for _ in range(3)} == {to_latex(term)}


# --- round trip through the parser, once it exists ----------------------------------------
# Shapes for the round trip: X, Y, T are S x C, V is N x C; s, i range over S; c, j, k over C.

def V(*ix):
    return Tensor("V", ix)


ROUND_TRIP = [
    Sum((c,), mul(X(s, c), V(n, c))),
    add(Sum((c,), mul(X(s, c), V(n, c))), Tensor("b", (n,))),
    mul(Delta(s, i), Y(s, c), sub(Delta(c, j), Y(s, j))),
    mul(Sum((c,), T(i, c)), Y(i, j)),
    mul(Y(i, j), Sum((c,), T(i, c))),
    Sum((c,), add(T(s, c), X(s, c))),
    mul(MINUS_ONE, inv(S), T(i, j), inv(X(i, j))),
    mul(MINUS_ONE, inv(S), Sum((s, c), mul(T(s, c), Func("log", X(s, c))))),
    div(T(s, c), mul(S, Y(s, c))),
    power(Sum((k,), Func("exp", X(s, k))), num(2)),
    div(Func("exp", X(s, c)), Sum((k,), Func("exp", X(s, k)))),
    mul(num(Fraction(1, 3)), Func("h", X(s, c), 1), Func("sigmoid", neg(X(s, c)))),
    sub(X(s, c), mul(Tensor("lam"), power(Y(s, c), num(2)))),
    neg(Sum((c,), X(s, c))),
]

_SOURCE = """dims S=4, C=3, N=2
input X[S,C], Y[S,C], T[S,C], V[N,C], b[N], lam
function h
Z{lhs} = {body}
"""


def _parse_definition(term):
    parser = pytest.importorskip("indexcalc.syntax.idx")
    if not hasattr(parser, "parse_text"):
        pytest.skip("indexcalc.syntax.idx.parse_text does not exist yet")
    free = sorted(term.free)
    lhs = "[" + ",".join(ix.name for ix in free) + "]" if free else ""
    return parser.parse_text(_SOURCE.format(lhs=lhs, body=to_text(term))).definitions["Z"].body


@pytest.mark.parametrize("term", ROUND_TRIP, ids=to_text)
def test_round_trip_through_parser(term):
    parsed = _parse_definition(term)
    assert same(parsed, term), (to_text(term), to_text(parsed))


@pytest.mark.parametrize("value, text, latex", [
    (10**45, "1e45", "10^{45}"),
    (-25 * 10**30, "-25e30", "-2.5 \\times 10^{31}"),
    (Fraction(1, 3 * 10**45), "1/3e45", "\\frac{1}{3 \\times 10^{45}}"),
    (123456789012345678, "123456789012345678", "123456789012345678"),
    (10**12, "1000000000000", "1000000000000"),
])
def test_large_integers_are_written_with_an_exponent_the_parser_reads(value, text, latex):
    """A 46-digit literal (1e45 printed whole) was longer than the parser accepts (issue 9)."""
    assert to_text(num(value)) == text
    assert to_latex(num(value)) == latex
    problem = parse_text(f"input x\nf = {text} * x\ngrad f wrt x\n")
    assert problem.definitions["f"].body == mul(num(value), Tensor("x", ()))
