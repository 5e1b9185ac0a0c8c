"""Warnings for a common mistake (issue 11, item 5): an implicit sum that covers more than
it seems to.  A warning on standard error with the place, the line and a hint; the file is
still valid and the derivation goes on (exit status 0)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import indexcalc
from indexcalc.syntax.idx import parse_text

ROOT = Path(__file__).resolve().parent.parent

# The softmax of X W written with implicit sums inside two exps: d is summed once over the
# whole quotient (sum_d exp(.)/sum_j exp(.)), which is not softmax(X W).
SOFTMAX_MISTAKE = """\
dims N, D, K
input X[N,D], W[D,K]
Y[n,k] = exp(X[n,d] W[d,k]) / sum_j exp(X[n,d] W[d,j])
L = loss(Y)
grad L wrt W
"""


def test_an_implicit_sum_across_two_function_arguments_is_warned_about():
    (warning,) = parse_text(SOFTMAX_MISTAKE, "softmax.idx").warnings
    assert "index d is summed once over the whole product term" in warning.message
    assert "exp(...) and exp(...)" in warning.message
    line = SOFTMAX_MISTAKE.splitlines()[2]
    second = line.rindex("exp(X[n,d]") + len("exp(X[n,") + 1  # the d in the second exp
    assert (warning.location.line, warning.location.column) == (3, second)
    assert "sum_d" in warning.hint
    rendered = warning.render()
    assert rendered.startswith("softmax.idx:3:") and ": warning: " in rendered
    assert rendered.splitlines()[1].strip() == line


def test_an_index_three_times_in_one_product_is_warned_about():
    (warning,) = parse_text("""\
dims N, D, K
input X[N,D], W[D,K]
Z[n,k] = X[n,d] W[d,k] X[n,d]
L = loss(Z)
grad L wrt W
""").warnings
    assert "index d appears 3 times in one product term" in warning.message
    assert warning.location.column == len("Z[n,k] = X[n,d] W[d,k] X[n,") + 1


@pytest.mark.parametrize("text", [
    # the same sums written explicitly: what the writer means is said
    """dims N, D, K
input X[N,D], W[D,K]
Y[n,k] = exp(sum_d X[n,d] W[d,k]) / sum_j exp(sum_d X[n,d] W[d,j])
L = loss(Y)
grad L wrt W
""",
    """dims N, D
input a[N], b[N]
f = sum_n exp(a[n]) exp(b[n])
grad f wrt a
""",
    # two uses, one function: an ordinary contraction
    """dims S, M, N
input X[S,M], W[N,M]
function h
Y[s,n] = h(X[s,m] W[n,m])
L = loss(Y)
grad L wrt W
""",
])
def test_sums_that_say_what_they_mean_are_not_warned_about(text):
    assert parse_text(text).warnings == []


@pytest.mark.parametrize("path", sorted((ROOT / "derivations").glob("*.idx")),
                         ids=lambda p: p.stem)
def test_no_shipped_derivation_is_warned_about(path):
    assert parse_text(path.read_text(), str(path)).warnings == []


def test_the_cli_prints_the_warning_on_standard_error_and_goes_on(tmp_path):
    source = tmp_path / "softmax.idx"
    source.write_text(SOFTMAX_MISTAKE)
    out = tmp_path / "out.md"
    done = subprocess.run([sys.executable, "-m", "indexcalc", "derive", str(source), "-o",
                           str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert f"{source}:3:" in done.stderr and "warning: index d is summed once" in done.stderr
    assert "^" in done.stderr and "hint:" in done.stderr
    assert out.exists() and "warning" not in out.read_text()


def test_the_api_issues_an_index_warning():
    with pytest.warns(indexcalc.IndexWarning, match="index d is summed once"):
        derivation = indexcalc.derive(SOFTMAX_MISTAKE, path="softmax.idx")
    assert derivation.results


def test_json_lists_the_warnings_with_their_places():
    """``--format json`` carries them as "warnings" (only when there are some, so a file
    without any keeps exactly the contract's shape)."""
    import json

    with pytest.warns(indexcalc.IndexWarning):
        data = json.loads(indexcalc.derive(SOFTMAX_MISTAKE, path="softmax.idx").to_json())
    (warning,) = data["warnings"]
    assert (warning["line"], warning["column"]) == (3, 45)
    assert "index d is summed once" in warning["message"] and "sum_d" in warning["hint"]
    clean = json.loads(indexcalc.load(ROOT / "derivations" / "linear_layer.idx").to_json())
    assert list(clean) == ["title", "results"]
