"""Tests of the engine: the step sequences of the hand derivations, and its invariants.

The sequences are the documents' (../shared/seeds/): seed 002 questions 1a-1e and 2a, seed 000
(single and multiple datapoints), seed 001 and seed 003.  Each block is one chain of
equalities as the documents write them; the tests pin the rule of every step and the
expression it produces where the document shows it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import indexcalc.calculus.engine as engine_module
from conftest import (
    DERIVATIONS, assert_close, assert_subsequence, call, derive_text, ix, problem, result,
)
from indexcalc.calculus.engine import DerivationError, Engine
from indexcalc.syntax.idx import parse_file
from indexcalc.render.printing import to_text
from indexcalc.calculus.rules import RULES, Rule
from indexcalc.terms import (
    ONE, Delta, Deriv, DimSize, Func, Grad, Sum, Tensor, div, make_sum, mul, same, sub,
)


def derive_file(name: str, wrt: str, kind: str = "grad"):
    """Engine(problem).derive(goal) for the goal ``kind ... wrt`` of derivations/<name>.idx."""
    prob = parse_file(str(DERIVATIONS / f"{name}.idx"))
    goal = next(g for g in prob.goals if g.wrt == wrt and g.kind == kind)
    return Engine(prob).derive(goal)


def steps_of(b) -> list[tuple[str, str]]:
    """A block's steps as (rule, text after the step)."""
    return [(s.rule, to_text(s.after)) for s in b.steps]


def local(res, name: str):
    """The block deriving the local derivative d name[...] / d wrt[...]."""
    hits = [b for b in res.blocks if isinstance(b.target, Deriv) and b.target.expr.name == name]
    assert len(hits) == 1, [to_text(b.target) for b in res.blocks]
    return hits[0]


def block_for(res, target):
    """The (last) block computing ``target``: for a gradient, the block that ends with it."""
    hits = [b for b in res.blocks if b.target == target]
    assert hits, [to_text(b.target) for b in res.blocks]
    return hits[-1]


def all_rules(res) -> list[str]:
    return [s.rule for b in res.blocks for s in b.steps]


def t(name, *indices):
    return Tensor(name, indices)


S_, M_, N_, C_ = "S", "M", "N", "C"
s, n, m, c = ix("s", S_), ix("n", N_), ix("m", M_), ix("c", C_)


# --- seed 002, question 1 ---------------------------------------------------------------------------

def test_seed002_q1a_grad_of_linear_layer_wrt_W():
    """Seed 002, 1a: dL/dW_ij = sum_{s,n} dL/dY_sn dY_sn/dW_ij;
    dY_sn/dW_ij = sum_m X_sm dW_nm/dW_ij = sum_m X_sm delta_ni delta_mj = X_sj delta_ni;
    dL/dW_ij = sum_{s,n} dL/dY_sn X_sj delta_ni = sum_s dL/dY_si X_sj."""
    res = derive_file("linear_layer", "W")
    assert all_rules(res) == ["chain rule", "expand definition", "linearity",
                              "derivative of an entry", "contract deltas",
                              "substitute", "contract deltas"]
    i, j = ix("i", N_), ix("j", M_)
    assert [b.target for b in res.blocks] == [
        Grad("L", "W", (i, j)), Deriv(t("Y", s, n), t("W", i, j)), Grad("L", "W", (i, j))]
    assert steps_of(res.blocks[0]) == [
        ("chain rule", "sum_{s,n} dL_dY[s,n] * d(Y[s,n])/d(W[i,j])")]
    assert steps_of(local(res, "Y")) == [
        ("expand definition", "d(sum_m X[s,m] * W[n,m] + b[n])/d(W[i,j])"),
        ("linearity", "sum_m X[s,m] * d(W[n,m])/d(W[i,j])"),
        ("derivative of an entry", "sum_m X[s,m] * delta(n,i) * delta(m,j)"),
        ("contract deltas", "X[s,j] * delta(n,i)"),
    ]
    assert steps_of(res.blocks[-1]) == [
        ("substitute", "sum_{s,n} dL_dY[s,n] * X[s,j] * delta(n,i)"),
        ("contract deltas", "sum_s dL_dY[s,i] * X[s,j]"),
    ]
    assert res.target == Grad("L", "W", (i, j))
    assert same(res.index, make_sum((s,), mul(Grad("L", "Y", (s, i)), t("X", s, j))))


