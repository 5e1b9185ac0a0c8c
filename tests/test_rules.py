"""Tests of the rewrite rules, read from the one table ``rules.RULES``.

Per rule (STYLE, practice 8): hand-built terms where it fires, with the exact result, and
terms where it does not fire (it returns None).  ``test_every_rule_is_tested`` ties the cases
below to the table, so a rule added to the table without tests fails here.  Each case cites
the identity it applies: the rule's own docstring, or the document and question it comes from
(seeds in ../shared/seeds/).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import problem
from indexcalc.render.printing import to_text
from indexcalc.problem import InputError
from indexcalc.calculus.rules import RULES, Context, within
from indexcalc.functions import FUNCTIONS as FUNCTION_DERIVATIVES
from indexcalc.terms import (
    ONE,
    Affine,
    Constant,
    Arg,
    MatrixFunc,
    in_range,
    ZERO,
    Add,
    Delta,
    Deriv,
    DimSize,
    Func,
    Grad,
    Index,
    Mul,
    Num,
    Pow,
    Sum,
    Tensor,
    add,
    div,
    make_sum,
    mul,
    neg,
    num,
    power,
    same,
    sub,
)

RULE = {rule.name: rule for rule in RULES}

PROBLEM = problem("""
    dims S, M, N, C, K
    input X[S,M], W[N,M], b[N], Z[S,C], T[S,C], x[K], A[K,K], lam
    function h
    assume sum_c T[s,c] = 1
    Y[s,n] = sum_m X[s,m] * W[n,m] + b[n]
    P[s,c] = exp(Z[s,c]) / sum_k exp(Z[s,k])
