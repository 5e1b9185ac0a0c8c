"""Tests of the parser: the derivation-file language of CONTRACT section 1.

Good input is compared with terms built by hand from the smart constructors; bad input must
raise InputError (and nothing else) pointing at the right line and column.
"""
from __future__ import annotations

import random
from fractions import Fraction

import pytest

from indexcalc.syntax.idx import parse_file, parse_text
from indexcalc.problem import Assumption, Goal, InputError
from indexcalc.terms import (
    ONE,
    Delta,
    DimSize,
    Func,
    Index,
    Sum,
    Tensor,
    add,
    div,
    make_sum,
    mul,
    neg,
    num,
    power,
    sub,
)

HEADER = """\
dims S=8, M=5, N=3, C=4, D=2
input X[S,M], W[N,M], b[N], Z[S,C], T[S,C], y[S], w[M], lam, mu
function h
"""

s, m, n, c, k = Index("s", "S"), Index("m", "M"), Index("n", "N"), Index("c", "C"), Index("k", "C")


def t(name, *indices):
    return Tensor(name, indices)


def body(source: str, name: str | None = None):
    """The body of the last definition in HEADER + source."""
    problem = parse_text(HEADER + source)
    definition = problem.definitions[name] if name else list(problem.definitions.values())[-1]
    return definition.body


def error(source: str, header: str = HEADER) -> InputError:
    with pytest.raises(InputError) as info:
        parse_text(header + source, "test.idx")
    return info.value


def assert_error(source, line_text, needle, *words, header=HEADER, occurrence=1):
    """The error points at the ``occurrence``-th ``needle`` of ``line_text`` and names ``words``."""
    err = error(source, header)
    assert err.location is not None, err.message
    assert err.location.path == "test.idx"
    assert err.location.text == line_text
    assert err.location.line == header.count("\n") + source.split("\n").index(line_text) + 1
    column = -1
    for _ in range(occurrence):
        column = line_text.index(needle, column + 1)
    assert err.location.column == column + 1, (err.message, err.location)
    for word in words:
        assert word in err.message, (word, err.message)
    assert "test.idx" in err.render() and "^" in err.render()
    return err


# --- good input ------------------------------------------------------------------------------

CONTRACT_EXAMPLE = """\
title: Gradients of a linear layer            # optional, free text to end of line

dims S=8, M=5, N=3        # symbolic sizes; "=n" is optional and only sets the size used
                          # for numeric checks (default: small distinct sizes chosen by the tool)
input X[S,M], W[N,M], b[N]   # leaf tensors; each axis names a dim. Scalars: `input lam`
function h                # an unspecified elementwise function (derivative written h')
assume sum_c T[s,c] = 1   # an identity the rewriter may use (here: one-hot rows of T)

Y[s,n] = sum_m X[s,m] * W[n,m] + b[n]     # a definition; free indices of the left side
L = loss(Y)               # an unspecified scalar function of Y: results then depend on the
                          # upstream gradient dL/dY (NumPy argument name `dL_dY`)

grad L wrt W, b, X        # one result per tensor after `wrt`
jacobian Y wrt X          # full Jacobian dY[...]/dX[...] (index form; NumPy: shape Y.shape + X.shape)
hessian f wrt x           # second derivative of a scalar
"""

#: The contract's block with the names it leaves undeclared (C, T, f, x) declared.
CONTRACT_EXAMPLE_COMPLETE = CONTRACT_EXAMPLE.replace(
    "input X[S,M], W[N,M], b[N]", "dims C\ninput X[S,M], W[N,M], b[N], T[S,C], x[N]"
).replace("L = loss(Y)", "L = loss(Y)\nf = sum_n x[n]^2")


