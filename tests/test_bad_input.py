"""Bad input through the real command line: one case per kind in issue 5.

Every case runs ``python -m indexcalc derive FILE -o OUT`` in a fresh process and asserts
what CONTRACT section 1 promises: exit status 2, one message on standard error naming
``file:line:column``, the source line with a caret under the right column, the expected
words, no Python traceback, nothing on standard output and nothing written to ``OUT``.

A ``wrt`` that the loss does not depend on is *not* bad input: the gradient is zero, and the
last section checks that it is reported as a result (exit 0, index form 0, a lambda that
returns zeros of the right shape, check passed, and a heading that says why).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from indexcalc.syntax.idx import MAX_DEFINITION_DEPTH, MAX_FILE_BYTES, MAX_LINE_LENGTH, MAX_LINES, MAX_NESTING

REPO = Path(__file__).resolve().parent.parent

HEADER = """\
dims S=3, M=4, N=2
input X[S,M], W[N,M], b[N], y[S], lam
"""
HEADER_LINES = HEADER.count("\n")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-m", "indexcalc", *args], cwd=cwd, env=env,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=300)


@dataclass(frozen=True)
class Case:
    """A bad file and where its error must point.

    ``line`` is 1-based in the whole file; ``column`` is found as the ``occurrence``-th
    ``needle`` in that line (1-based), or given directly."""

    source: str | bytes
    line: int
    needle: str | None
    words: tuple[str, ...]
    occurrence: int = 1
    column: int | None = None
    hint: str | None = None

    def data(self) -> bytes:
        return self.source if isinstance(self.source, bytes) else self.source.encode("utf-8")

    def line_text(self) -> str:
        return self.data().split(b"\n")[self.line - 1].decode("utf-8", "replace").rstrip("\r")

    def expected_column(self) -> int:
        if self.column is not None:
            return self.column
        text, column = self.line_text(), -1
        for _ in range(self.occurrence):
            column = text.index(self.needle, column + 1)
        return column + 1


def body(*lines: str) -> str:
    return HEADER + "".join(line + "\n" for line in lines)


def at(k: int) -> int:
    """Line number of the k-th line after the header (1-based)."""
    return HEADER_LINES + k


CASES = {
    # -- syntax --
    "syntax_missing_operand": Case(
        body("Y[s,n] = X[s,m] * W[n,m] +"), at(1), None,
        ("expected a number, a name, '(' or a sum", "found end of line"),
        column=len("Y[s,n] = X[s,m] * W[n,m] +") + 1),
    "syntax_unclosed_parenthesis": Case(
        body("F = (lam + 1"), at(1), None, ("expected ')' to close the '(' at column 5",),
        column=len("F = (lam + 1") + 1),
    "syntax_unexpected_character": Case(
        body("F = lam @ 2"), at(1), "@", ("unexpected character '@'",)),
    "syntax_latex_habit": Case(
        body(r"F = \sum_s y[s]"), at(1), "\\", ("unexpected character",), hint="LaTeX is not read"),
    "syntax_power_operator": Case(
        body("F = lam ** 2"), at(1), "**", ("'**' is not an operator", "^")),
    "syntax_missing_wrt": Case(
        body("F = lam", "grad F of lam"), at(2), "of", ("expected 'wrt'",)),
    # -- unknown names --
    "unknown_tensor": Case(
        body("Y[s] = Q[s]"), at(1), "Q", ("unknown tensor Q",), hint="input Q[...]"),
    "unknown_scalar_name": Case(
        body("F = q + lam"), at(1), "q", ("unknown name q",)),
    "unknown_dim": Case(
        body("input Z[S,K]"), at(1), "K", ("unknown dim K",), hint="dims K"),
    "unknown_function": Case(
        body("F = foo(lam)"), at(1), "foo", ("unknown function foo", "function foo")),
    "unknown_wrt": Case(
        body("F = lam", "grad F wrt Q"), at(2), "Q", ("unknown tensor Q",)),
    # -- indices and shapes --
    "wrong_number_of_indices": Case(
        body("F[s] = X[s]"), at(1), "X", ("X has 2 indices (X[S,M]) but 1 is given",)),
    "indices_on_a_scalar": Case(
        body("F[s] = lam[s] * y[s]"), at(1), "lam", ("lam is a scalar",)),
    "index_on_two_dims": Case(
        body("F[s] = X[s,m] W[s,m]"), at(1), "s", ("index s ranges over N here but over S",),
        occurrence=3, hint="different index name"),
    "left_index_missing_on_the_right": Case(
        body("F[s,n] = y[s]"), at(1), "n", ("index n is on the left side but not on the right side",)),
    "right_index_missing_on_the_left": Case(
        body("F[s] = X[s,m]"), at(1), "m", ("index m is used once and never summed",)),
    "free_indices_differ_between_terms": Case(
        body("F[s] = y[s] + b[n]"), at(1), "n", ("index n is used once and never summed",),
        hint="the terms of an addition must have the same free indices"),
    "index_used_once": Case(
        body("F = y[s]"), at(1), "s", ("index s is used once and never summed",)),
    "sum_over_unused_index": Case(
        body("F = sum_k lam"), at(1), "k", ("sum over k, but k is not used",)),
    "index_in_exponent": Case(
        body("F[s] = y[s]^y[s]"), at(1), "y", ("exponent", "must not have indices"), occurrence=2),
    "gradient_of_a_tensor": Case(
        body("F[s] = y[s]", "grad F wrt y"), at(2), "F", ("grad needs a scalar",),
        hint="jacobian F"),
    # -- what the tool cannot differentiate --
    "prime_of_a_builtin": Case(
        body("F = exp'(lam)"), at(1), "exp", ("exp' is not part of the language",),
        hint="primes are for declared functions"),
    "hessian_of_an_unspecified_loss": Case(  # found by the engine, after parsing
        body("Y[s] = y[s]^2", "L = loss(Y)", "hessian L wrt y"), at(3), "y",
        ("needs second derivatives of an unspecified loss",)),
    # -- definitions --
    "self_reference": Case(
        body("F = F + lam"), at(1), "F", ("F refers to itself",), occurrence=2),
    "definitions_in_a_loop": Case(
        body("F = G + lam", "G = F + lam"), at(1), "G", ("G is defined later, at line 4",)),
    "redefinition": Case(
        body("F = lam", "F = lam^2"), at(2), "F", ("F is already defined at line 3",)),
    "redefinition_of_an_input": Case(
        body("X = lam"), at(1), "X", ("X is already defined at line 2 (as an input)",)),
    "redefinition_of_a_builtin": Case(
        body("function exp"), at(1), "exp", ("builtin",)),
    # -- files --
    "empty_file": Case("", 1, None, ("no statements in",), column=1),
    "only_comments": Case("# nothing here\n\n   \n", 1, None, ("no statements in",), column=1),
    "non_utf8_bytes": Case(
        HEADER.encode() + b"F = caf\xe9 + lam\n", at(1), None, ("is not UTF-8 text (byte 0xe9)",),
        column=len("F = caf") + 1, hint="UTF-8"),
    # -- limits --
    "deep_nesting": Case(
        body("F = " + "(" * (MAX_NESTING + 10) + "lam" + ")" * (MAX_NESTING + 10)), at(1), None,
        ("nested too deeply", f"more than {MAX_NESTING} levels"), column=len("F = ") + MAX_NESTING + 1),
    "deep_nesting_of_functions": Case(
        body("F = " + "exp(" * 60 + "lam" + ")" * 60), at(1), None, ("nested too deeply",),
        column=len("F = ") + 4 * MAX_NESTING + 1),
    "deep_nesting_of_unary_minus": Case(
        body("F = " + "-" * 5000 + "lam"), at(1), None, ("nested too deeply",),
        column=len("F = ") + MAX_NESTING + 1),
    "long_chain_of_definitions": Case(
        body("F0 = lam", *(f"F{k} = F{k - 1} * lam" for k in range(1, MAX_DEFINITION_DEPTH + 1))),
        at(MAX_DEFINITION_DEPTH + 1), f"F{MAX_DEFINITION_DEPTH}",
        (f"chain of {MAX_DEFINITION_DEPTH + 1} definitions", f"at most {MAX_DEFINITION_DEPTH}")),
    "too_many_lines": Case(
        body(*(["# filler"] * MAX_LINES)), MAX_LINES + 1, None,
        (f"is too long (more than {MAX_LINES:,} lines)",), column=1),
    "too_long_line": Case(
        body("F = " + " + ".join(["lam"] * (MAX_LINE_LENGTH // 6 + 1))), at(1), None,
        (f"line {at(1)} is too long (more than {MAX_LINE_LENGTH:,} characters)",),
        column=MAX_LINE_LENGTH + 1),
    # -- absurd sizes and assumptions about numbers only (issue 9) --
    "dim_size_absurd": Case(
        "dims N=99999999999999999999999999\ninput x[N]\nf = sum_n x[n]^2\ngrad f wrt x\n",
        1, "9", ("the size of N is too large",)),
    "dim_size_too_large": Case(
        "dims N=1000000000001\ninput x[N]\nf = sum_n x[n]^2\ngrad f wrt x\n",
        1, "1", ("at most 1,000,000,000,000",)),
    "assumption_about_numbers_false": Case(
        body("assume 1 = 2", "F = lam + 1", "grad F wrt lam"), at(1), "1",
        ("must be about tensors", "is false")),
    "assumption_about_a_defined_tensor": Case(
        body("Y[s,n] = exp(W[n,m] X[s,m])", "assume sum_n Y[s,n] = 1", "F = sum_{s,n} Y[s,n]",
             "grad F wrt W"), at(2), None, ("only be about inputs", "Y is defined at line 3"),
        column=len("assume ") + 1),
    "assumption_of_a_symmetry": Case(
        "dims N\ninput S[N,N], x[N]\nassume S[i,j] = S[j,i]\nf = x[i] S[i,j] x[j]\n"
        "grad f wrt x\n", 3, "S", ("a symmetry of S cannot be assumed yet",)),
    "assumption_about_numbers_true": Case(
        body("assume 2 = 2", "F = lam + 1", "grad F wrt lam"), at(1), "2",
        ("must be about tensors",)),
    # -- constant subexpressions without a value, decided when the file is read (issue 9) --
    "zero_to_a_negative_power": Case(
        body("F = sum_s y[s] * 0^(-1)", "grad F wrt y"), at(1), "0",
        ("0 to the power -1 is undefined",)),
    "zero_difference_to_a_negative_power": Case(
        body("F = sum_s y[s] * (1-1)^(-2)", "grad F wrt y"), at(1), "1-1",
        ("0 to the power -2 is undefined",)),
    "log_of_zero": Case(
        body("F = sum_s y[s] * log(0)", "grad F wrt y"), at(1), "log", ("log(0) is undefined",)),
    "log_of_a_negative_number_inside_a_sum": Case(
        body("F = sum_s exp(y[s] + log(-2))", "grad F wrt y"), at(1), "log",
        ("log(-2) is undefined", "positive")),
    "sqrt_of_minus_one": Case(
        body("F = sum_s y[s] * sqrt(-1)", "grad F wrt y"), at(1), "sqrt", ("sqrt(-1) is undefined",)),
    "negative_number_to_a_fractional_power": Case(
        body("F = sum_s y[s] * (-8)^(1/3)", "grad F wrt y"), at(1), "-8", ("not a real number",)),
    "division_by_a_constant_function_of_zero": Case(
        body("F = sum_s y[s] / sin(0)", "grad F wrt y"), at(1), "sin", ("division by zero",)),
    "division_by_a_cancellation_of_function_values": Case(
        body("F = sum_s y[s] / (sqrt(2)^2 - 2)", "grad F wrt y"), at(1), "(sqrt", ("division by zero",),
        column=len("F = sum_s y[s] / (") + 1),
    "sqrt_negative_whatever_the_dim": Case(
        "dims S\ninput y[S]\nF = sum_s y[s] * sqrt(S - S - 1)\ngrad F wrt y\n", 3, "sqrt",
        ("sqrt(-1) is undefined", "whatever the size of S")),
    "constant_too_large_for_float64": Case(
        body("F = sum_s y[s] * exp(1000)", "grad F wrt y"), at(1), "exp", ("too large for float64",)),
    # -- assumptions the check cannot make hold (issue 9) --
    "assumption_false": Case(
        body("assume 2 * y[s] = y[s]", "F = sum_s y[s]^2", "grad F wrt y"), at(1), "assume",
        ("does not hold", "false")),
    "assumption_impossible": Case(
        body("assume sum_m X[s,m]^2 = -1", "F = sum_{s,m} X[s,m]^3", "grad F wrt X"), at(1),
        "assume", ("does not hold",)),
    "assumption_not_drawable": Case(
        body("assume y[s] = 0", "F = sum_s y[s]^2", "grad F wrt y"), at(1), "assume",
        ("does not hold",)),
    "assumptions_contradicting": Case(
        body("assume sum_m X[s,m] = 1", "assume sum_m X[s,m] = 2", "F = sum_{s,m} X[s,m]^3",
             "grad F wrt X"), at(2), "assume", ("contradicts the one at line 3",)),
    "assumptions_that_cannot_hold_together": Case(
        body("assume sum_m X[s,m] = 1", "assume sum_{s,m} X[s,m] = 0", "F = sum_{s,m} X[s,m]^3",
             "grad F wrt X"), at(2), "assume", ("both this assumption and the one at line 3",)),
    "assumption_that_rewrites_forever": Case(
        body("assume y[s] = y[s] + 1", "F = sum_s y[s]^2", "grad F wrt y"), at(1), "assume",
        ("contains its left side",)),
    "name_too_long": Case(
        body("F = sum_s y[s] * " + "x" * 65, "grad F wrt y"), at(1), "x",
        ("a name has at most 64 characters (this one has 65)",)),
    "index_name_too_long": Case(
        body("F = sum_" + "s" * 70 + " y[" + "s" * 70 + "]", "grad F wrt y"), at(1), "sum_",
        ("a name has at most 64 characters",)),
    # -- numbers --
    "number_with_two_decimal_points": Case(
        body("F = 1.0.5 * lam", "grad F wrt lam"), at(1), ".5", ("at most one decimal point",)),
    "number_with_a_double_dot": Case(
        body("F = 2..3 * lam", "grad F wrt lam"), at(1), ".3", ("at most one decimal point",)),
}


def check_error_output(done: subprocess.CompletedProcess, path: str, case: Case) -> str:
    err = done.stderr.decode("utf-8")
    assert done.returncode == 2, err
    assert done.stdout == b""
    assert "Traceback" not in err and "RecursionError" not in err
    column = case.expected_column()
    lines = err.splitlines()
    assert lines[0].startswith(f"{path}:{case.line}:{column}: error: "), (lines[0], column)
    for word in case.words:
        assert word in lines[0], (word, lines[0])
    shown, caret = lines[1], lines[2]
    text = case.line_text().expandtabs(1)
    if len(text) <= 100:  # a longer line is shown as an excerpt around the column
        assert shown == f"    {text}"
        assert caret == "    " + " " * (column - 1) + "^"
    else:
        assert shown.startswith("    ...") or shown.endswith("...")
        offset = caret.index("^") - 4  # the caret points at the same character
        assert caret.strip() == "^"
        excerpt = shown[4:]
        start = 3 if excerpt.startswith("...") else 0
        if column <= len(text):
            assert excerpt[offset] == text[column - 1]
        assert text[column - 1 - (offset - start):column - 1] == excerpt[start:offset]
    if case.hint:
        assert any(line.startswith("hint: ") and case.hint in line for line in lines), err
    assert len(lines) <= 4, err  # one message: place, line, caret, hint
    return err


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gives_one_located_message_and_exit_2(name, tmp_path):
    case = CASES[name]
    (tmp_path / "bad.idx").write_bytes(case.data())
    out = tmp_path / "out.txt"
    done = run_cli("derive", "bad.idx", "-o", str(out), cwd=tmp_path)
    check_error_output(done, "bad.idx", case)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.idx"]


def test_existing_output_file_is_left_alone(tmp_path):
    (tmp_path / "bad.idx").write_text(body("F = y[s]"))
    out = tmp_path / "out.json"
    out.write_text("previous contents")
    done = run_cli("derive", "bad.idx", "-f", "json", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 2
    assert out.read_text() == "previous contents"


def test_file_that_does_not_exist(tmp_path):
    out = tmp_path / "out.txt"
    done = run_cli("derive", "nowhere.idx", "-o", str(out), cwd=tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 2
    assert err == "error: cannot read nowhere.idx: no such file\n"
    assert done.stdout == b"" and not out.exists()


def test_a_directory_is_not_a_file(tmp_path):
    (tmp_path / "folder.idx").mkdir()
    done = run_cli("derive", "folder.idx", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.decode() == "error: cannot read folder.idx: it is a directory\n"


def test_file_over_the_size_limit(tmp_path):
    (tmp_path / "big.idx").write_bytes(HEADER.encode() + b"#" * MAX_FILE_BYTES + b"\n")
    out = tmp_path / "out.txt"
    done = run_cli("derive", "big.idx", "-o", str(out), cwd=tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 2
    assert err.startswith(f"error: big.idx is too large (more than {MAX_FILE_BYTES:,} bytes)\n")
    assert "hint: " in err and "Traceback" not in err
    assert not out.exists()


def test_a_file_of_10000_lines_is_still_read(tmp_path):
    """The line limit is a limit, not a cut: a file just under it is parsed normally."""
    lines = ["F = lam", "grad F wrt lam"]
    source = HEADER + "\n".join(lines + ["# filler"] * (MAX_LINES - HEADER_LINES - len(lines)))
    assert source.count("\n") + 1 == MAX_LINES
    (tmp_path / "long.idx").write_text(source)
    done = run_cli("derive", "long.idx", "-f", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()


# --- a zero gradient is a result, not an error ---------------------------------------------

ZERO = """\
dims S=3, M=4
input X[S,M], W[M], v[M], V[S,M], lam
f = sum_{s,m} X[s,m] W[m]
Y[s] = sum_m X[s,m] W[m]
L = loss(Y)
grad f wrt v, V, lam
grad L wrt v
jacobian Y wrt v
hessian f wrt lam
"""

SHAPES = {("f", "v"): (4,), ("f", "V"): (3, 4), ("f", "lam"): (), ("L", "v"): (4,),
          ("Y", "v"): (3, 4), ("f", "lam", "hessian"): ()}


def test_wrt_that_the_loss_does_not_depend_on_is_a_zero_result(tmp_path):
    (tmp_path / "zero.idx").write_text(ZERO)
    done = run_cli("derive", "zero.idx", "-f", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    results = json.loads(done.stdout)["results"]
    assert [(r["kind"], r["of"], r["wrt"]) for r in results] == [
        ("grad", "f", "v"), ("grad", "f", "V"), ("grad", "f", "lam"), ("grad", "L", "v"),
        ("jacobian", "Y", "v"), ("hessian", "f", "lam")]
    sizes = {"S": 3, "M": 4}
    values = {"X": np.ones((3, 4)), "W": np.ones(4), "v": np.ones(4), "V": np.ones((3, 4)),
              "lam": 1.0, "dL_dY": np.ones(3), **sizes}
    for r in results:
        assert r["index"]["text"].endswith(" = 0"), r["index"]
        assert r["check"]["passed"] is True
        fn = eval(r["numpy"]["source"], {"np": np})  # noqa: S307 -- our own generated code
        value = np.asarray(fn(*(values[a] for a in r["numpy"]["args"])))
        key = (r["of"], r["wrt"]) if r["kind"] != "hessian" else (r["of"], r["wrt"], "hessian")
        assert value.shape == SHAPES[key], (r["numpy"], value.shape)
        assert not value.any()


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
def test_a_zero_result_says_why(tmp_path, fmt):
    (tmp_path / "zero.idx").write_text(ZERO)
    done = run_cli("derive", "zero.idx", "-f", fmt, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    if fmt == "latex":
        assert "Gradient of $f$ with respect to $v$: zero, since $f$ does not depend on $v$" in out
    else:
        assert "Gradient of f with respect to v: zero, since f does not depend on v" in out
        assert "Jacobian of Y with respect to v: zero, since Y does not depend on v" in out


# --- internal errors are not bad input: exit 3 ----------------------------------------------
# In-process through ``cli.main``, so that a stage can be replaced by one that fails.

GOOD = """\
dims S=3, M=4
input X[S,M], w[M]
f = sum_s log(1 + exp(-sum_m X[s,m] w[m]))
grad f wrt w
"""


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.idx"
    path.write_text(GOOD)
    return path


@pytest.mark.parametrize("debug", [False, True])
def test_an_exception_in_the_pipeline_is_an_internal_error(good_file, tmp_path, monkeypatch,
                                                          capsys, debug):
    import indexcalc
    import indexcalc.pipeline
    from indexcalc import cli

    def broken_run(problem, **options):
        raise ZeroDivisionError("a bug deep inside")

    monkeypatch.setattr(indexcalc.pipeline, "run", broken_run)
    out = tmp_path / "out.txt"
    argv = ["derive", str(good_file), "-o", str(out)] + (["--debug"] if debug else [])
    assert cli.main(argv) == 3
    stdout, err = capsys.readouterr()
    assert stdout == "" and not out.exists()
    message = (f"indexcalc {indexcalc.__version__}: internal error: ZeroDivisionError: "
               "a bug deep inside\nplease report this with the input file")
    if debug:
        assert err.startswith("Traceback (most recent call last)")
        assert "broken_run" in err
        assert err.endswith(message + "\n")
    else:
        assert err == message + " (run with --debug for the traceback)\n"


def test_a_runaway_rewrite_stops_at_the_engine_step_limit(good_file, tmp_path, monkeypatch,
                                                          capsys):
    """The step limit (made tiny here) ends the derivation with a clear message; the time
    limit is the run's budget (tests/test_limits.py)."""
    import functools

    import indexcalc
    import indexcalc.pipeline
    from indexcalc import cli
    from indexcalc.calculus.engine import Engine

    monkeypatch.setattr(indexcalc.pipeline, "Engine", functools.partial(Engine, max_steps=1))
    out = tmp_path / "out.txt"
    assert cli.main(["derive", str(good_file), "-o", str(out)]) == 3
    stdout, err = capsys.readouterr()
    assert stdout == "" and not out.exists()
    first, second = err.splitlines()
    assert first.startswith(f"indexcalc {indexcalc.__version__}: the derivation did not finish: ")
    assert "no result after 1 steps" in first
    assert "internal error" not in err and "Traceback" not in err
    assert second.startswith("please report this with the input file")