""")
PARTIAL = Context(PROBLEM)  # the engine's context for local derivatives
TOTAL = Context(PROBLEM, partial=False)  # the engine's context for second derivatives

# indices: s over S, m over M, n and i over N, j over M (W's axes), c, k, q over C, p, r, u over K
s, m, n, i, j = Index("s", "S"), Index("m", "M"), Index("n", "N"), Index("i", "N"), Index("j", "M")
si = Index("i", "S")  # the "i" of dL/dX_ij when X is S x C
c, k, cj = Index("c", "C"), Index("k", "C"), Index("j", "C")
p, q, r = Index("p", "K"), Index("q", "K"), Index("r", "K")


def t(name, *indices):
    return Tensor(name, indices)


def softmax_body(row=s, col=c):
    return div(Func("exp", t("Z", row, col)), make_sum((k,), Func("exp", t("Z", row, k))))


def fire(name: str, term, ctx=PARTIAL):
    out = RULE[name].apply(term, ctx)
    assert out is not None, f"rule {name!r} did not fire on {to_text(term)}"
    return out


def no_fire(name: str, term, ctx=PARTIAL):
    assert RULE[name].apply(term, ctx) is None, f"rule {name!r} fired on {to_text(term)}"


TESTED: set[str] = set()


def covers(name: str):
    """Mark a test as covering the rule ``name`` of the table."""
    assert name in RULE, f"no rule {name!r} in RULES: {sorted(RULE)}"
    TESTED.add(name)
    return lambda fn: fn


# --- the table ----------------------------------------------------------------------------------

def test_table_names_are_unique_and_documented():
    """STYLE practice 2: one ordered table; each rule names a textbook step and states its
    identity (shown as the step's reason)."""
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    for rule in RULES:
        assert rule.identity.strip(), rule.name
        assert (rule.apply.__doc__ or "").strip(), f"{rule.name}: no docstring with the identity"
        assert rule.phase in ("differentiate", "simplify", "tidy"), rule.name


def test_differentiation_rules_come_first():
    """Differentiation rules precede simplification, so a derivative is finished before the
    result is simplified (rules.py module docstring)."""
    phases = [rule.phase for rule in RULES]
    first_other = phases.index(next(ph for ph in phases if ph != "differentiate"))
    assert all(ph == "differentiate" for ph in phases[:first_other])
    assert "differentiate" not in phases[first_other:]


# --- differentiation ------------------------------------------------------------------------------

@covers("expand definition")
def test_expand_definition_fires_in_a_total_derivative():
    """dY_sn/dW_ij = d(sum_m X_sm W_nm + b_n)/dW_ij (seed 002, 1a, first line of dY/dW)."""
    out = fire("expand definition", Deriv(t("Y", s, n), t("W", i, j)), TOTAL)
    assert to_text(out) == "d(sum_m X[s,m] * W[n,m] + b[n])/d(W[i,j])"


@covers("expand definition")
def test_expand_definition_renames_a_summed_index_that_the_wrt_entry_uses():
    """d Y_sn / d W_im: the body's summed m must not capture the free m of W_im."""
    out = fire("expand definition", Deriv(t("Y", s, n), t("W", i, m)), TOTAL)
    assert isinstance(out, Deriv) and out.wrt == t("W", i, m)
    body = out.expr.terms[0]
    assert isinstance(body, Sum) and body.indices[0] != m and body.indices[0].dim == "M"
    expected = Deriv(add(make_sum((Index("m9", "M"),), mul(t("X", s, Index("m9", "M")),
                                                            t("W", n, Index("m9", "M")))),
                         t("b", n)), t("W", i, m))
    assert same(out, expected)


@covers("expand definition")
def test_expand_definition_does_not_fire():
    # in a partial derivative the other defined tensors are independent variables
    no_fire("expand definition", Deriv(t("Y", s, n), t("W", i, j)), PARTIAL)
    # an input tensor has no definition
    no_fire("expand definition", Deriv(t("X", s, m), t("W", i, j)), TOTAL)
    # Y does not depend on Z
    no_fire("expand definition", Deriv(t("Y", s, n), t("Z", si, cj)), TOTAL)
    # not a derivative at all
    no_fire("expand definition", t("Y", s, n), TOTAL)


@covers("derivative derived above")
def test_known_derivative_puts_in_an_earlier_result_renamed():
    """dY_tm/dW_kl = (dY_sn/dW_ij, derived in an earlier block) with s, n, i, j -> t, m, k, l."""
    earlier = (Deriv(t("Y", s, n), t("W", i, j)), mul(t("X", s, j), Delta(n, i)))
    ctx = Context(PROBLEM, partial=False, known=(earlier,))
    a, b, kk = Index("a", "S"), Index("b", "N"), Index("k", "N")
    out = fire("derivative derived above", Deriv(t("Y", a, b), t("W", kk, m)), ctx)
    assert same(out, mul(t("X", a, m), Delta(b, kk)))


@covers("derivative derived above")
def test_known_derivative_does_not_fire():
    earlier = (Deriv(t("Y", s, n), t("W", i, j)), mul(t("X", s, j), Delta(n, i)))
    known = Context(PROBLEM, partial=False, known=(earlier,))
    # only in a total derivative (the engine keeps only derivatives that are total)
    no_fire("derivative derived above", Deriv(t("Y", s, n), t("W", i, j)),
            Context(PROBLEM, known=(earlier,)))
    # nothing known, or a derivative of something else
    no_fire("derivative derived above", Deriv(t("Y", s, n), t("W", i, j)), TOTAL)
    no_fire("derivative derived above", Deriv(t("Y", s, n), t("b", i)), known)
    # a repeated index (the diagonal) is not a renaming of the earlier derivative
    no_fire("derivative derived above", Deriv(t("Y", s, n), t("W", n, j)), known)


@covers("linearity")
def test_linearity_fires():
    """d(a + c b) = da + c db; the constant b_n drops out (seed 002, 1a: "+ 0")."""
    body = PROBLEM.definitions["Y"].body
    out = fire("linearity", Deriv(body, t("W", i, j)))
    assert to_text(out) == "sum_m X[s,m] * d(W[n,m])/d(W[i,j])"
    # seed 002, 1b: only b_n is left
    out = fire("linearity", Deriv(body, t("b", i)))
    assert to_text(out) == "d(b[n])/d(b[i])"


@covers("linearity")
def test_linearity_does_not_fire():
    no_fire("linearity", Deriv(t("W", n, m), t("W", i, j)))  # nothing to push inside
    no_fire("linearity", Deriv(mul(t("W", n, m), t("W", n, m)), t("W", i, j)))  # two dependent
    no_fire("linearity", mul(t("X", s, m), t("W", n, m)))  # no derivative


@covers("quotient rule")
def test_quotient_rule_fires_on_softmax():
    """d(a/b) = (da b - a db) / b^2 (seed 002, 1e, second display; seed 001 dp_i/do_k)."""
    out = fire("quotient rule", Deriv(softmax_body(), t("Z", si, cj)))
    a, b = Func("exp", t("Z", s, c)), make_sum((k,), Func("exp", t("Z", s, k)))
    wrt = t("Z", si, cj)
    assert out == div(sub(mul(Deriv(a, wrt), b), mul(a, Deriv(b, wrt))), power(b, num(2)))
    assert to_text(out) == ("(d(exp(Z[s,c]))/d(Z[i,j]) * sum_k exp(Z[s,k]) - exp(Z[s,c]) * "
                            "d(sum_k exp(Z[s,k]))/d(Z[i,j])) / (sum_k exp(Z[s,k]))^2")


@covers("quotient rule")
def test_quotient_rule_does_not_fire():
    # one dependent factor: linearity and the power rule do it
    no_fire("quotient rule", Deriv(div(t("T", s, c), t("Z", s, c)), t("Z", si, cj)))
    # the denominator is constant
    no_fire("quotient rule", Deriv(div(t("Z", s, c), t("T", s, c)), t("Z", si, cj)))
    no_fire("quotient rule", Deriv(mul(t("Z", s, c), t("Z", s, k)), t("Z", si, cj)))


@covers("product rule")
def test_product_rule_fires():
    """d(a b) = da b + a db, on the quadratic form x^T A x (Matrix Cookbook eq. (81))."""
    out = fire("product rule", Deriv(mul(t("x", p), t("A", p, q), t("x", q)), t("x", r)))
    assert to_text(out) == "d(x[p])/d(x[r]) * A[p,q] * x[q] + x[p] * A[p,q] * d(x[q])/d(x[r])"


@covers("product rule")
def test_product_rule_does_not_fire():
    no_fire("product rule", Deriv(mul(t("A", p, q), t("x", q)), t("x", r)))  # one dependent
    # a dependent denominator is the quotient rule's
    no_fire("product rule", Deriv(softmax_body(), t("Z", si, cj)))
    no_fire("product rule", Deriv(t("x", p), t("x", r)))


@covers("power rule")
def test_power_rule_fires():
    """d(u^n) = n u^(n-1) du."""
    out = fire("power rule", Deriv(power(t("X", s, m), num(3)), t("X", si, j)))
    assert to_text(out) == "3 * X[s,m]^2 * d(X[s,m])/d(X[i,j])"
    # a negative power: d(1/u) = -u^-2 du
    out = fire("power rule", Deriv(power(t("x", p), num(-1)), t("x", r)))
    assert same(out, mul(num(-1), power(t("x", p), num(-2)), Deriv(t("x", p), t("x", r))))


@covers("power rule")
def test_power_rule_does_not_fire():
    no_fire("power rule", Deriv(Func("exp", t("x", p)), t("x", r)))
    no_fire("power rule", power(t("x", p), num(2)))  # no derivative


@covers("power rule, variable exponent")
def test_power_rule_with_a_variable_exponent():
    """d(u^v) = v u^(v-1) du + u^v log(u) dv; the constant-exponent rule leaves it alone."""
    no_fire("power rule", Deriv(Pow(t("x", p), t("lam")), t("lam")))
    out = fire("power rule, variable exponent", Deriv(Pow(t("x", p), t("lam")), t("lam")))
    assert to_text(out) == "x[p]^lam * log(x[p]) * d(lam)/d(lam)"
    both = fire("power rule, variable exponent", Deriv(Pow(t("lam"), t("lam")), t("lam")))
    assert to_text(both) == ("lam * lam^(lam - 1) * d(lam)/d(lam) "
                             "+ lam^lam * log(lam) * d(lam)/d(lam)")
    no_fire("power rule, variable exponent", Deriv(Pow(t("x", p), num(2)), t("x", p)))


for _name in FUNCTION_DERIVATIVES:
    covers(f"derivative of {_name}")  # each builtin's rule: fires and does not fire below


def test_function_rules_fire():
    """d f(u) = f'(u) du (seed 002 1e: d e^{X_sc} = e^{X_sc} dX_sc)."""
    out = fire("derivative of exp", Deriv(Func("exp", t("Z", s, c)), t("Z", si, cj)))
    assert to_text(out) == "exp(Z[s,c]) * d(Z[s,c])/d(Z[i,j])"
    # seed 002 1f: d ln X_sc = dX_sc / X_sc
    out = fire("derivative of log", Deriv(Func("log", t("Z", s, c)), t("Z", si, cj)))
    assert same(out, mul(power(t("Z", s, c), num(-1)), Deriv(t("Z", s, c), t("Z", si, cj))))
    for name, known in FUNCTION_DERIVATIVES.items():
        out = fire(f"derivative of {name}", Deriv(Func(name, t("Z", s, c)), t("Z", si, cj)))
        assert same(out, mul(known.derivative(t("Z", s, c)), Deriv(t("Z", s, c), t("Z", si, cj))))


def test_function_rules_do_not_fire():
    for name in FUNCTION_DERIVATIVES:
        other = "sin" if name != "sin" else "cos"
        no_fire(f"derivative of {name}", Deriv(Func(other, t("Z", s, c)), t("Z", si, cj)))
        no_fire(f"derivative of {name}", Deriv(t("Z", s, c), t("Z", si, cj)))
        no_fire(f"derivative of {name}", Func(name, t("Z", s, c)))


@covers("derivative of a declared function")
def test_declared_function_rule_fires():
    """Seed 002 1d: d h(X_sn) = h'(X_sn) dX_sn; and h'' for h'."""
    out = fire("derivative of a declared function", Deriv(Func("h", t("X", s, m)), t("X", si, j)))
    assert out == mul(Func("h", t("X", s, m), 1), Deriv(t("X", s, m), t("X", si, j)))
    assert to_text(out) == "h'(X[s,m]) * d(X[s,m])/d(X[i,j])"
    out = fire("derivative of a declared function",
               Deriv(Func("h", t("X", s, m), 1), t("X", si, j)))
    assert out == mul(Func("h", t("X", s, m), 2), Deriv(t("X", s, m), t("X", si, j)))


@covers("derivative of a declared function")
def test_declared_function_rule_does_not_fire_on_builtins():
    no_fire("derivative of a declared function", Deriv(Func("exp", t("Z", s, c)), t("Z", si, cj)))
    no_fire("derivative of a declared function", Deriv(t("Z", s, c), t("Z", si, cj)))


@pytest.mark.parametrize("name", sorted(set(FUNCTION_DERIVATIVES) - {"step", "sign"}))
def test_builtin_function_derivatives_match_finite_differences(name):
    """The table of f' (the registry indexcalc.functions.FUNCTIONS; any calculus table, e.g.
    sigmoid' = sigmoid (1 - sigmoid), tanh' = 1 - tanh^2), checked numerically."""
    forward = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "abs": np.abs,
               "sin": np.sin, "cos": np.cos, "relu": lambda v: np.maximum(v, 0.0),
               "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "cosh": np.cosh, "sinh": np.sinh,
               "log1p": np.log1p, "expm1": np.expm1,
               "softplus": lambda v: np.log(1 + np.exp(v)), "erf": math.erf}

    def value(term, u):
        if isinstance(term, Num):
            return float(term.value)
        if isinstance(term, Constant):
            return {"pi": math.pi}[term.name]
        if isinstance(term, Tensor):
            return u
        if isinstance(term, Func):
            inner = value(term.arg, u)
            return {"step": lambda v: float(v > 0), "sign": np.sign}.get(
                term.name, forward.get(term.name))(inner)
        if isinstance(term, Pow):
            return value(term.base, u) ** value(term.exponent, u)
        if isinstance(term, Mul):
            return float(np.prod([value(f, u) for f in term.factors]))
        if isinstance(term, Add):
            return sum(value(f, u) for f in term.terms)
        raise TypeError(type(term))

    derivative = FUNCTION_DERIVATIVES[name].derivative(Tensor("u"))
    for u in (0.3, 0.7, 1.9):
        h = 1e-6
        expected = (forward[name](u + h) - forward[name](u - h)) / (2 * h)
        assert value(derivative, u) == pytest.approx(expected, rel=1e-6)