def test_contract_example():
    p = parse_text(CONTRACT_EXAMPLE_COMPLETE, "linear.idx")
    assert p.path == "linear.idx"
    assert p.title == "Gradients of a linear layer"
    assert p.dims == {"S": 8, "M": 5, "N": 3, "C": None}
    assert {name: x.dims for name, x in p.inputs.items()} == {
        "X": ("S", "M"), "W": ("N", "M"), "b": ("N",), "T": ("S", "C"), "x": ("N",)
    }
    assert list(p.functions) == ["h"]
    assert p.functions["h"].line == 7 and p.functions["h"].column == 10

    [assumption] = p.assumptions
    assert assumption == Assumption(
        Sum((c,), t("T", s, c)), ONE, "sum_c T[s,c] = 1", assumption.location
    )
    assert assumption.location.line == 8

    y = p.definitions["Y"]
    assert y.indices == (s, n)
    assert y.body == add(make_sum((m,), mul(t("X", s, m), t("W", n, m))), t("b", n))
    assert (y.location.line, y.location.column) == (10, 1)

    loss = p.definitions["L"]
    assert loss.is_opaque_loss and loss.loss_args == ("Y",) and loss.indices == ()
    assert p.definitions["f"].body == Sum((n,), power(t("x", n), num(2)))

    assert [(g.kind, g.of, g.wrt) for g in p.goals] == [
        ("grad", "L", "W"), ("grad", "L", "b"), ("grad", "L", "X"),
        ("jacobian", "Y", "X"), ("hessian", "f", "x"),
    ]
    assert p.goals[1] == Goal("grad", "L", "b", p.goals[1].location)
    assert (p.goals[1].location.line, p.goals[1].location.column) == (15, 15)


def test_contract_example_as_written_names_the_undeclared_tensor():
    assert_error(CONTRACT_EXAMPLE, "assume sum_c T[s,c] = 1   # an identity the rewriter may use "
                 "(here: one-hot rows of T)", "T", "unknown tensor T", header="")


LINEAR = add(make_sum((m,), mul(t("X", s, m), t("W", n, m))), t("b", n))


@pytest.mark.parametrize("source", [
    "Y[s,n] = sum_m X[s,m] * W[n,m] + b[n]",
    "Y[s,n] = sum_m X[s,m] W[n,m] + b[n]",
    "Y[s,n] = X[s,m] W[n,m] + b[n]",
    "Y[s,n] = X[s,m] * W[n,m] + b[n]",
    "Y[s,n] = (sum_m X[s,m] * W[n,m]) + b[n]",
])
def test_linear_layer_explicit_and_einstein_give_the_same_term(source):
    assert body(source) == LINEAR


def test_softmax():
    expected = div(Func("exp", t("Z", s, c)), Sum((k,), Func("exp", t("Z", s, k))))
    assert body("Y[s,c] = exp(Z[s,c]) / sum_k exp(Z[s,k])") == expected


def test_cross_entropy():
    source = "Y[s,c] = exp(Z[s,c]) / sum_k exp(Z[s,k])\nL = -1/S sum_{s,c} T[s,c] * log(Y[s,c])"
    expected = mul(num(-1), power(DimSize("S"), num(-1)),
                   Sum((s, c), mul(t("T", s, c), Func("log", t("Y", s, c)))))
    assert body(source) == expected


def test_logistic_loss_puts_the_implicit_sum_inside_exp():
    d = Index("d", "D")
    header = "dims N, D\ninput X[N,D], y[N], w[D]\n"
    p = parse_text(header + "f = sum_n log(1 + exp(-y[n] X[n,d] w[d]))")
    inner = Sum((d,), mul(num(-1), t("y", Index("n", "N")), t("X", Index("n", "N"), d), t("w", d)))
    expected = Sum((Index("n", "N"),), Func("log", add(ONE, Func("exp", inner))))
    assert p.definitions["f"].body == expected


def test_scalar_inputs_numbers_and_dims():
    expected = add(mul(num(Fraction(1, 100000)), t("lam")), num(Fraction(5, 2)))
    assert body("F = lam * 1e-5 + 0.5 + 2") == expected
    assert body("F = sqrt(D)") == Func("sqrt", DimSize("D"))
    assert body("F = 1/S") == power(DimSize("S"), num(-1))
    assert body("F[s,m] = X[s,m] / sqrt(M)") == div(t("X", s, m), Func("sqrt", DimSize("M")))


