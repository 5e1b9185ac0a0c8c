"""``--check-with torch|jax``: every result against the framework's own autograd.

Every shipped derivation and a few new problems (a Jacobian, a Hessian) agree with PyTorch
and JAX; a deliberately wrong function fails, and so does a wrong shape; every output format
reports the framework checks only when asked; a difference exits 1 and a missing framework
is a usage error (exit 2).  Tests that run a framework need it (``conftest.need``): they skip
without it, and fail under CI, which installs both.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

import indexcalc
from indexcalc import cli
from indexcalc.check import frameworks
from indexcalc.pipeline import run
from indexcalc.syntax.idx import parse_text
from conftest import need

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "derivations").glob("*.idx"))
LINEAR = ROOT / "derivations" / "linear_layer.idx"
BOTH = ("torch", "jax")
NAMES = {"torch": "PyTorch", "jax": "JAX"}

# Not among derivations/: a Jacobian of an elementwise map and a Hessian of a quadratic form.
NEW = {
    "jacobian": """
dims N=4, K=3
input X[N,K], a[K]
Y[n,k] = exp(a[k] * X[n,k]) + X[n,k]^3 / (1 + X[n,k]^2)
jacobian Y wrt X
""",
    "hessian": """
dims N=4
input x[N], a[N], A[N,N]
f = sum_i x[i]^2 * a[i] + sum_{i,j} x[i] A[i,j] x[j]
hessian f wrt x
grad f wrt x
""",
}

TANH = """\
dims S=4, M=3, N=2
input X[S,M], W[N,M], b[N]
H[s,n] = tanh(sum_m X[s,m] W[n,m] + b[n])
L = loss(H)
grad L wrt W, b
"""


@pytest.fixture(scope="module")
def torch():
    return need("torch")


@pytest.fixture(scope="module")
def jax():
    return need("jax")


@pytest.fixture(scope="module")
def both(torch, jax):
    return BOTH


def cli_run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main(["derive", *argv])
    out, err = capsys.readouterr()
    return status, out, err


ROUNDING = "the difference is within the rounding of the values compared"


def assert_agrees(d, asked=BOTH):
    """Every result of ``d`` passed its numeric check and agrees with every framework
    (or was not compared, saying why); none differs."""
    for r in d.results:
        assert r.check.passed, (r.name, r.check)
        assert list(r.check.frameworks) == list(asked), r.name
        for name, f in r.check.frameworks.items():
            assert f["status"] in ("passed", "not checked"), (r.name, name, f)
            if f["status"] == "passed":
                assert f["passed"] is True
                if f["detail"] != ROUNDING:  # else the difference is rounding noise
                    assert 0 <= f["max_rel_error"] <= frameworks.TOLERANCE, (r.name, name, f)
                    assert f["detail"] == ""
            else:
                assert f["passed"] is False and f["detail"], (r.name, name, f)


# --- everything agrees --------------------------------------------------------------------

@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_derivation_agrees_with_torch_and_jax(both, path):
    d = indexcalc.load(path, check_with=both)
    assert_agrees(d)
    # the shipped files are all within reach of both frameworks
    assert all(f["status"] == "passed" for r in d.results for f in r.check.frameworks.values())
    for r, data in zip(d.results, d.to_dict()["results"]):
        assert data["check"]["frameworks"] == r.check.frameworks


@pytest.mark.parametrize("name", list(NEW))
def test_new_jacobian_and_hessian_agree(both, name):
    d = indexcalc.derive(NEW[name], check_with=both)
    assert {r.kind for r in d.results} >= {name}
    assert_agrees(d)
    assert all(f["status"] == "passed" for r in d.results for f in r.check.frameworks.values())


def test_frameworks_are_reported_in_the_order_asked(both):
    d = indexcalc.derive(TANH, check_with=("jax", "torch"))
    assert_agrees(d, asked=("jax", "torch"))


def test_a_zero_gradient_agrees_with_autograd(both):
    # The mean subtracted from each entry cancels the entries' own terms: dL/dx and dL/dw
    # are exactly 0, which the derivation finds.  Autograd adds 0.3 w[k] and N times
    # -0.3 w[k] / N in float64 and gets rounding noise near 1e-17; judged only relative to
    # the largest autograd entry (itself noise), that must not read as a difference.
    d = indexcalc.derive("""