@covers("derivative of an entry")
def test_entry_rule_fires():
    """dW_nm/dW_ij = delta_ni delta_mj (seed 002, 1a); another tensor's entry gives 0."""
    assert to_text(fire("derivative of an entry", Deriv(t("W", n, m), t("W", i, j)))) == \
        "delta(n,i) * delta(m,j)"
    assert fire("derivative of an entry", Deriv(t("X", s, m), t("W", i, j))) == ZERO
    # in a partial derivative a defined tensor is an independent variable
    assert fire("derivative of an entry", Deriv(t("Y", s, n), t("W", i, j)), PARTIAL) == ZERO
    # seed 000, single datapoint: dW_di/dW_jk = delta_dj delta_ik
    d, i0, j0, k0 = Index("d", "D"), Index("i", "C"), Index("j", "D"), Index("k", "C")
    out = fire("derivative of an entry", Deriv(t("W", d, i0), t("W", j0, k0)))
    assert out == mul(Delta(d, j0), Delta(i0, k0))


@covers("derivative of an entry")
def test_entry_rule_does_not_fire():
    # a total derivative of a defined tensor expands its definition instead
    no_fire("derivative of an entry", Deriv(t("Y", s, n), t("W", i, j)), TOTAL)
    # a function of the entry is the function rule's
    no_fire("derivative of an entry", Deriv(Func("exp", t("W", n, m)), t("W", i, j)))
    no_fire("derivative of an entry", t("W", n, m))