def test_seed002_q1b_grad_of_linear_layer_wrt_b():
    """Seed 002, 1b: dY_sn/db_j = db_n/db_j = delta_nj; dL/db_j = sum_s dL/dY_sj (= 1^T dL/dY)."""
    res = derive_file("linear_layer", "b")
    assert all_rules(res) == ["chain rule", "expand definition", "linearity",
                              "derivative of an entry", "substitute", "contract deltas"]
    assert steps_of(local(res, "Y"))[1:] == [
        ("linearity", "d(b[n])/d(b[i])"),
        ("derivative of an entry", "delta(n,i)"),
    ]
    assert steps_of(res.blocks[-1]) == [
        ("substitute", "sum_{s,n} dL_dY[s,n] * delta(n,i)"),
        ("contract deltas", "sum_s dL_dY[s,i]"),
    ]


def test_seed002_q1c_grad_of_linear_layer_wrt_X():
    """Seed 002, 1c: dY_sn/dX_ij = sum_m delta_si delta_mj W_nm = delta_si W_nj;
    dL/dX_ij = sum_n dL/dY_in W_nj."""
    res = derive_file("linear_layer", "X")
    assert all_rules(res) == ["chain rule", "expand definition", "linearity",
                              "derivative of an entry", "contract deltas",
                              "substitute", "contract deltas"]
    assert steps_of(local(res, "Y"))[1:] == [
        ("linearity", "sum_m d(X[s,m])/d(X[i,j]) * W[n,m]"),
        ("derivative of an entry", "sum_m delta(s,i) * delta(m,j) * W[n,m]"),
        ("contract deltas", "delta(s,i) * W[n,j]"),
    ]
    assert to_text(res.index) == "sum_n dL_dY[i,n] * W[n,j]"


def test_seed002_q1d_activation():
    """Seed 002, 1d: dY_sn/dX_ij = h'(X_sn) dX_sn/dX_ij = h'(X_sn) delta_si delta_nj;
    dL/dX_ij = dL/dY_ij h'(X_ij) (the document's middle line divides by h'; it multiplies)."""
    res = derive_file("activation", "X")
    assert all_rules(res) == ["chain rule", "expand definition",
                              "derivative of a declared function",
                              "derivative of an entry", "substitute", "contract deltas"]
    assert steps_of(local(res, "Y")) == [
        ("expand definition", "d(h(X[s,n]))/d(X[i,j])"),
        ("derivative of a declared function", "h'(X[s,n]) * d(X[s,n])/d(X[i,j])"),
        ("derivative of an entry", "h'(X[s,n]) * delta(s,i) * delta(n,j)"),
    ]
    i, j = ix("i", S_), ix("j", N_)
    assert same(res.index, mul(Grad("L", "Y", (i, j)), Func("h", t("X", i, j), 1)))


def test_seed002_q1e_softmax():
    """Seed 002, 1e: the quotient rule on Y_sc = e^{X_sc} / sum_k e^{X_sk}, the two parts
    e^{X_sc} delta_si delta_cj and e^{X_sj} delta_si, folded back into Y:
    dY_sc/dX_ij = delta_si Y_sc (delta_cj - Y_sj); then
    dL/dX_ij = Y_ij (dL/dY_ij - sum_c dL/dY_ic Y_ic)."""
    res = derive_file("softmax", "X")
    local_rules = [rule for rule, _ in steps_of(local(res, "Y"))]
    assert_subsequence(["expand definition", "quotient rule", "derivative of exp",
                        "derivative of an entry", "contract deltas", "fold definition"],
                       local_rules)
    after = dict(steps_of(local(res, "Y")))
    assert "exp(X[s,c]) * exp(X[s,j]) * delta(s,i)" in after["contract deltas"]
    i, j = ix("i", S_), ix("j", C_)
    Y = lambda a, b: t("Y", a, b)  # noqa: E731
    folded = [s_.after for s_ in local(res, "Y").steps if s_.rule == "fold definition"]
    assert same(folded[-1], sub(mul(Delta(s, i), Delta(c, j), Y(s, c)),
                                mul(Delta(s, i), Y(s, j), Y(s, c))))
    local_result = local(res, "Y").result
    assert same(local_result, mul(Y(s, c), Delta(s, i), sub(Delta(c, j), Y(s, j))))
    assert_subsequence(["chain rule", "quotient rule", "fold definition", "substitute",
                        "contract deltas"], all_rules(res))
    expected = mul(Y(i, j), sub(Grad("L", "Y", (i, j)),
                                make_sum((c,), mul(Grad("L", "Y", (i, c)), Y(i, c)))))
    assert same(res.index, expected)