def test_powers_and_unary_minus():
    assert body("F = -lam^2") == neg(power(t("lam"), num(2)))
    assert body("F = lam^mu^2") == power(t("lam"), power(t("mu"), num(2)))
    assert body("F = lam^-1") == power(t("lam"), num(-1))
    assert body("F[s,m] = X[s,m]^2 - lam") == sub(power(t("X", s, m), num(2)), t("lam"))
    assert body("F = 2^10") == num(1024)


def test_delta():
    i = Index("i", "N")
    assert body("F[n,i] = delta(n,i) b[n]") == mul(Delta(n, i), t("b", n))
    # a delta passes the dim along: i gets N from n
    assert body("F[s,i] = sum_n X[s,m] W[n,m] delta(n,i)") == Sum(
        (n, m), mul(t("X", s, m), t("W", n, m), Delta(n, i))
    )
    assert parse_text(HEADER + "F[i] = sum_n b[n] delta(n,i)").definitions["F"].indices == (i,)


def test_sum_covers_the_product_after_it():
    source = "F[s] = sum_m X[s,m] * w[m] + y[s]"
    assert body(source) == add(Sum((m,), mul(t("X", s, m), t("w", m))), t("y", s))
    source = "F[s] = sum_m (X[s,m] + w[m]) * 2"
    assert body(source) == Sum((m,), mul(num(2), add(t("X", s, m), t("w", m))))


def test_einstein_sums_each_term_of_an_addition_on_its_own():
    source = "F[s] = X[s,m] w[m] + Z[s,c] Z[s,c]"
    expected = add(Sum((m,), mul(t("X", s, m), t("w", m))), Sum((c,), mul(t("Z", s, c), t("Z", s, c))))
    assert body(source) == expected


def test_einstein_sum_covers_the_whole_product_holding_the_index():
    source = "F = X[s,m] (w[m] + 1) y[s]"
    expected = Sum((s, m), mul(t("X", s, m), add(t("w", m), ONE), t("y", s)))
    assert body(source) == expected


def test_einstein_trace_of_a_repeated_index_in_one_entry():
    p = parse_text("dims M\ninput Q[M,M]\nF = Q[m,m]")
    m_ = Index("m", "M")
    assert p.definitions["F"].body == Sum((m_,), Tensor("Q", (m_, m_)))


def test_declared_function_and_its_derivative():
    assert body("F[s,m] = h(X[s,m]) + h'(X[s,m])") == add(Func("h", t("X", s, m)), Func("h", t("X", s, m), 1))


def test_a_known_name_before_parentheses_is_a_product():
    assert body("F = lam (mu + 1)") == mul(t("lam"), add(t("mu"), ONE))


def test_scalar_definition_used_later():
    p = parse_text(HEADER + "F = lam^2\nG[s] = F y[s]\ngrad F wrt lam\njacobian G wrt y, F")
    assert p.definitions["G"].body == mul(t("F"), t("y", s))
    assert [(g.of, g.wrt) for g in p.goals] == [("F", "lam"), ("G", "y"), ("G", "F")]


def test_several_functions_dims_without_sizes_and_loss_of_two_tensors():
    p = parse_text("dims A, B\ninput P[A,B], Q[B]\nfunction f, g\nL = loss(P, Q)\ngrad L wrt P, Q\n")
    assert p.dims == {"A": None, "B": None}
    assert list(p.functions) == ["f", "g"]
    assert p.definitions["L"].loss_args == ("P", "Q")
    assert p.title is None


def test_assumption_pattern_variables():
    p = parse_text(HEADER + "assume sum_c T[s,c] = 1/2   # comment")
    [a] = p.assumptions
    assert a.lhs == Sum((c,), t("T", s, c))
    assert a.rhs == num(Fraction(1, 2))
    assert a.text == "sum_c T[s,c] = 1/2"


def test_multi_letter_indices_comments_crlf_and_bom():
    text = "\ufeff# a comment\r\ndims S, M\r\ninput X[S,M]\r\nF[i2] = X[i2,mm] X[i2,mm]  # trailing\r\n"
    p = parse_text(text)
    i2, mm = Index("i2", "S"), Index("mm", "M")
    assert p.definitions["F"].body == Sum((mm,), mul(t("X", i2, mm), t("X", i2, mm)))
    assert p.definitions["F"].location.line == 4