# --- simplification -------------------------------------------------------------------------------

@covers("contract deltas")
def test_contract_deltas_fires():
    """sum_m a_m delta_mj = a_j (seed 002, 1a: sum_m X_sm delta_ni delta_mj = X_sj delta_ni)."""
    out = fire("contract deltas", make_sum((m,), mul(t("X", s, m), Delta(n, i), Delta(m, j))))
    assert to_text(out) == "X[s,j] * delta(n,i)"
    # seed 002, 1a, last line: sum_{s,n} dL/dY_sn X_sj delta_ni = sum_s dL/dY_si X_sj
    out = fire("contract deltas", make_sum((s, n), mul(Grad("L", "Y", (s, n)), t("X", s, j),
                                                      Delta(n, i))))
    assert to_text(out) == "sum_s dL_dY[s,i] * X[s,j]"
    # both indices bound: a trace
    out = fire("contract deltas", make_sum((p, q), mul(t("A", p, q), Delta(p, q))))
    assert same(out, make_sum((q,), t("A", q, q)))
    # a dilated read: the inner sum cannot solve 2k, the outer u can, and takes k along
    # (sum_u g_u sum_k w_k delta(u+2k, i) = sum_k [0 <= i-2k < U] g_{i-2k} w_k)

    uu, kk, ii = Index("u", "U"), Index("k", "K"), Index("i", "T")
    inner = make_sum((kk,), mul(t("w", kk), Delta(Affine(((1, uu), (2, kk)), 0, "T"), ii)))
    out = fire("contract deltas", make_sum((uu,), mul(t("g", uu), inner)))
    assert to_text(out) == "sum_k [0 <= i-2k < U] * g[i-2k] * w[k]"


@covers("contract deltas")
def test_contract_deltas_does_not_fire():
    no_fire("contract deltas", mul(t("X", s, j), Delta(n, i)))  # no sum
    # the sum binds m, the delta holds only free indices
    no_fire("contract deltas", make_sum((m,), mul(t("X", s, m), t("W", n, m), Delta(n, i))))
    # a delta inside an addition is not a factor of the body (split the sum first)
    no_fire("contract deltas", make_sum((c,), add(mul(t("T", s, c), Delta(c, cj)), t("Z", s, c))))
    # a nested sum's delta that no index of the outer sum solves (coefficient 2)

    uu, kk, ii = Index("u", "U"), Index("k", "K"), Index("i", "T")
    inner = make_sum((kk,), mul(t("w", kk), Delta(Affine(((2, uu), (2, kk)), 0, "T"), ii)))
    no_fire("contract deltas", make_sum((uu,), mul(t("g", uu), inner)))


@covers("delta identities")
def test_delta_identities_fire():
    """delta_ii = 1 and delta_ab delta_ab = delta_ab (seed 002, 1e: delta_si delta_si)."""
    assert fire("delta identities", Delta(i, i)) == ONE
    out = fire("delta identities", mul(Delta(s, si), Delta(s, si), t("X", s, m)))
    assert out == mul(Delta(s, si), t("X", s, m))
    out = fire("delta identities", mul(Delta(s, si), Delta(si, s)))
    assert out == Delta(s, si)
    assert fire("delta identities", Pow(Delta(s, si), num(2))) == Delta(s, si)