def test_seed002_q1e_jacobian_is_the_local_derivative():
    """Seed 002, 1e: the full Jacobian dY_sc/dX_ij = delta_si Y_sc (delta_cj - Y_sj)."""
    res = derive_file("softmax", "X", kind="jacobian")
    i, j = ix("i", S_), ix("j", C_)
    assert res.target == Deriv(t("Y", s, c), t("X", i, j))
    assert same(res.index, mul(Delta(s, i), t("Y", s, c), sub(Delta(c, j), t("Y", s, j))))
    assert "quotient rule" in all_rules(res)


def test_seed002_q1f_cross_entropy():
    """Seed 002, 1f: dL/dX_ij = -1/S sum_{s,c} T_sc/X_sc delta_si delta_cj = -1/S T_ij / X_ij."""
    res = derive_file("cross_entropy", "X")
    assert all_rules(res) == ["expand definition", "linearity", "derivative of log",
                              "derivative of an entry", "contract deltas"]
    assert to_text(res.index) == "-1/S * T[i,j] / X[i,j]"


def test_seed002_q2a_softmax_cross_entropy():
    """Seed 002, 2a: 1f pushed through 1e.  With one-hot rows (the "assumption" step,
    sum_c T_ic = 1) the gradient is (Y - T)/S, not the document's M."""
    res = derive_file("softmax_cross_entropy", "Z")
    names = all_rules(res)
    assert_subsequence(["chain rule", "quotient rule", "fold definition", "substitute",
                        "cancel", "contract deltas", "assumption"], names)
    final = res.blocks[-1]
    before_assumption = [st for st in final.steps if st.rule == "assumption"][0]
    assert "sum_c T[i,c]" in to_text(before_assumption.before)
    assert "sum_c" not in to_text(before_assumption.after)
    i, j = ix("i", S_), ix("j", C_)
    expected = mul(div(ONE, DimSize("S")), sub(t("Y", i, j), t("T", i, j)))
    assert same(res.index, expected)
    # the 1f part, dL/dY_ij = -1/S T_ij / Y_ij, is derived in its own block
    assert to_text(block_for(res, Grad("L", "Y", (i, j))).result) == "-1/S * T[i,j] / Y[i,j]"


# --- seed 000 -----------------------------------------------------------------------------------------

def test_seed000_single_datapoint():
    """Seed 000, single datapoint: ds_i/dW_jk = sum_d x_d dW_di/dW_jk = x_j delta_ik;
    dF/dW_jk = dF/ds_k x_j (= (x^T grad_s F)_jk)."""
    res = derive_file("scores_single", "W")
    assert all_rules(res) == ["chain rule", "expand definition", "linearity",
                              "derivative of an entry", "contract deltas",
                              "substitute", "contract deltas"]
    assert steps_of(local(res, "s"))[-1] == ("contract deltas", "x[j] * delta(i,k)")
    j, k = ix("j", "D"), ix("k", "C")
    assert same(res.index, mul(Grad("F", "s", (k,)), t("x", j)))


def test_seed000_multiple_datapoints():
    """Seed 000, multiple datapoints: ds_ij/dW_kl = sum_d X_id delta_dk delta_jl = X_ik delta_jl;
    dF/dW_kl = sum_i dL/ds_il X_ik (= (X^T grad_s L)_kl)."""
    res = derive_file("scores_batch", "W")
    assert steps_of(local(res, "s")) == [
        ("expand definition", "d(sum_d X[i,d] * W[d,j])/d(W[k,l])"),
        ("linearity", "sum_d X[i,d] * d(W[d,j])/d(W[k,l])"),
        ("derivative of an entry", "sum_d X[i,d] * delta(d,k) * delta(j,l)"),
        ("contract deltas", "X[i,k] * delta(j,l)"),
    ]
    assert steps_of(res.blocks[-1]) == [
        ("substitute", "sum_{i,j} dL_ds[i,j] * X[i,k] * delta(j,l)"),
        ("contract deltas", "sum_i dL_ds[i,l] * X[i,k]"),
    ]


# --- seeds 001 and 003 ----------------------------------------------------------------------------------

