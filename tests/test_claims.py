"""Claims (CONTRACT section 5): ``claim`` statements decided against the derived results.

The linear layer is seed 002's question 1a-1c (``Y = X W^T + b``); its results as the
document writes them are ``(dL/dY)^T X``, ``1^T dL/dY`` and ``dL/dY W``.  A matrix claim is
parsed, never run: the tests below make sure that text which Python would run is refused.
"""
from __future__ import annotations

import json
import textwrap

import pytest

from indexcalc import cli
from indexcalc.problem import InputError
from indexcalc.syntax.idx import parse_text
from indexcalc.pipeline import run

LINEAR = """\
dims S, M, N
input X[S,M], W[N,M], b[N]
Y[s,n] = sum_m X[s,m] W[n,m] + b[n]
L = loss(Y)
grad L wrt W
"""


def verdicts(claims: str):
    derivation = run(parse_text(LINEAR + textwrap.dedent(claims), "claims.idx"))
    return derivation, derivation.claims


def one(claim: str):
    return verdicts(claim + "\n")[1][0]


# --- holds -----------------------------------------------------------------------------------

def test_the_derived_form_holds_symbolically():
    v = one("claim dL_dW = dL_dY.T @ X")  # seed 002, 1a
    assert v.holds and v.reason.startswith("symbolically")


def test_an_equivalent_form_written_differently_holds_numerically():
    v = one("claim dL_dW = (X.T @ dL_dY).T")
    assert v.holds and v.reason.startswith("numerically")
    assert "3 random draws" in v.reason


@pytest.mark.parametrize("text", [
    "claim dL_db = np.ones(S) @ dL_dY",            # seed 002, 1b: 1^T dL/dY
    "claim dL_db = dL_dY.sum(axis=0)",
    "claim dL_db = np.sum(dL_dY, axis=0)",
    "claim dL_db = 1.0 * (dL_dY.T @ np.ones(S))",
    "claim dL_dX = dL_dY @ W",                      # seed 002, 1c
    "claim dL_dX = np.einsum('sn,nm->sm', dL_dY, W)",
    "claim dL_db[i] = sum_s dL_dY[s,i]",            # an index claim
    "claim dL_dW[i,j] = dL_dY[s,i] X[s,j]",         # with the Einstein convention
])
def test_true_claims_hold(text):
    v = one(text)
    assert v.holds, v.reason
    assert v.counterexample is None


def test_an_index_claim_identical_up_to_bound_names_holds_symbolically():
    v = one("claim dL_dW[p,q] = sum_t dL_dY[t,p] * X[t,q]")
    assert v.holds and v.reason.startswith("symbolically")


def test_a_claim_asks_for_a_result_no_goal_asks_for():
    derivation, claims = verdicts("claim dL_dX = dL_dY @ W\n")
    assert [(r.kind, r.of, r.wrt) for r in derivation.results] == [
        ("grad", "L", "W"), ("grad", "L", "X")]
    assert claims[0].holds


def test_a_claim_may_name_a_definition_and_a_declared_function():
    text = """\
    dims S, N
    input X[S,N]
    function h
    Y[s,n] = h(X[s,n])
    L = loss(Y)
    claim dL_dX = dL_dY * h_prime(X)
    claim dL_dX = dL_dY * h(X)
    """
    claims = run(parse_text(textwrap.dedent(text), "h.idx")).claims
    assert [v.holds for v in claims] == [True, False]  # seed 002, 1d: dL/dY (.) h'(X)


# --- does not hold ---------------------------------------------------------------------------

def test_a_false_claim_has_a_counterexample():
    v = one("claim dL_dX = dL_dY @ W * 2")
    assert not v.holds
    c = v.counterexample
    assert set(c.inputs) == {"X", "W", "b", "dL_dY"}
    assert len(c.entry) == 2
    assert abs(c.claimed - 2 * c.derived) < 1e-9 * max(1.0, abs(c.derived))
    assert c.claimed != c.derived
    assert v.derived == "dL_dY @ W"


def test_a_claim_of_the_wrong_shape_does_not_hold_and_says_so():
    v = one("claim dL_dW = X.T @ dL_dY")  # M x N where the result is N x M
    assert not v.holds
    assert v.reason.startswith("wrong shape")
    c = v.counterexample  # the inputs, and the two shapes
    assert c.entry is None and c.shapes == ((4, 5), (5, 4)) and set(c.inputs) >= {"X", "W"}