@covers("delta identities")
def test_delta_identities_do_not_fire():
    no_fire("delta identities", Delta(n, i))
    no_fire("delta identities", mul(Delta(n, i), Delta(m, j)))
    no_fire("delta identities", Pow(Delta(n, i), num(-1)))


@covers("cancel")
def test_cancel_fires():
    """x^a x^b = x^(a+b): seed 002 2a, T_sc / Y_sc * Y_sc = T_sc."""
    out = fire("cancel", mul(t("T", s, c), power(t("P", s, c), num(-1)), t("P", s, c)))
    assert out == t("T", s, c)
    # seed 002 1e: (sum_k e^{X_sk}) / (sum_k e^{X_sk})^2 = 1 / sum_k e^{X_sk}
    total = make_sum((k,), Func("exp", t("Z", s, k)))
    out = fire("cancel", mul(Func("exp", t("Z", s, c)), total, power(total, num(-2))))
    assert out == mul(Func("exp", t("Z", s, c)), power(total, num(-1)))


@covers("cancel")
def test_cancel_does_not_fire():
    no_fire("cancel", mul(t("T", s, c), t("P", s, c)))
    no_fire("cancel", mul(t("T", s, c), power(t("P", s, k), num(-1))))  # different entries


CAUSAL = problem("""
dims T
input S[T,T]
P[t,u] = [u <= t] exp(S[t,u]) / sum_{v <= t} exp(S[t,v])
f = sum_{t,u} P[t,u]
grad f wrt S
""")


@covers("fold definition")
def test_fold_definition_fires():
    """exp(X_sc) / sum_k exp(X_sk) = Y_sc (seed 002, 1e, the two lines before the last)."""
    assert fire("fold definition", softmax_body()) == t("P", s, c)
    total = make_sum((k,), Func("exp", t("Z", s, k)))
    two = mul(Func("exp", t("Z", s, c)), Func("exp", t("Z", s, cj)), power(total, num(-2)))
    out = fire("fold definition", two)
    assert same(out, mul(t("P", s, c), t("P", s, cj)))  # e^{X_sc} e^{X_sj} / (...)^2 = Y_sc Y_sj
    # a masked softmax: the bracket [u <= t] matches like any factor
    masked = fire("fold definition", CAUSAL.definitions["P"].body, Context(CAUSAL))
    assert masked == Tensor("P", CAUSAL.definitions["P"].indices)


@covers("fold definition")
def test_fold_definition_does_not_fire():
    no_fire("fold definition", Func("exp", t("Z", s, c)))
    no_fire("fold definition", div(Func("exp", t("Z", s, c)),
                                   make_sum((k,), Func("exp", t("T", s, k)))))
    no_fire("fold definition", t("P", s, c))


@covers("sigmoid")
def test_sigmoid_identity_fires():
    """exp(u) / (1 + exp(u)) = sigmoid(u) and 1 / (1 + exp(-u)) = sigmoid(u) (the rule's
    docstring; checked numerically below)."""
    u = t("x", p)
    assert fire("sigmoid", div(Func("exp", u), add(Func("exp", u), ONE))) == Func("sigmoid", u)
    assert fire("sigmoid", div(ONE, add(Func("exp", neg(u)), ONE))) == Func("sigmoid", u)
    # 1 / (1 + exp(u)) = sigmoid(-u), next to another factor
    out = fire("sigmoid", div(t("A", p, q), add(Func("exp", u), ONE)))
    assert out == mul(t("A", p, q), Func("sigmoid", neg(u)))
    for v in (-1.3, 0.2, 2.5):
        sig = 1 / (1 + np.exp(-v))
        assert np.exp(v) / (1 + np.exp(v)) == pytest.approx(sig)
        assert 1 / (1 + np.exp(v)) == pytest.approx(1 / (1 + np.exp(-(-v))))


@covers("sigmoid")
def test_sigmoid_identity_does_not_fire():
    u = t("x", p)
    no_fire("sigmoid", div(Func("exp", u), add(Func("exp", u), num(2))))  # 2 + exp(u)
    no_fire("sigmoid", add(Func("exp", u), ONE))  # not in a denominator
    no_fire("sigmoid", div(Func("exp", u), add(Func("log", u), ONE)))


@covers("expand and collect")
def test_expand_and_collect_fires():
    """(1 - t) p + t (p - 1) = p - t: multiply out and collect, when that is shorter."""
    tt, pp = t("T", si, cj), t("P", si, cj)
    out = fire("expand and collect", add(mul(sub(ONE, tt), pp), mul(tt, sub(pp, ONE))))
    assert same(out, sub(pp, tt))


@covers("expand and collect")
def test_expand_and_collect_does_not_fire():
    tt, pp, zz = t("T", si, cj), t("P", si, cj), t("Z", si, cj)
    # multiplying out T (P + Z) + Z gives a longer sum: left alone
    no_fire("expand and collect", add(mul(tt, add(pp, zz)), zz))
    no_fire("expand and collect", mul(tt, add(pp, zz)))  # not a sum
    no_fire("expand and collect", add(tt, pp))  # nothing to multiply out