dims N=7
input x[N], w[N]
y[i] = x[i] * w[i] - sum_j x[j] * w[j] / N
L = sum_i 0.3 * y[i]
grad L wrt x, w
""", check_with=both)
    assert [r.index for r in d.results] == ["dL_dx[k] = 0", "dL_dw[k] = 0"]
    assert_agrees(d)
    assert all(f["detail"] == ROUNDING for r in d.results for f in r.check.frameworks.values())


def test_a_name_that_is_no_framework_is_never_said_to_agree(jax):
    # Only torch and jax have autograd here; a derivation must not read "agrees with numpy
    # autograd".  Refusing the name (ValueError) or not comparing are both fine.
    try:
        d = indexcalc.load(LINEAR, check_with=("numpy",))
    except ValueError:
        return
    for r in d.results:
        assert r.check.frameworks["numpy"]["status"] != "passed", r.check.frameworks
    assert "agrees with numpy autograd" not in d.text()


# --- a wrong result is caught ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tanh_run():
    problem = parse_text(TANH, "tanh.idx")
    return problem, run(problem)


def wrong(fn, body: str):
    """``fn`` with its lambda's body replaced by ``body`` (``{}`` is the right body)."""
    head, right = fn.source.split(": ", 1)
    return dataclasses.replace(fn, source=f"{head}: {body.format('(' + right + ')')}")


@pytest.mark.parametrize("framework", BOTH)
def test_a_doubled_result_fails(tanh_run, framework):
    need(framework)
    problem, derivation = tanh_run
    for goal, result in zip(problem.goals, derivation.results):
        right = frameworks.check_with(framework, goal, result.numpy, problem)
        assert right.status == "passed" and right.passed
        bad = frameworks.check_with(framework, goal, wrong(result.numpy, "2.0 * {}"), problem)
        assert bad.status == "failed" and not bad.passed
        assert bad.max_rel_error == pytest.approx(1.0)  # |2g - g| / max |g|
        assert bad.name_of == NAMES[framework]


@pytest.mark.parametrize("framework", BOTH)
def test_a_wrong_shape_fails_naming_both_shapes(tanh_run, framework):
    need(framework)
    problem, derivation = tanh_run
    goal, result = problem.goals[1], derivation.results[1]  # dL_db, shape (N,) = (2,)
    assert goal.wrt == "b"
    bad = frameworks.check_with(framework, goal, wrong(result.numpy, "{}[:, None]"), problem)
    assert bad.status == "failed" and not bad.passed
    assert bad.max_rel_error == math.inf
    assert "(2,)" in bad.detail and "(2, 1)" in bad.detail and framework in bad.detail


def test_an_absent_framework_is_not_checked(monkeypatch):
    monkeypatch.setattr(frameworks, "available", lambda name: False)
    d = indexcalc.derive(TANH, check_with=("torch",))
    for r in d.results:
        assert r.check.frameworks["torch"] == {
            "passed": False, "status": "not checked", "max_rel_error": None,
            "detail": "torch is not installed"}
    assert "not compared with PyTorch autograd (torch is not installed)" in d.text()


# --- every format reports the framework checks ---------------------------------------------

@pytest.fixture(scope="module")
def linear_results():
    return json.loads(indexcalc.load(LINEAR).to_json())["results"]


def test_text_reports_each_framework_after_the_numeric_check(both, linear_results, capsys):
    status, out, err = cli_run(capsys, str(LINEAR), "--check-with", "torch",
                               "--check-with", "jax")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    checked = [k for k, line in enumerate(lines) if line.startswith("    check passed: ")]
    assert len(checked) == len(linear_results)
    for k in checked:
        assert lines[k + 1].startswith("    agrees with PyTorch autograd: max relative error ")
        assert lines[k + 2].startswith("    agrees with JAX autograd: max relative error ")
    assert "FAILED" not in out and "DIFFERS" not in out


@pytest.mark.parametrize("fmt, torch_line, jax_line", [
    ("markdown", "**agrees with PyTorch autograd**: maximum relative error ",
     "**agrees with JAX autograd**: maximum relative error "),
    ("latex", "agrees with PyTorch autograd: maximum relative error $",
     "agrees with JAX autograd: maximum relative error $"),
])
def test_markdown_and_latex_report_each_framework(both, linear_results, capsys, fmt,
                                                  torch_line, jax_line):
    status, out, err = cli_run(capsys, str(LINEAR), "-f", fmt, "--check-with", "torch",
                               "--check-with", "jax")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert sum(line.startswith(torch_line) for line in lines) == len(linear_results)
    assert sum(line.startswith(jax_line) for line in lines) == len(linear_results)
    assert out.index(torch_line) < out.index(jax_line)