def test_shapes_that_do_not_fit_together_are_a_wrong_shape():
    v = one("claim dL_dW = dL_dY @ X")
    assert not v.holds and "wrong shape" in v.reason and "@" in v.reason


def test_an_index_claim_with_too_few_indices_is_a_wrong_shape():
    v = one("claim dL_dW[i] = sum_s dL_dY[s,i]")
    assert not v.holds and "1 index" in v.reason
    assert v.counterexample.shapes == ((5,), (5, 4))


def test_a_false_index_claim():
    v = one("claim dL_dW[i,j] = 2 * sum_s dL_dY[s,i] X[s,j]")
    assert not v.holds and v.counterexample is not None


def test_seed_002_1f_and_2a_as_written_do_not_hold():
    """Seed 002, 1f writes -1/S T (x) X (a Kronecker product) for the elementwise division;
    2a concludes M = (T (.) Y) 1 1^T - T: both claims ship in derivations/ and do not hold."""
    from conftest import derivation

    ce = derivation("cross_entropy").claims
    assert [v.holds for v in ce] == [False, True]
    assert "wrong shape" in ce[0].reason
    sce = derivation("softmax_cross_entropy").claims
    assert [v.holds for v in sce] == [False, True]
    assert sce[0].counterexample is not None


# --- the command line --------------------------------------------------------------------------

def test_check_exits_1_exactly_when_a_claim_is_false(tmp_path, capsys):
    good = tmp_path / "good.idx"
    good.write_text(LINEAR + "claim dL_dW = dL_dY.T @ X\n")
    bad = tmp_path / "bad.idx"
    bad.write_text(LINEAR + "claim dL_dW = dL_dY.T @ X\nclaim dL_dW = 2 * dL_dY.T @ X\n")
    assert cli.main(["check", str(good)]) == 0
    assert cli.main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "claim does not hold (line 7)" in err
    assert cli.main(["derive", str(bad)]) == 1


def test_check_json_carries_each_claim(tmp_path, capsys):
    path = tmp_path / "c.idx"
    path.write_text(LINEAR + "claim dL_dW = dL_dY.T @ X + 1\n")
    assert cli.main(["check", str(path), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    (claim,) = data["claims"]
    assert claim["line"] == 6 and claim["holds"] is False
    assert set(claim["counterexample"]) >= {"inputs", "entry", "claimed", "derived"}


def test_derive_json_carries_claims_per_result(tmp_path, capsys):
    path = tmp_path / "c.idx"
    path.write_text(LINEAR + "claim dL_dW = dL_dY.T @ X\n")
    assert cli.main(["derive", str(path), "--format", "json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert result["claims"][0]["holds"] is True
    assert result["claims"][0]["text"] == "dL_dW = dL_dY.T @ X"


def test_without_claims_the_json_has_no_claims_key():
    from indexcalc.render.document import to_json_data

    data = to_json_data(run(parse_text(LINEAR, "l.idx")))
    assert "claims" not in data["results"][0]


# --- bad claims: parsed, never run ----------------------------------------------------------

@pytest.mark.parametrize("text, column, message", [
    ("claim dL_dW = dL_dY.T @ Q", 25, "unknown name Q"),
    ("claim dL_dW = __import__('os').system('true')", 15, "only NumPy functions"),
    ("claim dL_dW = X.shape", 15, ".shape is not read"),
    ("claim dL_dW = np.linalg.eig(X)", 15, "np.linalg.eig"),
    ("claim dL_dW = np.save('f', X)", 15, "np.save"),
    ("claim dL_dW = [X for X in W]", 15, "cannot say ListComp"),
    ("claim dL_dW = dL_dY.T @@ X", 24, "not a NumPy expression"),
    ("claim dL_dW =", 14, "no right side"),
    ("claim dL_dQ = X", 7, "no result is named dL_dQ"),
    ("claim dL_dY = X", 7, "upstream gradient"),
    ("claim dL_dW[i,j] = Q[i,j]", 20, "unknown"),
])
def test_a_bad_claim_is_bad_input_with_its_column(text, column, message):
    with pytest.raises(InputError) as caught:
        parse_text(LINEAR + text + "\n", "bad.idx")
    error = caught.value
    assert error.line == 6, error.render()
    assert error.column == column, error.render()
    assert message in error.message, error.render()


def test_a_bad_claim_exits_2_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.idx"
    path.write_text(LINEAR + "claim dL_dW = open('x')\n")
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.idx:6:15" in err and "Traceback" not in err