@covers("pull constant out of sum")
def test_pull_constant_out_of_sum_fires():
    """sum_c a b_c = a sum_c b_c (seed 002, 1e: sum_c dL/dY_ic Y_ic Y_ij)."""
    out = fire("pull constant out of sum", make_sum((c,), mul(t("T", si, c), t("P", si, cj))))
    assert out == mul(t("P", si, cj), make_sum((c,), t("T", si, c)))


@covers("pull constant out of sum")
def test_pull_constant_out_of_sum_does_not_fire():
    no_fire("pull constant out of sum", make_sum((c,), mul(t("T", si, c), t("P", si, c))))
    no_fire("pull constant out of sum", make_sum((c,), t("T", si, c)))
    no_fire("pull constant out of sum", mul(t("T", si, c), t("P", si, cj)))


@covers("expand product")
def test_expand_product_fires():
    """a (b + c) = a b + a c, where a delta then meets its sum (seed 002, 1e, last lines)."""
    term = make_sum((c,), mul(t("T", si, c), sub(Delta(c, cj), t("P", si, cj))))
    out = fire("expand product", term)
    assert to_text(out) == "sum_c (T[i,c] * delta(c,j) - T[i,c] * P[i,j])"
    # ... or a factor meets its reciprocal (seed 002, 1e: the quotient over (sum)^2)
    total = make_sum((k,), Func("exp", t("Z", s, k)))
    e = Func("exp", t("Z", s, c))
    term = mul(sub(mul(e, total), mul(e, t("T", s, c))), power(total, num(-2)))
    out = fire("expand product", term)
    assert same(out, sub(mul(e, total, power(total, num(-2))),
                         mul(e, t("T", s, c), power(total, num(-2)))))


@covers("expand product")
def test_expand_product_does_not_fire():
    no_fire("expand product", make_sum((c,), mul(t("T", si, c), add(t("Z", si, c), t("P", si, c)))))
    no_fire("expand product", mul(t("T", s, c), add(t("Z", s, c), t("P", s, c))))


@covers("split sum")
def test_split_sum_fires():
    """sum_c (a_c + b_c) = sum_c a_c + sum_c b_c."""
    term = make_sum((c,), sub(mul(t("T", si, c), Delta(c, cj)), mul(t("T", si, c), t("P", si, cj))))
    out = fire("split sum", term)
    assert same(out, sub(make_sum((c,), mul(t("T", si, c), Delta(c, cj))),
                         make_sum((c,), mul(t("T", si, c), t("P", si, cj))))), to_text(out)


@covers("split sum")
def test_split_sum_does_not_fire():
    no_fire("split sum", make_sum((c,), add(t("T", si, c), t("Z", si, c))))  # no delta to contract
    no_fire("split sum", make_sum((c,), mul(t("T", si, c), Delta(c, cj))))


@covers("assumption")
def test_assumption_fires():
    """One-hot rows: sum_c T_sc = 1 (seed 002 2a; seed 001: sum_i y_i = 1)."""
    assert fire("assumption", make_sum((c,), t("T", si, c))) == ONE
    assert fire("assumption", make_sum((k,), t("T", s, k))) == ONE  # any index names


@covers("assumption")
def test_assumption_does_not_fire():
    no_fire("assumption", make_sum((c,), t("Z", si, c)))  # not the assumed tensor
    no_fire("assumption", make_sum((si,), t("T", si, c)))  # sums the other axis
    no_fire("assumption", t("T", si, c))


@covers("collect terms")
def test_collect_terms_fires():
    """a x + b x = (a + b) x: y_k + y_k = 2 y_k (the quadratic form's two deltas)."""
    out = fire("collect terms", Add((t("x", r), t("x", r))))
    assert out == mul(num(2), t("x", r))
    out = fire("collect terms", add(mul(num(3), t("x", r)), neg(t("x", r)), t("A", r, r)))
    assert out == add(mul(num(2), t("x", r)), t("A", r, r))


@covers("collect terms")
def test_collect_terms_does_not_fire():
    no_fire("collect terms", add(t("x", r), t("A", r, r)))
    no_fire("collect terms", mul(num(2), t("x", r)))


@covers("factor")
def test_factor_fires():
    """a b + a c = a (b + c): seed 002 1e,
    delta_si delta_cj Y_sc - delta_si Y_sj Y_sc = delta_si Y_sc (delta_cj - Y_sj)."""
    term = sub(mul(t("P", s, c), Delta(s, si), Delta(c, cj)),
               mul(t("P", s, c), t("P", s, cj), Delta(s, si)))
    out = fire("factor", term, Context(PROBLEM, partial=False))
    assert to_text(out) == "P[s,c] * delta(s,i) * (delta(c,j) - P[s,j])"
    assert same(out, mul(Delta(s, si), t("P", s, c), sub(Delta(c, cj), t("P", s, cj))))
    # common numbers: 2 a + 2 b = 2 (a + b)
    out = fire("factor", add(mul(num(2), t("x", r)), mul(num(2), t("A", r, r))))
    assert out == mul(num(2), add(t("x", r), t("A", r, r)))


@covers("factor")
def test_factor_does_not_fire():
    no_fire("factor", add(t("T", si, cj), t("Z", si, cj)))
    # inside sum_c a delta_cj term is left for the sum to contract (rules.factor)
    term = sub(mul(t("T", si, c), Delta(c, cj)), mul(t("T", si, c), t("P", si, cj)))
    no_fire("factor", term, PARTIAL.inside((c,)))