def test_json_has_the_frameworks_and_equals_the_api(both, capsys):
    status, out, err = cli_run(capsys, str(LINEAR), "-f", "json", "--check-with", "torch",
                               "--check-with", "jax", "--check-with", "torch")
    assert (status, err) == (0, "")
    for result in json.loads(out)["results"]:
        checks = result["check"]["frameworks"]
        assert list(checks) == ["torch", "jax"]  # a repeated --check-with counts once
        for f in checks.values():
            assert f["passed"] is True and f["status"] == "passed"
            assert 0 <= f["max_rel_error"] <= frameworks.TOLERANCE
    assert out == indexcalc.load(LINEAR, check_with=both).to_json()


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex", "json"])
def test_without_the_flag_no_framework_is_mentioned(capsys, fmt):
    status, out, err = cli_run(capsys, str(LINEAR), "-f", fmt)
    assert (status, err) == (0, "")
    assert "autograd" not in out and "PyTorch" not in out
    if fmt == "json":
        assert all("frameworks" not in r["check"] for r in json.loads(out)["results"])


# --- exit 1: a framework disagrees -----------------------------------------------------------

@pytest.fixture
def doubling_autograd(monkeypatch):
    """The frameworks' autograd gives twice the true derivatives."""
    real = frameworks._autograd
    monkeypatch.setattr(frameworks, "_autograd", lambda *args: 2.0 * real(*args))


def test_a_difference_exits_1_and_says_so(torch, doubling_autograd, capsys):
    status, out, err = cli_run(capsys, str(LINEAR), "--check-with", "torch")
    assert status == 1
    assert out.count("(framework check FAILED)") == 3  # in each result's heading
    assert out.count("    check passed: ") == 3  # the numeric check still passes
    assert out.count("    DIFFERS from PyTorch autograd: max relative error 5.00e-01") == 3
    assert err.splitlines() == [
        f"indexcalc: failed with torch: grad of L with respect to {wrt}: "
        "max relative error 0.5" for wrt in ("W", "b", "X")]


@pytest.mark.parametrize("fmt, words", [
    ("markdown", "**DIFFERS from PyTorch autograd**: maximum relative error 5.00e-01"),
    ("latex", r"\textbf{DIFFERS from PyTorch autograd}: maximum relative error $"),
])
def test_a_difference_in_markdown_and_latex(torch, doubling_autograd, capsys, fmt, words):
    status, out, err = cli_run(capsys, str(LINEAR), "-f", fmt, "--check-with", "torch")
    assert status == 1
    assert out.count(words) == 3
    assert out.count("framework check FAILED") == 3
    assert "failed with torch" in err


def test_a_difference_in_json(torch, doubling_autograd, capsys):
    status, out, err = cli_run(capsys, str(LINEAR), "-f", "json", "--check-with", "torch")
    assert status == 1
    for result in json.loads(out)["results"]:
        assert result["check"]["passed"] is True  # the numeric check
        assert result["check"]["frameworks"]["torch"] == {
            "passed": False, "status": "failed", "max_rel_error": pytest.approx(0.5),
            "detail": ""}
    assert err.count("failed with torch") == 3


def test_the_tolerance_decides(torch, monkeypatch, capsys):
    monkeypatch.setattr(frameworks, "TOLERANCE", -1.0)  # no difference is small enough
    monkeypatch.setattr(frameworks, "_rounding", lambda *args: -1.0)  # nor within rounding
    status, out, err = cli_run(capsys, str(LINEAR), "--check-with", "torch")
    assert status == 1
    assert out.count("DIFFERS from PyTorch autograd") == 3
    assert "failed with torch: grad of L with respect to W" in err


# --- exit 2: a framework is missing ----------------------------------------------------------

@pytest.mark.parametrize("missing, install", [("torch", "pip install torch"),
                                              ("jax", "pip install 'jax[cpu]'")])
def test_a_missing_framework_is_a_usage_error(monkeypatch, capsys, missing, install):
    monkeypatch.setattr(cli, "available", lambda name: name != missing)
    status, out, err = cli_run(capsys, str(LINEAR), "--check-with", "torch",
                               "--check-with", "jax")
    assert status == 2
    assert out == ""
    assert err == (f"indexcalc: error: --check-with {missing}: {missing} is not installed "
                   f"({install})\n")


def test_an_unknown_framework_is_a_usage_error(capsys):
    status, out, err = cli_run(capsys, str(LINEAR), "--check-with", "tensorflow")
    assert status == 2 and out == ""
    assert "usage:" in err and "tensorflow" in err