def test_seed001_softmax_cross_entropy_single_point():
    """Seed 001: dp_i/do_k = p_k(1 - p_k) if i = k, -p_k p_i otherwise, i.e.
    p_i (delta_ik - p_k); dL/do_k = -y_k + sum_i y_i p_k = p_k - y_k with sum_i y_i = 1."""
    jac = derive_file("softmax_single", "o", kind="jacobian")
    i, k = ix("i", "K"), ix("k", "K")
    assert same(jac.index, mul(t("p", i), sub(Delta(i, k), t("p", k))))
    res = derive_file("softmax_single", "o")
    assert_subsequence(["quotient rule", "fold definition", "substitute", "assumption"],
                       all_rules(res))
    assert same(res.index, sub(t("p", k), t("y", k)))


def test_seed003_softmax_columns():
    """Seed 003: with samples as columns, dE/dZ_kn = S_kn - Y_kn (one-hot Y) and
    dE/dW_il = sum_n X_in (S_ln - Y_ln), i.e. X (S - Y)^T."""
    res = derive_file("softmax_columns", "W")
    assert "assumption" in all_rules(res)
    i, l, n_ = ix("i", "M"), ix("l", "K"), ix("n", "N")
    zi, zl = ix("i", "K"), ix("l", "N")  # dE/dZ has Z's axes K x N
    dz = block_for(res, Grad("E", "Z", (zi, zl))).result
    assert same(dz, sub(t("S", zi, zl), t("Y", zi, zl)))
    assert same(res.index, make_sum((n_,), mul(sub(t("S", l, n_), t("Y", l, n_)), t("X", i, n_))))


# --- invariants -----------------------------------------------------------------------------------------

CAPTURE = """
    dims S, M, N
    input X[S,M], W[N,M]
    Y[s,n] = sum_i X[s,i] * W[n,i]
    L = loss(Y)
    grad L wrt W, X
"""


def test_bound_index_named_like_the_result_indices_is_not_captured():
    """A definition summing over i, differentiated with respect to W_ij: the summed i must be
    renamed, never captured (seed 002 1a with the document's summation letter clashing)."""
    prob = problem(CAPTURE)
    i, j = ix("i", "N"), ix("j", "M")
    for wrt_indices in ((i, j), (ix("j", "N"), ix("i", "M"))):
        engine = Engine(prob)
        term, _ = engine.total_derivative(Tensor("L"), "W", wrt_indices)
        a, b = wrt_indices
        assert same(term, make_sum((s,), mul(Grad("L", "Y", (s, a)), t("X", s, b)))), to_text(term)
        local = engine.local_derivative(t("Y", s, n), Tensor("W", wrt_indices))
        assert same(local.result, mul(t("X", s, b), Delta(n, a))), to_text(local.result)


def test_bound_index_capture_numerically():
    """The same clash through the whole pipeline, checked against dL/dY^T X and dL/dY W."""
    derived = derive_text(CAPTURE)
    gen = np.random.default_rng(7)
    X, W, G = gen.normal(size=(6, 4)), gen.normal(size=(5, 4)), gen.normal(size=(6, 5))
    for res in derived.results:
        assert res.check.passed, (res.wrt, res.check)
    assert_close(call(result(derived, "W"), X=X, W=W, dL_dY=G), G.T @ X)
    assert_close(call(result(derived, "X"), X=X, W=W, dL_dY=G), G @ W)


def test_summed_indices_named_i_and_j_in_a_chain():
    """Two definitions whose summed indices are i and j, a result indexed i, j: the check
    (finite differences) and an independent formula agree."""
    derived = derive_text("""
        dims S, M, N
        input X[S,M], W[N,M]
        H[s,n] = sum_j X[s,j] * W[n,j]
        f = sum_{i,j} tanh(H[i,j])
        grad f wrt W, X
    """)
    gen = np.random.default_rng(3)
    X, W = gen.normal(size=(7, 3)), gen.normal(size=(2, 3))
    D = 1 - np.tanh(X @ W.T) ** 2
    assert_close(call(result(derived, "W"), X=X, W=W), D.T @ X)
    assert_close(call(result(derived, "X"), X=X, W=W), D @ W)
    assert all(r.check.passed for r in derived.results)


ALL_FILES = sorted(p.stem for p in DERIVATIONS.glob("*.idx"))


def rebinds(term, bound=frozenset()) -> bool:
    """True when a sum binds an index name that an enclosing sum already binds."""
    if isinstance(term, Sum):
        names = {i.name for i in term.indices}
        if names & bound:
            return True
        bound = bound | names
    return any(rebinds(child, bound) for child in term.children())