@covers("tidy signs")
def test_tidy_signs_fires():
    """-c (a - b) = c (b - a): seed 002 2a, -1/S (T - Y) = 1/S (Y - T)."""
    one_over_s = div(ONE, DimSize("S"))
    term = mul(num(-1), one_over_s, sub(t("T", si, cj), t("P", si, cj)))
    out = fire("tidy signs", term)
    assert to_text(out) == "1/S * (P[i,j] - T[i,j])"
    assert to_text(fire("tidy signs", add(neg(t("T", si, cj)), t("P", si, cj)))) == "P[i,j] - T[i,j]"


@covers("tidy signs")
def test_tidy_signs_does_not_fire():
    no_fire("tidy signs", sub(t("P", si, cj), t("T", si, cj)))
    no_fire("tidy signs", neg(add(t("P", si, cj), t("T", si, cj))))  # nothing to flip into
    no_fire("tidy signs", mul(num(-1), t("T", si, cj)))


@covers("derivative of a bracket")
def test_a_bracket_differentiates_to_zero():
    """d [x_p > 0] / d x_q = 0: constant wherever it is differentiable (x_p != 0)."""
    from indexcalc.terms import Bracket

    assert fire("derivative of a bracket",
                Deriv(Bracket(">", t("x", p), num(0)), t("x", q))) == ZERO
    no_fire("derivative of a bracket", Deriv(t("x", p), t("x", q)))
    no_fire("derivative of a bracket", Bracket(">", t("x", p), num(0)))


SYMMETRIC = Context(problem("""
    dims K
    input x[K], S[K,K] symmetric, A[K,K]
"""))


@covers("symmetric input")
def test_symmetric_input_writes_the_summed_index_second():
    """S_qp = S_pq for S declared symmetric: sum_q S_qp x_q is sum_q S_pq x_q."""
    out = fire("symmetric input", make_sum((q,), mul(t("S", q, p), t("x", q))), SYMMETRIC)
    assert out == make_sum((q,), mul(t("S", p, q), t("x", q)))
    # a tensor not declared symmetric, both indices summed, or the summed one already second
    no_fire("symmetric input", make_sum((q,), mul(t("A", q, p), t("x", q))), SYMMETRIC)
    no_fire("symmetric input", make_sum((p, q), mul(t("S", q, p), t("x", q))), SYMMETRIC)
    no_fire("symmetric input", make_sum((q,), mul(t("S", p, q), t("x", q))), SYMMETRIC)
    # never inside a derivative still to be taken (d/dS is the unconstrained gradient)
    no_fire("symmetric input",
            make_sum((q,), mul(Deriv(t("S", q, p), t("S", r, r)), t("x", q))), SYMMETRIC)


# --- symmetric inputs (CONTRACT section 3) --------------------------------------------------

QUADRATIC = """
dims N
input x[N], S[N,N]{symmetric}
f = sum_{{i,j}} x[i] S[i,j] x[j]
grad f wrt x
"""


def test_a_symmetric_input_turns_s_plus_s_transpose_into_twice_s():
    """d(x^T S x)/dx = (S + S^T) x, and 2 S x for a symmetric S (Matrix Cookbook, 2012,
    eq. 81 with B = B^T); the step that uses S_ki = S_ik is named."""
    from conftest import derive_text

    general = derive_text(QUADRATIC.format(symmetric=""))
    (r,) = general.results
    assert r.matrix.text.count("S") == 2, r.matrix.text
    symmetric = derive_text(QUADRATIC.format(symmetric=" symmetric"))
    (r,) = symmetric.results
    assert r.matrix.text == "2 * (S @ x)", r.matrix.text
    assert r.check.passed
    assert "symmetric input" in [step.rule for block in r.blocks for step in block.steps]


def test_a_gradient_with_respect_to_a_symmetric_input_is_the_unconstrained_one():
    """d(sum_ij A_ij S_ji)/dS_kl = A_lk, entry by entry, whatever S's symmetry: the
    symmetry is never used inside a derivative still to be taken, and the check, which
    perturbs each entry alone, agrees."""
    from conftest import derive_text

    d = derive_text("""
dims N
input A[N,N], S[N,N] symmetric
f = sum_{i,j} A[i,j] S[j,i]
grad f wrt S
""")
    (r,) = d.results
    assert r.matrix.text == "A.T", r.matrix.text
    assert r.check.passed


def test_the_check_draws_a_symmetric_input_symmetric():
    from indexcalc.check.numeric import make_world
    from indexcalc.syntax.idx import parse_text

    world = make_world(parse_text(QUADRATIC.format(symmetric=" symmetric")), seed=4)
    S = world.values["S"]
    assert np.array_equal(S, S.T)
    assert not np.array_equal(world.values["x"], world.values["x"][::-1])


@pytest.mark.parametrize("declaration", ["S[N,M] symmetric", "S[N] symmetric", "S symmetric"])
def test_symmetric_needs_a_square_input(declaration):
    from indexcalc.problem import InputError
    from indexcalc.syntax.idx import parse_text

    with pytest.raises(InputError) as caught:
        parse_text(f"dims N, M\ninput {declaration}\n", "f.idx")
    assert "symmetric needs a square input" in str(caught.value)
    assert caught.value.location.column == declaration.index("symmetric") + 7