def test_parse_file(tmp_path):
    path = tmp_path / "linear.idx"
    path.write_text(CONTRACT_EXAMPLE_COMPLETE, encoding="utf-8")
    p = parse_file(str(path))
    assert p.path == str(path)
    assert p.definitions["Y"].body == LINEAR
    assert p.definitions["Y"].location.path == str(path)


# --- bad input ------------------------------------------------------------------------------

def test_syntax_error_says_what_was_expected():
    err = error("F[s] = X[s,m] *   # comment")
    assert "expected" in err.message and "end of line" in err.message
    assert (err.location.line, err.location.column) == (4, 16)  # just after the '*'
    assert_error("F[s = y[s]", "F[s = y[s]", "=", "expected", "']'")
    assert_error("F = lam\ngrad F of lam", "grad F of lam", "of", "expected 'wrt'")
    assert_error("grad Q of lam", "grad Q of lam", "of", "expected 'wrt'")
    assert_error("F = lam ** 2", "F = lam ** 2", "**", "^")
    assert_error("F = lam + )", "F = lam + )", ")", "expected a number")
    assert_error("3 = lam", "3 = lam", "3", "expected a definition")


def test_unknown_tensor():
    assert_error("F[s] = Q[s]", "F[s] = Q[s]", "Q", "unknown tensor Q")
    assert_error("F = q", "F = q", "q", "unknown name q")


def test_unknown_dim():
    assert_error("input Q[S,K]", "input Q[S,K]", "K", "unknown dim K")


def test_unknown_function():
    assert_error("F = f(lam)", "F = f(lam)", "f", "unknown function f", "function f")


def test_wrong_number_of_indices():
    assert_error("F[s] = X[s]", "F[s] = X[s]", "X", "X has 2 indices", "1 is given")
    assert_error("F = X", "F = X", "X", "X has 2 indices")
    assert_error("F[s] = lam[s]", "F[s] = lam[s]", "lam", "scalar")


def test_one_index_on_two_dims():
    assert_error("F[s] = X[s,m] W[s,m]", "F[s] = X[s,m] W[s,m]", "s", "index s", "N", "S", occurrence=3)


def test_free_index_missing_on_the_right_side():
    assert_error("F[s,n] = y[s]", "F[s,n] = y[s]", "n", "index n", "left side")


def test_free_index_mismatch_between_terms():
    line = "F[s,n] = X[s,m] W[n,m] + b[k]"
    assert_error(line, line, "k", "index k", "used once")


def test_index_used_once():
    assert_error("F = y[s]", "F = y[s]", "s", "index s is used once and never summed")
    assert_error("F[s] = X[s,m] + X[s,m]", "F[s] = X[s,m] + X[s,m]", "m", "index m", "used once")


def test_sum_over_an_unused_index():
    assert_error("F = sum_k lam", "F = sum_k lam", "k", "sum over k, but k is not used")


def test_index_in_an_exponent():
    assert_error("F[s] = y[s]^y[s]", "F[s] = y[s]^y[s]", "y", "exponent", occurrence=2)
    assert_error("F = y[s]^y[s]", "F = y[s]^y[s]", "s", "exponent", occurrence=2)


def test_self_reference():
    assert_error("F[s] = F[s] + y[s]", "F[s] = F[s] + y[s]", "F", "F refers to itself", occurrence=2)


def test_use_before_definition():
    source = "F[s] = G[s]\nG[s] = y[s]"
    assert_error(source, "F[s] = G[s]", "G", "G is defined later, at line 5")


def test_redefinition():
    assert_error("X = lam", "X = lam", "X", "already defined at line 2")
    assert_error("F = lam\nF = mu", "F = mu", "F", "already defined at line 4")
    assert_error("dims M", "dims M", "M", "already defined at line 1")
    assert_error("function exp", "function exp", "exp", "builtin")
    assert_error("input sum", "input sum", "sum", "reserved")