@pytest.mark.parametrize("name", ALL_FILES)
def test_no_sum_rebinds_an_index_of_an_enclosing_sum(name):
    """CONTRACT section 1: an index bound by an enclosing sum cannot be summed again; every
    step of the shipped derivations stays inside the language."""
    from conftest import derivation
    for res in derivation(name).results:
        for b in res.blocks:
            for st in b.steps:
                assert not rebinds(st.after), (name, b.title, st.rule, to_text(st.after))


SHADOW = """
    dims N, M
    input x[N], W[M,N]
    y[m] = W[m,n] x[n]
    f = sum_k y[k] * (y[k] - sum_m y[m])
    grad f wrt x
"""


def test_shadowing_example_is_numerically_right():
    """f = y.y - (1.y)^2 with y = W x: df/dx = 2 W^T (y - sum(y))."""
    res = result(derive_text(SHADOW), "x")
    gen = np.random.default_rng(2)
    x, W = gen.normal(size=4), gen.normal(size=(3, 4))
    y = W @ x
    assert_close(call(res, x=x, W=W), 2 * W.T @ (y - y.sum()))
    assert res.check.passed


def test_substitution_does_not_nest_sums_over_the_same_index():
    derived = derive_text(SHADOW)
    res = result(derived, "x")
    assert not rebinds(res.index), to_text(res.index)
    # the printed index form reads back (printing.py docstring) to an equal term
    again = problem(SHADOW.replace("grad f wrt x", f"g[i] = {to_text(res.index)}"))
    assert same(again.definitions["g"].body, res.index)


@pytest.mark.parametrize("name", ALL_FILES)
def test_free_indices_never_change_within_a_block(name):
    """STYLE practice 4: every step keeps the free indices of the block it belongs to, and the
    steps form one chain of equalities (each step starts where the previous one ended)."""
    prob = parse_file(str(DERIVATIONS / f"{name}.idx"))
    engine = Engine(prob)
    for goal in prob.goals:
        res = engine.derive(goal)
        for b in res.blocks:
            current = b.start
            for st in b.steps:
                assert st.after.free <= b.start.free, (name, b.title, st.rule)
                assert st.before == current, (name, b.title, st.rule)
                current = st.after


@pytest.mark.parametrize("name", ALL_FILES)
def test_the_printed_result_is_the_last_step(name):
    """STYLE "The house": the steps shown and the result printed come from one engine run."""
    prob = parse_file(str(DERIVATIONS / f"{name}.idx"))
    engine = Engine(prob)
    for goal in prob.goals:
        res = engine.derive(goal)
        assert res.index == res.blocks[-1].result
        assert not res.index.has_deriv, to_text(res.index)


def test_engine_rejects_a_step_that_changes_the_free_indices(monkeypatch):
    """The invariant is enforced by the engine, not by the rules: a rule that introduces a
    free index stops the derivation with a DerivationError."""
    def bad(term, ctx):
        if isinstance(term, Tensor) and term.name == "X":
            return mul(term, Delta(ix("z", "S"), ix("z2", "S")))
        return None

    monkeypatch.setattr(engine_module, "RULES", (Rule("bad", bad, "none"),) + RULES)
    prob = parse_file(str(DERIVATIONS / "linear_layer.idx"))
    with pytest.raises(DerivationError, match="free indices"):
        Engine(prob).derive(prob.goals[0])


def test_engine_stops_a_runaway_rewrite():
    prob = parse_file(str(DERIVATIONS / "softmax.idx"))
    with pytest.raises(DerivationError):
        Engine(prob, max_steps=3).derive(prob.goals[0])


def test_results_follow_the_goal_order():
    """CONTRACT section 2: results in the order of the goals, then the order after wrt."""
    from conftest import derivation
    assert [(r.kind, r.wrt) for r in derivation("linear_layer").results] == [
        ("grad", "W"), ("grad", "b"), ("grad", "X")]
    assert [(r.kind, r.wrt) for r in derivation("softmax").results] == [
        ("jacobian", "X"), ("grad", "X")]


def _all_step_texts() -> list[str]:
    out = []
    for name in ALL_FILES:
        prob = parse_file(str(DERIVATIONS / f"{name}.idx"))
        engine = Engine(prob)
        for goal in prob.goals:
            res = engine.derive(goal)
            out.append(to_text(res.index))
            out += [f"{b.title}|{st.rule}|{to_text(st.after)}" for b in res.blocks for st in b.steps]
    return out


def test_determinism_within_one_process():
    assert _all_step_texts() == _all_step_texts()