# --- index arithmetic (CONTRACT section 3) ---------------------------------------------

SHIFTS = Context(problem("""
    dims T, K
    dims U = T - K + 1
    input x[T], w[K], g[U]
"""))
tt, kk, uu, ll = Index("t", "T"), Index("k", "K"), Index("u", "U"), Index("l", "T")


def shifted(*terms, offset=0, dim=""):
    return Affine(tuple(terms), offset, dim)


@covers("contract deltas")
def test_contract_a_shifted_delta_keeps_the_range_where_it_can_clip():
    """sum_u g_u delta(u+k, l) = [0 <= l-k < U] g_{l-k} (u = l - k)."""
    term = Sum((uu,), mul(t("g", uu), Delta(shifted((1, uu), (1, kk), dim="T"), ll)))
    assert to_text(fire("contract deltas", term, SHIFTS)) == "[0 <= l-k < U] * g[l-k]"


@covers("zero padding")
def test_zero_padding_absorbs_the_bracket_beside_a_read_at_the_same_position():
    """[0 <= l-k < U] g_{l-k} = g_{l-k}: g reads 0 outside 0..U-1."""
    at = shifted((1, ll), (-1, kk), dim="U")
    assert fire("zero padding", mul(in_range(at, "U"), t("g", at)), SHIFTS) == t("g", at)
    no_fire("zero padding", mul(in_range(at, "T"), t("g", at)), SHIFTS)  # another range


@covers("index in range")
def test_index_in_range_uses_the_dim_formulas():
    """u + k < T for u < U = T - K + 1 and k < K; t + 1 < T is not always so."""
    assert within(SHIFTS.problem, shifted((1, uu), (1, kk)), "T")
    assert not within(SHIFTS.problem, shifted((1, tt), offset=1), "T")
    assert not within(SHIFTS.problem, shifted((1, ll), (-1, kk)), "U")
    assert fire("index in range", in_range(shifted((1, uu), (1, kk)), "T"), SHIFTS) == ONE
    no_fire("index in range", in_range(shifted((1, ll), (-1, kk)), "U"), SHIFTS)


@covers("change of summation index")
def test_change_of_summation_index_moves_a_sum_to_the_shorter_axis():
    """sum_u g_u w_{l-u} = sum_k [0 <= l-k < U] g_{l-k} w_k (k = l - u)."""
    term = Sum((uu,), mul(t("g", uu), t("w", shifted((1, ll), (-1, uu), dim="K"))))
    out = fire("change of summation index", term, SHIFTS)
    assert to_text(out) == "sum_k [0 <= l-k < U] * g[l-k] * w[k]"
    no_fire("change of summation index", out, SHIFTS)  # over the kernel already


# --- matrix functions (CONTRACT section 3; Matrix Cookbook, Petersen & Pedersen 2012) -----

MATRICES = Context(problem("""
    dims N
    input S[N,N], v[N]
"""))
ni, nj, nk, nl = (Index(x, "N") for x in "ijkl")


@covers("derivative of an inverse")
def test_derivative_of_an_inverse_is_the_cookbooks_eq_59_through_the_entries():
    out = fire("derivative of an inverse",
               Deriv(MatrixFunc("inv", "S", (ni, nj)), t("S", Index("p", "N"), Index("q", "N"))),
               MATRICES)
    assert to_text(out) == "sum_{k,l} -inv(S)[i,k] * inv(S)[l,j] * d(S[k,l])/d(S[p,q])"
    no_fire("derivative of an inverse", Deriv(MatrixFunc("inv", "S", (ni, nj)), t("v", nk)),
            MATRICES)


@covers("derivative of a determinant")
def test_derivative_of_a_determinant_is_eq_49():
    p, q = Index("p", "N"), Index("q", "N")
    out = fire("derivative of a determinant", Deriv(MatrixFunc("det", "S"), t("S", p, q)),
               MATRICES)
    assert to_text(out) == "sum_{k,l} det(S) * inv(S)[l,k] * d(S[k,l])/d(S[p,q])"
    no_fire("derivative of a determinant", Deriv(MatrixFunc("logdet", "S"), t("S", p, q)),
            MATRICES)


@covers("derivative of a log-determinant")
def test_derivative_of_a_log_determinant_is_eq_57():
    p, q = Index("p", "N"), Index("q", "N")
    out = fire("derivative of a log-determinant", Deriv(MatrixFunc("logdet", "S"), t("S", p, q)),
               MATRICES)
    assert to_text(out) == "sum_{k,l} inv(S)[l,k] * d(S[k,l])/d(S[p,q])"
    no_fire("derivative of a log-determinant", Deriv(MatrixFunc("logdet", "S"), t("v", nk)),
            MATRICES)


@covers("derivative of a bracket")
def test_the_argmax_bracket_of_a_maximum_differentiates_to_zero():
    """d [d == argmax_d2 x_d2] = 0: constant wherever the maximiser is unique."""
    choice = Arg("max", nk, Index("k2", "N"), t("v", Index("k2", "N")))
    assert fire("derivative of a bracket", Deriv(choice, t("v", ni)), MATRICES) == ZERO


def test_every_rule_is_tested():
    """Runs last in this file: every rule of the table has its fire/no-fire cases above."""
    assert TESTED == set(RULE), f"rules without tests: {sorted(set(RULE) - TESTED)}"