def test_goal_errors():
    assert_error("F[s] = y[s]\ngrad F wrt y", "grad F wrt y", "F", "scalar")
    assert_error("F = lam\ngrad F wrt Q", "grad F wrt Q", "Q", "unknown tensor Q")
    assert_error("grad X wrt W", "grad X wrt W", "X", "input")
    assert_error("F = lam\ngrad F wrt S", "grad F wrt S", "S", "S is a dim")
    assert_error("F = lam\nG = mu\ngrad F wrt G", "grad F wrt G", "G", "F cannot depend on G")
    assert_error("F = lam\ngrad F wrt lam, lam", "grad F wrt lam, lam", "lam", "twice", occurrence=2)


def test_loss_must_be_the_whole_right_side():
    assert_error("F = lam + loss(X)", "F = lam + loss(X)", "loss", "loss(...)")


def test_empty_file():
    err = error("", header="# only a comment\n\n")
    assert "no statements" in err.message
    assert (err.location.line, err.location.column) == (1, 1)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.idx"
    with pytest.raises(InputError) as info:
        parse_file(str(path))
    assert "nope.idx" in info.value.message
    assert info.value.location is None


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"dims S\ninput x[S]\nF = caf\xe9 x[s]\n")
    with pytest.raises(InputError) as info:
        parse_file(str(path))
    loc = info.value.location
    assert "UTF-8" in info.value.message
    assert (loc.line, loc.column) == (3, 8)


def test_only_input_errors_escape_on_garbage():
    """Random edits of a good file give a Problem or an InputError, never another exception."""
    good = (HEADER + "assume sum_c T[s,c] = 1\nY[s,n] = X[s,m] W[n,m] + b[n]\n"
            "F = -1/S sum_{s,c} T[s,c] * log(Z[s,c]) + h'(lam)^2\nL = loss(Y)\ngrad L wrt W\n")
    pieces = ["[", "]", "(", ")", ",", "=", "+", "-", "*", "/", "^", "sum_", "sum_m", "{", "}",
              "delta", "loss", "wrt", "'", ":", "1e-5", "s", "X", "#", "\xe9", "\t", "1e999"]
    rng = random.Random(1234)
    for _ in range(2000):
        text = list(good)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(text))
            if rng.random() < 0.5:
                del text[pos]
            else:
                text.insert(pos, rng.choice(pieces))
        try:
            parse_text("".join(text))
        except InputError as err:
            assert err.location is not None and err.location.line >= 1 and err.location.column >= 1


def test_constants_with_a_value_are_accepted():
    """Only a constant undefined whatever the sizes of its dims is refused (issue 9):
    sqrt(S - 5) has a value for S >= 5, log(2) and 0^0 = 1 always."""
    p = parse_text("dims S\ninput y[S]\nF = sum_s y[s] * sqrt(S - 5) * log(2) * 0^0\n"
                   "grad F wrt y\n")
    assert "F" in p.definitions


def test_an_assumption_that_is_an_identity_is_accepted():
    """An identity holds for every draw; one that follows from an earlier assumption holds
    after the check has made that one true."""
    p = parse_text(HEADER + "assume sum_c T[s,c] = 1\n"
                   "assume sum_c exp(Z[s,c]) * exp(-Z[s,c]) = C\n"
                   "assume sum_c (Z[s,c] + T[s,c]) = sum_c Z[s,c] + 1\n")
    assert len(p.assumptions) == 3


def test_an_assumption_written_as_a_product_of_equal_factors_is_a_power():
    p = parse_text(HEADER + "assume sum_c T[s,c] T[s,c] = 1\n")
    assert p.assumptions[0].lhs == Sum((c,), power(t("T", s, c), num(2)))


@pytest.mark.parametrize("expression", ["log(exp(-1000))", "sigmoid(-800)", "1/(exp(-200) * exp(-200))"])
def test_a_constant_float64_loses_on_the_way_is_not_called_undefined(expression):
    """exp(-1000) underflows to 0 in float64, but log(exp(-1000)) is -1000, not log(0):
    where float64 lost a value, the parser does not judge it (the check still does)."""
    parse_text(f"input x\nf = x * {expression}\ngrad f wrt x\n")