def test_determinism_across_hash_seeds():
    """Two interpreters with different string hashing give identical steps (no set order
    leaks into the output)."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
              "import test_engine; print('\\n'.join(test_engine._all_step_texts()))")
    tests_dir = str(Path(__file__).resolve().parent)
    root = str(Path(__file__).resolve().parent.parent)
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run([sys.executable, "-c", script, root, tests_dir], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].strip()


def test_every_recorded_step_is_a_rule_of_the_table_or_a_planned_step():
    """One wrapper records every step (Engine.step): each step names a Rule, and a step
    without a reason of its own gives the rule's identity, written once."""
    from conftest import DERIVATIONS
    from indexcalc.calculus.rules import CHAIN_RULE, NO_DEPENDENCE, SUBSTITUTE
    from indexcalc.pipeline import run

    rules = {r.name: r for r in (*RULES, CHAIN_RULE, NO_DEPENDENCE, SUBSTITUTE)}
    for path in sorted(DERIVATIONS.glob("*.idx")):
        for res in run(parse_file(str(path))).results:
            for block in res.blocks:
                for step in block.steps:
                    assert step.rule in rules, (path.name, step.rule)
                    if step.rule not in ("chain rule", "substitute", "no dependence",
                                         "expand definition"):
                        assert step.reason == rules[step.rule].identity


def test_a_loss_argument_that_also_feeds_another_argument_is_derived_through_both():
    """L = loss(H2, C2) with H2 = O tanh(C2) (an LSTM cell's two outputs): dL/dC2 is the
    upstream gradient plus the path through H2 (it was the upstream gradient alone, and
    the check failed)."""
    from conftest import derive_text

    derived = derive_text("""
        dims B, H
        input c[B,H], o[B,H]
        C2[b,k] = 2 * c[b,k]
        H2[b,k] = o[b,k] * tanh(C2[b,k])
        L = loss(H2, C2)
        grad L wrt c
    """)
    (r,) = derived.results
    assert r.check.passed, r.check.detail
    assert "dL_dH2" in r.numpy.args and "dL_dC2" in r.numpy.args


def test_a_large_derived_gradient_of_a_loss_argument_is_written_out_not_named():
    """L = loss(H, C) with a large H built from C: dL/dC holds the upstream gradient of C;
    carried as the symbol dL/dC it was its own definition (RecursionError)."""
    from conftest import derive_text

    derived = derive_text("""
        dims S, M, N
        input X[S,M], W[N,M], V[N,N]
        C[s,n] = tanh(sum_m X[s,m] * W[n,m])
        A[s,n] = sum_k V[n,k] * C[s,k]
        B[s,n] = sigmoid(sum_k V[k,n] * A[s,k]) * exp(C[s,n]) + log(1 + C[s,n]^2)
        H[s,n] = tanh(B[s,n] * A[s,n] + sum_k C[s,k] * B[s,k])
        L = loss(H, C)
        grad L wrt W
    """)
    (r,) = derived.results
    assert r.check.passed, r.check.detail
    assert "dL_dH" in r.numpy.args and "dL_dC" in r.numpy.args


def _nested_chain(depth: int) -> str:
    """Each layer uses its input twice, nonlinearly (issue 13): written out, the gradient
    doubles in size with every layer."""
    lines = ["dims N", "input y0[N]"]
    lines += [f"y{k}[i] = sin(y{k - 1}[i]) * sum_j y{k - 1}[j] * y{k - 1}[i]"
              for k in range(1, depth + 1)]
    return "\n".join(lines + [f"f = sum_i y{depth}[i]", "grad f wrt y0"]) + "\n"


def test_a_gradient_used_twice_per_layer_is_named_not_written_out():
    from indexcalc.calculus.engine import Engine
    from indexcalc.syntax.idx import parse_text

    sizes = []
    for depth in (6, 12, 24):
        problem = parse_text(_nested_chain(depth), "nested.idx")
        derived = Engine(problem).derive(problem.goals[0])
        names = [name for name, _, _ in derived.intermediates]
        assert names and all(name.startswith("df_dy") for name in names)
        sizes.append(derived.index.size + sum(t.size for _, _, t in derived.intermediates))
    assert sizes[2] < 5 * sizes[0]  # linear in the depth (written out: 2^24 times)


def test_named_gradients_are_computed_and_checked():
    from conftest import derive_text

    (r,) = derive_text(_nested_chain(7)).results
    assert r.check.passed, r.check.detail
    assert r.context is not None and "df_dy" in r.numpy.source
    assert any(name.startswith("df_dy") for name, _ in r.matrix.where)
    assert not any(a.startswith("df_dy") for a in r.numpy.args)  # computed, not passed in
