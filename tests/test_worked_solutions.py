"""Worked solutions a teacher can hand out (issue 14, docs/worked-solutions.md).

What is tested here, in the order of the page:

* ``notation:`` statements and ``--notation``: parsing, presets, errors with their place;
* each option on the rendered LaTeX (sums, derivative, matrices, digits, steps, cases,
  opening, layout), and that no option changes what is derived;
* names, fresh indices and Hessians as every document prints them;
* sub-derivations derived once (``Derived earlier``, ``(as derived in (N))``);
* a course's own templates (``--template DIR``);
* ``--fragment`` and the committed example ``examples/worked-solutions/seed002.tex``.

The seed documents are the reference for the notation: seed 001 writes the softmax
Jacobian as the two cases ``i = k`` / ``i != k``; seed 002 opens each gradient with its
entry ``[dL/dW]_ij`` and writes sums with their upper limits (``\\sum_{s}^{S}``).
"""
from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import DERIVATIONS, derivation, derive_text, numeric_gradient, softmax
from indexcalc import cli
from indexcalc.pipeline import run
from indexcalc.problem import InputError
from indexcalc.render.cases import split as split_cases
from indexcalc.render.document import render
from indexcalc.syntax.idx import parse_file, parse_text
from indexcalc.terms import Add, Delta, Deriv, Mul, Num, Pow, Sum, Tensor
from test_render import compile_latex, need_pdflatex

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "worked-solutions"

# The table of docs/worked-solutions.md, written out here as the oracle (default first).
OPTION_VALUES = {
    "sums": ("plain", "limits", "range"),
    "derivative": ("partial", "nabla"),
    "matrices": ("bold", "plain"),
    "digits": ("superscript", "subscript", "plain"),
    "layout": ("numerator", "denominator"),
    "steps": ("all", "grouped"),
    "cases": ("delta", "split"),
    "opening": ("plain", "bracket"),
}

# A small file used by the parsing tests: the notation line is line 2.
SMALL = "dims N\ninput x[N]\nf = sum_i x[i]^2\ngrad f wrt x\n"

# Seed 002, question 1a to 1c, as derivations/linear_layer.idx writes it.
LINEAR = (DERIVATIONS / "linear_layer.idx").read_text(encoding="utf-8")

# The same layer with a numbered weight, for the ``digits`` option.
NUMBERED = """\
dims S, M, N
input X[S,M], W1[N,M], b1[N]
Y[s,n] = sum_m X[s,m] * W1[n,m] + b1[n]
L = loss(Y)
grad L wrt W1
"""


# --- helpers -----------------------------------------------------------------------------

def with_notation(text: str, *options: str):
    """The pipeline's result for ``text`` with ``notation: OPTION`` lines put in front."""
    head = "".join(f"notation: {option}\n" for option in options)
    return run(parse_text(head + text, "test.idx"))


def file_with_notation(stem: str, *options: str):
    """``derivations/<stem>.idx`` derived with the given notation options over its own."""
    problem = parse_file(str(DERIVATIONS / f"{stem}.idx"))
    for option in options:
        problem.notation = problem.notation.read(option)
    return run(problem)


def latex_of(derived) -> str:
    return render(derived, "latex")


def math_only(latex: str) -> str:
    """The LaTeX without its NumPy code and typewriter text (``_t1`` there is Python)."""
    latex = re.sub(r"\\begin\{verbatim\}.*?\\end\{verbatim\}", "", latex, flags=re.S)
    return re.sub(r"\\texttt\{[^\n]*", "", latex)


_BLOCK = re.compile(r"\\paragraph\{(.*?)\.\}\n\\begin\{align\*\}\n(.*?)\\end\{align\*\}", re.S)


def latex_blocks(latex: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Each ``\\paragraph{TITLE.}`` with its ``align*``: the title and its rows, each row
    as (right side, rule or None).  A right side broken across lines (``&\\quad +``) is
    one row: rows start at ``&=``."""
    out = []
    for match in _BLOCK.finditer(latex):
        rows: list[list] = []
        for line in match.group(2).splitlines():
            line = line.strip()
            if line.startswith("&="):
                rows.append([line[2:].strip(), None])
            elif line.startswith("&& \\text{(") and rows:
                rows[-1][1] = line[len("&& \\text{("):-len(")}")]
            elif line.startswith("&& \\parbox") and rows:  # a long rule, boxed
                rows[-1][1] = line[line.index("\\raggedright (") + len("\\raggedright ("):
                                   -len(")}")]
        out.append((match.group(1), [tuple(r) for r in rows]))
    return out


def matrix_line(latex: str) -> list[str]:
    """The matrix-form lines of the results: ``\\Leftrightarrow\\quad LHS`` and ``&= RHS``."""
    return [m.group(1) + " = " + m.group(2) for m in
            re.finditer(r"\\Leftrightarrow\\quad (.*)\n\s*&= (.*)", latex)]


# --- 1. notation: parsing ----------------------------------------------------------------

def test_the_options_are_those_the_page_documents():
    from indexcalc.notation import OPTIONS, STYLES

    assert OPTIONS == OPTION_VALUES
    assert STYLES["documents"] == {"sums": "limits", "opening": "bracket"}


def test_a_file_without_notation_has_the_defaults():
    notation = parse_text(SMALL).notation
    assert {o: getattr(notation, o) for o in OPTION_VALUES} == {
        o: values[0] for o, values in OPTION_VALUES.items()}


@pytest.mark.parametrize("option,value", [(o, v) for o, vs in OPTION_VALUES.items()
                                          for v in vs])
def test_each_option_and_value_reaches_the_problem(option, value):
    notation = parse_text(f"notation: {option} = {value}\n" + SMALL).notation
    assert getattr(notation, option) == value
    others = {o: getattr(notation, o) for o in OPTION_VALUES if o != option}
    assert others == {o: vs[0] for o, vs in OPTION_VALUES.items() if o != option}


def test_several_options_on_one_line_and_on_several_lines():
    notation = parse_text("notation: sums = range, cases = split\n"
                          "notation:digits=plain  # a comment after the options\n"
                          + SMALL).notation
    assert (notation.sums, notation.cases, notation.digits) == ("range", "split", "plain")
    # a later line wins over an earlier one
    notation = parse_text("notation: sums = range\nnotation: sums = limits\n" + SMALL).notation
    assert notation.sums == "limits"


def test_style_documents_is_the_seed_documents_preset_and_later_options_win():
    # seed 002: sums with upper limits, each gradient opening with [dL/dW]_ij
    notation = parse_text("notation: style = documents\n" + SMALL).notation
    assert (notation.sums, notation.opening) == ("limits", "bracket")
    assert notation.derivative == "partial" and notation.cases == "delta"
    later = parse_text("notation: style = documents, sums = range\n"
                       "notation: opening = plain\n" + SMALL).notation
    assert (later.sums, later.opening) == ("range", "plain")
    # and a style after an option sets its own values over it
    earlier = parse_text("notation: sums = range, style = documents\n" + SMALL).notation
    assert earlier.sums == "limits"


def parse_error(line: str) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_text("title: t\n" + line + "\n" + SMALL, "course.idx")
    return caught.value


def test_a_bad_value_is_an_input_error_at_the_value_with_the_values_as_hint():
    error = parse_error("notation: sums = limits, cases = splt")
    assert (error.line, error.column) == (2, 34)
    assert error.render() == (
        "course.idx:2:34: error: cases cannot be 'splt'\n"
        "    notation: sums = limits, cases = splt\n"
        "                                     ^\n"
        "hint: cases is one of delta, split")


def test_a_bad_option_is_an_input_error_at_the_option_with_the_options_as_hint():
    error = parse_error("notation: sums = limits,  sumz = limits")
    assert (error.line, error.column) == (2, 27)
    rendered = error.render()
    assert rendered.startswith("course.idx:2:27: error: unknown notation option 'sumz'\n")
    assert rendered.splitlines()[2] == "    " + " " * 26 + "^"
    assert rendered.splitlines()[3] == (
        "hint: the options are sums, derivative, matrices, digits, layout, steps, cases, "
        "opening, style")


def test_a_bad_style_and_a_missing_equals_sign_are_input_errors():
    error = parse_error("notation: style = fancy")
    assert (error.line, error.column) == (2, 19)
    assert "unknown style 'fancy'" in error.render()
    assert error.render().endswith("hint: a style is one of indexcalc, documents")
    error = parse_error("notation: sums limits")
    assert error.line == 2 and "expected '='" in error.message


def test_cli_notation_with_a_bad_value_is_a_usage_error(tmp_path, capsys):
    source = tmp_path / "small.idx"
    source.write_text(SMALL, encoding="utf-8")
    assert cli.main(["derive", str(source), "--notation", "sums=x"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: indexcalc derive")
    assert "argument --notation: sums cannot be 'x'; sums is one of plain, limits, range" \
        in captured.err


def test_cli_notation_goes_over_the_files_notation(tmp_path, capsys):
    source = tmp_path / "range.idx"
    source.write_text("notation: sums = range\n" + SMALL, encoding="utf-8")
    assert cli.main(["derive", str(source), "-f", "latex"]) == 0
    assert "\\sum_{i=1}^{N}" in capsys.readouterr().out
    assert cli.main(["derive", str(source), "-f", "latex", "--notation", "sums=limits"]) == 0
    out = capsys.readouterr().out
    assert "\\sum_{i}^{N}" in out and "\\sum_{i=1}^{N}" not in out
    # repeatable; the later one wins
    assert cli.main(["derive", str(source), "-f", "latex", "--notation", "sums=limits",
                     "--notation", "sums=plain,cases=split"]) == 0
    out = capsys.readouterr().out
    assert "\\sum_{i} " in out and "^{N}" not in out


# --- 2. each option on the LaTeX -----------------------------------------------------------

@pytest.mark.parametrize("value,chain_rule,inner", [
    ("plain", "\\sum_{s,n} \\frac{\\partial L}{\\partial Y_{sn}}", "\\sum_{m} X_{sm}"),
    ("limits", "\\sum_{s}^{S} \\sum_{n}^{N} \\frac{\\partial L}{\\partial Y_{sn}}",
     "\\sum_{m}^{M} X_{sm}"),
    ("range", "\\sum_{s=1}^{S} \\sum_{n=1}^{N} \\frac{\\partial L}{\\partial Y_{sn}}",
     "\\sum_{m=1}^{M} X_{sm}"),
])
def test_sums(value, chain_rule, inner):
    latex = latex_of(with_notation(LINEAR, f"sums = {value}"))
    assert chain_rule in latex
    assert inner in latex
    if value != "plain":
        assert "\\sum_{s,n}" not in latex
    if value != "range":
        assert "=1}^{" not in latex


def test_sums_reach_the_markdown_and_the_latex_of_the_json():
    derived = with_notation(LINEAR, "sums = limits")
    assert "\\sum_{s}^{S} \\sum_{n}^{N}" in render(derived, "markdown")
    grad_w = json.loads(render(derived, "json"))["results"][0]
    assert grad_w["index"]["latex"] == (
        "\\frac{\\partial L}{\\partial W_{ij}} = "
        "\\sum_{s}^{S} \\frac{\\partial L}{\\partial Y_{si}} X_{sj}")
    assert grad_w["index"]["text"] == "dL_dW[i,j] = sum_s dL_dY[s,i] * X[s,j]"


def test_derivative_nabla():
    latex = latex_of(with_notation(LINEAR, "derivative = nabla"))
    lines = matrix_line(latex)
    assert lines[0] == ("\\nabla_{\\mathbf{W}} L = "
                        "\\left(\\nabla_{\\mathbf{Y}} L\\right)^{T} \\mathbf{X}")
    assert "\\left[\\nabla_{\\mathbf{Y}} L\\right]_{sn}" in latex  # the chain rule's step
    assert "\\left[\\nabla_{\\mathbf{W}} L\\right]_{ij}" in latex
    # a local derivative stays a fraction; no gradient of L does
    assert "\\frac{\\partial Y_{sn}}{\\partial W_{ij}}" in latex
    assert "\\frac{\\partial L}" not in latex


def test_matrices_plain():
    latex = latex_of(with_notation(LINEAR, "matrices = plain"))
    assert matrix_line(latex)[0] == (
        "\\frac{\\partial L}{\\partial W} = \\left(\\frac{\\partial L}{\\partial Y}\\right)^{T} X")
    assert "\\mathbf{W}" not in latex and "\\mathbf{X}" not in latex
    assert "\\mathbf{W}" in latex_of(with_notation(LINEAR))  # bold is the default


def test_matrices_plain_for_greek_and_multi_letter_names():
    latex = latex_of(file_with_notation("batch_norm", "matrices = plain"))
    assert "\\frac{\\partial L}{\\partial \\gamma} = \\mathbf{1}^{T} \\left(" \
        "\\frac{\\partial L}{\\partial Y} \\odot \\mathrm{Xh}\\right)" in matrix_line(latex)
    assert "\\boldsymbol" not in latex and "\\mathbf{Xh}" not in latex


@pytest.mark.parametrize("value,entry,whole", [
    ("superscript", "W^{(1)}_{ij}", "\\mathbf{W}^{(1)}"),
    ("subscript", "W_{1,ij}", "\\mathbf{W}_{1}"),
    ("plain", "W1_{ij}", "\\mathbf{W1}"),
])
def test_digits(value, entry, whole):
    latex = latex_of(with_notation(NUMBERED, f"digits = {value}"))
    assert f"\\frac{{\\partial L}}{{\\partial {entry}}}" in latex
    assert matrix_line(latex)[0].startswith(f"\\frac{{\\partial L}}{{\\partial {whole}}} = ")
    others = {"superscript": "^{(1)}", "subscript": "_{1,", "plain": "W1"}
    for other, mark in others.items():
        if other != value:
            assert mark not in math_only(latex), other


def test_steps_grouped_puts_each_sub_derivation_in_two_rows():
    raw = with_notation(LINEAR)
    blocks = latex_blocks(latex_of(with_notation(LINEAR, "steps = grouped")))
    shown = [(title, rows) for title, rows in blocks
             if title not in ("Result", "NumPy", "Numerical check")
             and not title.startswith("Claim")]
    expected = [block for result in raw.results for block in result.blocks]
    assert len(shown) == len(expected)
    for (title, rows), block in zip(shown, expected):
        assert len(rows) <= 2, title
        rules = [step.rule for step in block.steps]
        assert rows[0][1] == rules[0]
        if len(rules) > 1:
            assert rows[1][1] == ", ".join(rules[1:]), title
    # seed 002's derivative of Y, as the page shows it
    derivative = next(rows for title, rows in shown if title == "Derivative of $Y$")
    assert derivative[1] == ("X_{sj} \\delta_{ni}",
                             "linearity, derivative of an entry, contract deltas")


def test_steps_all_keeps_every_rule_on_its_own_row():
    blocks = latex_blocks(latex_of(with_notation(LINEAR)))
    derivative = next(rows for title, rows in blocks if title == "Derivative of $Y$")
    assert [rule for _, rule in derivative] == [
        "expand definition", "linearity", "derivative of an entry", "contract deltas"]


# seed 001 writes the softmax Jacobian as two cases, i = k and i != k
SEED001_CASES = ("\\begin{cases} p_{i} \\left(1 - p_{i}\\right) & i = k \\\\ "
                 "-p_{i} p_{k} & i \\ne k \\end{cases}")


def evaluate(term, env: dict[str, int], values: dict[str, np.ndarray],
             sizes: dict[str, int]) -> float:
    """A term of products, sums, powers, deltas and tensor entries at index values ``env``:
    an oracle written here, independent of the check's evaluator."""
    if isinstance(term, Num):
        return float(term.value)
    if isinstance(term, Tensor):
        return float(values[term.name][tuple(env[i.name] for i in term.indices)])
    if isinstance(term, Delta):
        return float(env[term.a.name] == env[term.b.name])
    if isinstance(term, Add):
        return sum(evaluate(t, env, values, sizes) for t in term.terms)
    if isinstance(term, Mul):
        return float(np.prod([evaluate(f, env, values, sizes) for f in term.factors]))
    if isinstance(term, Pow):
        return evaluate(term.base, env, values, sizes) ** evaluate(term.exponent, env,
                                                                   values, sizes)
    if isinstance(term, Sum):
        total = 0.0
        for point in itertools.product(*(range(sizes[i.dim]) for i in term.indices)):
            inner = dict(env, **{i.name: v for i, v in zip(term.indices, point)})
            total += evaluate(term.body, inner, values, sizes)
        return total
    raise NotImplementedError(type(term).__name__)


def test_cases_split_writes_the_softmax_jacobian_as_seed_001_does():
    derived = file_with_notation("softmax_single", "cases = split")
    latex = latex_of(derived)
    blocks = latex_blocks(latex)
    jacobian = next(rows for title, rows in blocks if title.startswith("Derivative of $p$"))
    assert jacobian[-2] == ("p_{i} \\left(\\delta_{ik} - p_{k}\\right)", "factor")
    assert jacobian[-1] == (SEED001_CASES, "cases")
    # the result keeps the delta form; the cases are a presentation of it
    assert "&= p_{i} \\left(\\delta_{ik} - p_{k}\\right)\n  \\\\*" in latex
    assert "\\begin{cases}" not in latex_of(derivation("softmax_single"))  # delta default
    text = render(derived, "text")
    assert "{ p[i] * (1 - p[i]) if i = k; -p[i] * p[k] if i != k }" in text


def test_cases_split_equals_the_delta_form_numerically():
    """Each case is the delta form with 1 or 0 put in for the delta: on random logits both
    agree with J = diag(p) - p p^T, which is the softmax's Jacobian by finite differences."""
    result = file_with_notation("softmax_single", "cases = split").results[0]
    block = next(b for b in result.blocks if b.title.startswith("Derivative of p"))
    delta_form = block.steps[-1].after
    cases = split_cases(delta_form, block.target.free)
    assert cases is not None and {cases.a.name, cases.b.name} == {"i", "k"}

    o = np.random.default_rng(14).normal(size=5)
    p = softmax(o)
    by_hand = np.diag(p) - np.outer(p, p)
    np.testing.assert_allclose(numeric_gradient(softmax, o), by_hand, atol=1e-8)
    values, sizes = {"p": p}, {"K": 5}
    for i, k in itertools.product(range(5), repeat=2):
        env = {"i": i, "k": k}
        delta = evaluate(delta_form, env, values, sizes)
        case = evaluate(cases.equal if i == k else cases.unequal, env, values, sizes)
        assert delta == pytest.approx(by_hand[i, k], abs=1e-12)
        assert case == pytest.approx(delta, abs=1e-12), (i, k)


@pytest.mark.parametrize("stem", ["softmax", "softmax_columns", "attention",
                                  "causal_attention", "softmax_cross_entropy"])
def test_cases_of_every_softmax_in_the_derivations_equal_their_delta_form(stem):
    """The same for each sub-derivation whose result splits: every entry, random values."""
    derived = file_with_notation(stem, "cases = split")
    gen = np.random.default_rng(2)
    split_any = False
    for result in derived.results:
        for block in result.blocks:
            if not block.steps:
                continue
            term = block.steps[-1].after
            cases = split_cases(term, block.target.free)
            if cases is None:
                continue
            split_any = True
            free = sorted(block.target.free, key=lambda i: i.name)
            sizes = {i.dim: 3 for i in free}
            values = {t.name: gen.uniform(0.1, 0.9, size=(3,) * len(t.indices))
                      for t in term.walk() if isinstance(t, Tensor)}
            for point in itertools.product(range(3), repeat=len(free)):
                env = {i.name: v for i, v in zip(free, point)}
                same = env[cases.a.name] == env[cases.b.name]
                case = evaluate(cases.equal if same else cases.unequal, env, values, sizes)
                assert case == pytest.approx(evaluate(term, env, values, sizes), abs=1e-12)
    assert split_any
    assert "\\begin{cases}" in latex_of(derived)


def test_opening_bracket_opens_each_gradient_with_its_entry():
    # seed 002 opens with [dL/dW]_ij
    latex = latex_of(with_notation(LINEAR, "opening = bracket"))
    assert ("\\left[\\frac{\\partial L}{\\partial \\mathbf{W}}\\right]_{ij} = "
            "\\frac{\\partial L}{\\partial W_{ij}}\n  &= \\sum_{s,n}") in latex
    assert "\\left[\\frac{\\partial L}{\\partial \\mathbf{b}}\\right]_{i} = " in latex
    assert latex.count("\\left[\\frac{\\partial L}") == 3  # once per gradient
    assert "\\left[\\frac{\\partial L}" not in latex_of(with_notation(LINEAR))


JACOBIAN = """\
dims M, N
input A[M,N], x[N]
y[m] = sum_n A[m,n] * x[n]
jacobian y wrt x
claim dy_dx = A.T
claim dy_dx = A
"""


def test_layout_denominator_transposes_the_jacobian_and_the_check_follows():
    for layout, shown, latex in [("numerator", "A", "\\mathbf{A}"),
                                 ("denominator", "A.T", "\\mathbf{A}^{T}")]:
        derived = with_notation(JACOBIAN, f"layout = {layout}")
        result = derived.results[0]
        assert result.matrix.text == shown, layout
        data = json.loads(render(derived, "json"))["results"][0]
        assert data["matrix"]["text"] == shown and data["matrix"]["latex"] == latex
        # the entries are the same: d y_m / d x_i = A_mi
        assert data["index"]["text"] == "d(y[m])/d(x[i]) = A[m,i]"
        assert result.check.passed and data["check"]["status"] == "passed"
        assert matrix_line(latex_of(derived))[0] == (
            f"\\frac{{\\partial \\mathbf{{y}}}}{{\\partial \\mathbf{{x}}}} = {latex}")


def test_layout_a_claim_is_read_in_the_layout_the_result_is_shown_in():
    for layout, holds in [("numerator", {"dy_dx = A.T": False, "dy_dx = A": True}),
                          ("denominator", {"dy_dx = A.T": True, "dy_dx = A": False})]:
        derived = with_notation(JACOBIAN, f"layout = {layout}")
        verdicts = {v.to_json()["text"]: v.holds for v in derived.claims}
        assert verdicts == holds, layout


def test_layout_denominator_a_wrong_shape_is_told_in_the_layout_shown():
    wrong = next(v for v in with_notation(JACOBIAN, "layout = numerator").claims
                 if not v.holds)
    # numerator layout: A.T is (N, M), the result A is (M, N)
    assert re.search(r"the claim has shape \(\d+, \d+\) = \(N, M\), "
                     r"the result \(\d+, \d+\) = \(M, N\)", wrong.reason), wrong.reason
    wrong = next(v for v in with_notation(JACOBIAN, "layout = denominator").claims
                 if not v.holds)
    # denominator layout: the claim A is (M, N), the result shown, A.T, is (N, M)
    assert re.search(r"the claim has shape \(\d+, \d+\) = \(M, N\), "
                     r"the result \(\d+, \d+\) = \(N, M\)", wrong.reason), wrong.reason


def test_layout_leaves_gradients_of_a_scalar_in_the_variables_shape():
    derived = with_notation(LINEAR, "layout = denominator")
    assert [r.matrix.text for r in derived.results] == [
        "dL_dY.T @ X", "dL_dY.sum(axis=0)", "dL_dY @ W"]


@pytest.mark.parametrize("option", [f"{o} = {v}" for o, vs in OPTION_VALUES.items()
                                    for v in vs[1:] if o != "layout"])
def test_no_option_changes_what_is_derived(option):
    """The options change how results are written: the text forms, the code and the
    check of the JSON are those of the default notation."""
    source = (DERIVATIONS / "mlp_tanh.idx").read_text(encoding="utf-8")

    def derived_part(text: str):
        return [(r["index"]["text"], r["matrix"]["text"] if r["matrix"] else None,
                 r["numpy"], [(s["rule"], s["text"]) for s in r["steps"]],
                 r["check"]["passed"])
                for r in json.loads(text)["results"]]

    assert derived_part(render(with_notation(source, option), "json")) == \
        derived_part(render(derivation("mlp_tanh"), "json"))


# --- 3. names, fresh indices, Hessians -----------------------------------------------------

def test_a_greek_vector_is_a_bold_symbol_and_a_multi_letter_name_is_bold():
    latex = latex_of(derivation("batch_norm"))
    lines = matrix_line(latex)
    assert ("\\frac{\\partial L}{\\partial \\boldsymbol{\\gamma}} = \\mathbf{1}^{T} \\left("
            "\\frac{\\partial L}{\\partial \\mathbf{Y}} \\odot \\mathbf{Xh}\\right)") in lines
    assert "\\frac{\\partial L}{\\partial \\boldsymbol{\\beta}} = " \
        "\\mathbf{1}^{T} \\frac{\\partial L}{\\partial \\mathbf{Y}}" in lines
    assert "\\mathbf{\\gamma}" not in latex and "\\mathbf{\\mathrm{" not in latex
    assert "\\mathbf{Xh}" in latex
    assert "Gradient of $L$ with respect to $\\gamma$" in latex  # a heading's name is math


def test_accented_names():
    derived = derive_text("""\
        dims N
        input yhat[N], t[N], xbar[N]
        L = sum_n (yhat[n] - t[n])^2 + sum_n xbar[n]^2
        grad L wrt yhat, xbar
        """)
    latex = latex_of(derived)
    assert "\\hat{y}_{n}" in latex and "\\bar{x}_{n}" in latex
    assert ("\\frac{\\partial L}{\\partial \\hat{\\mathbf{y}}} = "
            "2 \\left(\\hat{\\mathbf{y}} - \\mathbf{t}\\right)") in matrix_line(latex)
    assert "yhat" not in math_only(latex).split("\\paragraph{NumPy")[0]


def test_a_hessian_is_a_second_derivative():
    latex = latex_of(derivation("logistic_regression"))
    assert "\\frac{\\partial^2 L}{\\partial w_{i} \\, \\partial w_{j}}" in latex
    assert "\\frac{\\partial}{\\partial w_{j}} \\left(\\frac{\\partial L}" not in latex


def test_the_whole_hessian_is_a_second_derivative():
    latex = latex_of(derivation("logistic_regression"))
    assert matrix_line(latex)[-1].startswith(
        "\\frac{\\partial^2 L}{\\partial \\mathbf{w} \\, \\partial \\mathbf{w}} = ")


@pytest.mark.parametrize("path", sorted(DERIVATIONS.glob("*.idx")), ids=lambda p: p.stem)
def test_no_double_superscripts(path):
    """``W1`` is ``W^{(1)}``: a power or transpose of it is bracketed, in every notation
    that gives it a superscript."""
    for derived in (derivation(path.stem), file_with_notation(path.stem, "style = documents")):
        latex = latex_of(derived)
        assert "^{(1)}^" not in latex and "^{(2)}^" not in latex
        assert "}^{T}^" not in latex
        assert not re.search(r"\^\{[^{}]*\}\^", latex), re.search(r".{40}\^\{[^{}]*\}\^",
                                                                  latex)


def test_a_power_of_a_numbered_matrix_is_bracketed():
    latex = latex_of(derivation("mlp_tanh"))
    assert "\\left(\\mathbf{H}^{(1)}\\right)^{\\circ 2}" in latex


# An index the engine makes up: a letter and digits (t2, k2, i2, d2), in a subscript,
# under a sum or an arg max.
_ENGINE_INDEX = re.compile(r"(?<![A-Za-z0-9\\])[a-z][0-9]+(?![0-9])")


def engine_indices_in_latex(latex: str) -> list[str]:
    subscripts = re.findall(r"_\{([^{}]*)\}", math_only(latex))
    return sorted({m for sub in subscripts for m in _ENGINE_INDEX.findall(sub)})


@pytest.mark.parametrize("stem,engine", [
    ("attention", ["t2"]),
    ("gaussian_process", ["i2", "j2", "k2", "l2"]),
    ("max_pooling", ["d2", "k2"]),  # the reader's own k2, d2 of max_k, max_d
])
def test_fresh_indices_are_letters_in_the_latex_and_kept_in_the_text(stem, engine):
    derived = derivation(stem)
    text = render(derived, "text")
    assert sorted(set(re.findall(r"\b[a-z][0-9]+\b", text)) & set(engine)) == engine
    assert engine_indices_in_latex(latex_of(derived)) == []


# --- 4. sub-derivations derived once -------------------------------------------------------

def test_mlp_tanh_derives_each_sub_derivation_once():
    derived = derivation("mlp_tanh")
    latex, text = latex_of(derived), render(derived, "text")
    titles = [title for title, _ in latex_blocks(latex)]
    assert titles.count("Derivative of $Y$") == 1
    assert len(re.findall(r"^  Derivative of Y:", text, flags=re.M)) == 1
    assert "Derived earlier" in titles and "\n  Derived earlier:\n" in text
    # every reference is to a number the LaTeX tags (and the text puts after a heading)
    tags = re.findall(r"\\tag\{(\d+)\}", latex)
    assert len(tags) == len(set(tags)) and tags
    referred = re.findall(r"\(as derived in \((\d+)\)\)", latex)
    assert referred and set(referred) <= set(tags)
    text_tags = re.findall(r"^  [^\n]*:  \((\d+)\)$", text, flags=re.M)
    assert set(re.findall(r"\(as derived in \((\d+)\)\)", text)) <= set(text_tags)
    assert text_tags == tags
    # the derivative of Y carries the number it is referred to by
    y_tag = re.search(r"^  Derivative of Y:  \((\d+)\)$", text, flags=re.M).group(1)
    assert y_tag in referred
    # fewer definitions expanded than the raw derivation's blocks, or its own expansions
    blocks = sum(len(r.blocks) for r in derived.results)
    expansions = sum(1 for r in derived.results for b in r.blocks for s in b.steps
                     if s.rule == "expand definition")
    shown = latex.count("(expand definition)")
    assert shown < blocks and shown < expansions
    assert text.count("(expand definition)") == shown


def test_a_derived_earlier_block_gives_the_result_of_the_block_it_refers_to():
    latex = latex_of(derivation("mlp_tanh"))
    blocks = latex_blocks(latex)
    tagged = {}
    for match in _BLOCK.finditer(latex):
        tag = re.search(r"\\tag\{(\d+)\}", match.group(2))
        if tag:
            tagged[tag.group(1)] = match.group(2)
    for title, rows in blocks:
        if title != "Derived earlier":
            continue
        for rhs, rule in rows:
            number = re.fullmatch(r"as derived in \((\d+)\)", rule).group(1)
            last = [line for line in tagged[number].splitlines() if line.strip().startswith("&=")]
            assert last[-1].strip() == f"&= {rhs}"


# --- 5. a course's own templates -----------------------------------------------------------

COURSE_TEX = r"""((* extends "indexcalc/derivation.tex.j2" *))
((* block preamble *))
\documentclass[11pt]{article}
\usepackage[margin=2.5cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{fancyhdr}
\pagestyle{fancy}
\fancyhead[L]{Machine learning 101: worked solutions}
\allowdisplaybreaks
((* endblock *))
((* block code scoped *))((* endblock *))
"""


def course(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text, encoding="utf-8")
    return folder


def test_a_course_template_overrides_the_preamble_and_drops_the_code(tmp_path, capsys):
    folder = course(tmp_path, "course", {"derivation.tex.j2": COURSE_TEX})
    out = tmp_path / "linear.tex"
    assert cli.main(["derive", str(DERIVATIONS / "linear_layer.idx"), "-f", "latex",
                     "--template", str(folder), "-o", str(out)]) == 0
    latex = out.read_text(encoding="utf-8")
    assert latex.startswith("\\documentclass[11pt]{article}\n")
    assert "\\usepackage{fancyhdr}" in latex and "worked solutions}" in latex
    assert "\\begin{verbatim}" not in latex and "\\paragraph{NumPy.}" not in latex
    assert "\\begin{document}" in latex and "\\end{document}" in latex
    assert "\\paragraph{Numerical check.}" in latex  # the blocks not overridden stay
    assert "\\usepackage{fancyhdr}" not in render(derivation("linear_layer"), "latex")


def test_a_course_template_compiles(tmp_path):
    """The page's example (docs/worked-solutions.md), typeset."""
    need_pdflatex()
    folder = course(tmp_path, "course", {"derivation.tex.j2": COURSE_TEX})
    latex = render(derivation("linear_layer"), "latex", templates=folder)
    assert "\\usepackage{fancyhdr}" in latex and "\\begin{verbatim}" not in latex
    build = tmp_path / "build"
    build.mkdir()
    done = compile_latex(latex, build)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (build / "doc.pdf").stat().st_size > 1000
    assert "fancyhdr.sty" in (build / "doc.log").read_text(errors="replace")


def test_the_pages_example_template_is_the_one_tested():
    page = (DERIVATIONS.parent / "docs" / "worked-solutions.md").read_text(encoding="utf-8")
    assert COURSE_TEX.strip() in page


def test_a_template_with_a_syntax_error_names_its_file_and_line(tmp_path, capsys):
    broken = ('((* extends "indexcalc/derivation.tex.j2" *))\n'
              "((* block preamble *))\n"
              "\\documentclass{article}\n"
              "((* if fragment *))\n"
              "((* endblock *))\n")
    folder = course(tmp_path, "broken", {"derivation.tex.j2": broken})
    out = tmp_path / "out.tex"
    assert cli.main(["derive", str(DERIVATIONS / "linear_layer.idx"), "-f", "latex",
                     "--template", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("indexcalc: error in a template: ")
    assert "derivation.tex.j2:5: " in err
    assert not out.exists()


def test_a_markdown_template_with_an_unclosed_loop(tmp_path, capsys):
    folder = course(tmp_path, "md", {"derivation.md.j2": (
        "# {{ doc.title }}\n{% for r in doc.results %}\n{{ r.statement }}\n")})
    assert cli.main(["derive", str(DERIVATIONS / "linear_layer.idx"), "-f", "markdown",
                     "--template", str(folder)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "derivation.md.j2:3: Unexpected end of template" in captured.err


def test_template_of_a_missing_folder_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["derive", str(DERIVATIONS / "linear_layer.idx"), "-f", "latex",
                     "--template", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "--template" in err and "not a folder" in err
    a_file = tmp_path / "derivation.tex.j2"
    a_file.write_text(COURSE_TEX, encoding="utf-8")
    assert cli.main(["derive", str(DERIVATIONS / "linear_layer.idx"), "-f", "latex",
                     "--template", str(a_file)]) == 2


def test_a_markdown_template_replaces_or_extends_the_built_in_one(tmp_path, capsys):
    # a course replaces the Markdown template outright ...
    replaced = course(tmp_path, "replace", {"derivation.md.j2": (
        "# {{ doc.title }} (course notes)\n"
        "{% for r in doc.results %}\n"
        "## {{ r.statement }}\n"
        "$${{ r.index.latex }}$$\n"
        "{% endfor %}\n")})
    assert cli.main(["derive", str(DERIVATIONS / "linear_layer.idx"), "-f", "markdown",
                     "--template", str(replaced)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Gradients of a linear layer (samples as rows) (course notes)\n")
    assert "## Gradient of L with respect to W\n$$\\frac{\\partial L}{\\partial W_{ij}} = " \
        "\\sum_{s} \\frac{\\partial L}{\\partial Y_{si}} X_{sj}$$\n" in out
    assert "```python" not in out
    # ... or extends it, which without overrides is the built-in document
    extended = course(tmp_path, "extend", {
        "derivation.md.j2": '{% extends "indexcalc/derivation.md.j2" %}\n'})
    assert render(derivation("linear_layer"), "markdown", templates=extended) == \
        render(derivation("linear_layer"), "markdown")
    # the LaTeX, not in that folder, stays built-in
    assert render(derivation("linear_layer"), "latex", templates=extended) == \
        render(derivation("linear_layer"), "latex")
    # ... or overrides one block (the page's example: no code in the handout)
    no_code = course(tmp_path, "no_code", {"derivation.md.j2": (
        '{% extends "indexcalc/derivation.md.j2" %}\n'
        "{% block code scoped %}{% endblock %}\n")})
    shown = render(derivation("linear_layer"), "markdown", templates=no_code)
    assert "```python" not in shown and "**Result**" in shown and "**check passed**" in shown


def test_a_template_cannot_reach_python(tmp_path, capsys):
    folder = course(tmp_path, "sandbox", {
        "derivation.md.j2": "{{ doc.title.__class__.__mro__ }}\n"})
    assert cli.main(["derive", str(DERIVATIONS / "linear_layer.idx"), "-f", "markdown",
                     "--template", str(folder)]) == 2
    assert "unsafe" in capsys.readouterr().err


# --- 6. a fragment to \input ---------------------------------------------------------------

def test_fragment_is_the_body_only(tmp_path, capsys):
    out = tmp_path / "linear.tex"
    assert cli.main(["derive", str(DERIVATIONS / "linear_layer.idx"), "--fragment",
                     "-o", str(out)]) == 0
    body = out.read_text(encoding="utf-8")
    assert "\\documentclass" not in body and "\\begin{document}" not in body
    assert "\\end{document}" not in body and "\\maketitle" not in body
    assert body.startswith("% Gradients of a linear layer (samples as rows): ")
    assert body.count("\\section{") == 3
    assert body == render(derivation("linear_layer"), "latex", fragment=True)


EXAMPLE_NAMES = ["linear", "activation", "softmax"]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_the_committed_example_fragments_are_current(name):
    fresh = render(run(parse_file(str(EXAMPLES / f"{name}.idx"))), "latex", fragment=True)
    committed = (EXAMPLES / f"{name}.tex").read_text(encoding="utf-8")
    assert fresh == committed, (
        f"examples/worked-solutions/{name}.tex is out of date; regenerate it with\n"
        f"  indexcalc derive examples/worked-solutions/{name}.idx --fragment "
        f"-o examples/worked-solutions/{name}.tex")


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_the_example_fragments_are_in_the_seed_documents_notation(name):
    # seed 002: sums with upper limits, each gradient opening with its entry
    assert "notation: style = documents" in (EXAMPLES / f"{name}.idx").read_text()
    fragment = (EXAMPLES / f"{name}.tex").read_text(encoding="utf-8")
    assert "\\sum_{s}^{S}" in fragment
    assert "\\left[\\frac{\\partial L}{\\partial \\mathbf{X}}\\right]_{ij} = " \
        "\\frac{\\partial L}{\\partial X_{ij}}" in fragment
    assert "\\documentclass" not in fragment


def test_the_linear_example_opens_with_dl_dw_as_seed_002():
    fragment = (EXAMPLES / "linear.tex").read_text(encoding="utf-8")
    assert "\\left[\\frac{\\partial L}{\\partial \\mathbf{W}}\\right]_{ij} = " \
        "\\frac{\\partial L}{\\partial W_{ij}}" in fragment
    assert "\\sum_{s}^{S} \\sum_{n}^{N}" in fragment


def test_seed002_inputs_the_fragments_and_compiles_within_the_page(tmp_path):
    document = (EXAMPLES / "seed002.tex").read_text(encoding="utf-8")
    assert [f"\\input{{{name}}}" for name in EXAMPLE_NAMES] == \
        re.findall(r"\\input\{[a-z]+\}", document)
    need_pdflatex()
    folder = tmp_path / "worked-solutions"
    shutil.copytree(EXAMPLES, folder)
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "seed002.tex"],
        cwd=folder, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (folder / "seed002.pdf").stat().st_size > 1000
    log = (folder / "seed002.log").read_text(errors="replace")
    for name in EXAMPLE_NAMES:
        assert f"{name}.tex" in log  # each fragment was read
    widths = [float(w) for w in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide", log)]
    assert max(widths, default=0.0) <= 1.0, widths


# --- 7. what the pages showed (issue 14, every page looked at) ----------------------------

def test_the_files_one_assumption_is_named_where_it_is_used():
    """Seed 001 uses sum_i y_i = 1 (one-hot targets); the step says so, not '(assumption)'."""
    latex = latex_of(derivation("softmax_single"))
    assert "\\text{(assumption $\\sum_{i} y_{i} = 1$)}" in latex
    assert "(assumption sum_i y[i] = 1)" in render(derivation("softmax_single"), "text")


def test_a_scalar_fraction_in_a_matrix_sum_is_not_bracketed():
    latex = latex_of(derivation("gelu"))
    assert "\\left(\\frac{1}{2}\\right)" not in latex and "\\frac{1}{2} + " in latex


def test_a_sign_moved_out_of_a_sum_joins_the_row_before_in_the_latex():
    """softmax_single: 'sum_i -y_i (...)' then 'pull constant out of sum' print alike."""
    derived = derivation("softmax_single")
    text, latex = render(derived, "text"), latex_of(derived)
    assert "(pull constant out of sum)" in text
    assert "\\text{(cancel, pull constant out of sum)}" in latex
    for title, rows in latex_blocks(latex):
        sides = [side for side, _ in rows]
        assert all(a != b for a, b in zip(sides, sides[1:])), title


def test_headings_that_repeat_in_a_result_say_with_respect_to_what():
    text = render(derivation("batch_norm"), "text")
    first = text.split("\n2. ")[0]
    assert "Derivative of Xh with respect to v:" in first
    assert "Derivative of Xh with respect to mu:" in first


def test_the_numpy_heading_is_boxed_with_its_code():
    latex = latex_of(derivation("linear_layer"))
    assert "\\begin{minipage}{\\linewidth}\n\\paragraph{NumPy.}\n\\begin{verbatim}" in latex


def test_a_hessian_puts_in_the_derivative_derived_for_the_gradient():
    """logistic_regression: the second derivative needs dp_n/dw_j, which the gradient's
    'Derivative of p' block derived as dp_n/dw_i; it is put in by that block's number,
    not derived again in seven rows (seen on page 3)."""
    derived = derivation("logistic_regression")
    text = render(derived, "text")
    second = text.split("Second derivative:")[1].split("Result:")[0]
    assert "(as derived in (" in second and "(expand definition)" not in second
    number = re.search(r"\(as derived in \((\d+)\)\)", second).group(1)
    assert f"Derivative of p:  ({number})" in text
    hessian = next(r for r in derived.results if r.kind == "hessian")
    assert hessian.check.passed


def reused_derivatives(result) -> list[str]:
    """The tensors whose derivative a step put in from an earlier block."""
    return [d.expr.name for block in result.blocks for step in block.steps
            if step.rule == "derivative derived above"
            for d in step.before.walk() if isinstance(d, Deriv) and d not in set(step.after.walk())]


def test_a_derivative_through_another_definition_is_not_reused_for_a_hessian():
    """p depends on w only through z: its local derivative is partial (z held fixed), so the
    second derivative derives it again rather than put in the wrong (partial) one."""
    derived = derive_text(
        "dims N, D\ninput X[N,D], w[D], t[N]\n"
        "z[n] = sum_d X[n,d] * w[d]\np[n] = sigmoid(z[n])\n"
        "L = -sum_n (t[n] * log(p[n]) + (1 - t[n]) * log(1 - p[n]))\n"
        "hessian L wrt w\n")
    result = derived.results[0]
    assert result.check.passed, result.check
    reused = reused_derivatives(result)
    assert "p" not in reused  # dp/dw is partial (z fixed): derived again
    assert "z" in reused  # dz/dw is the total derivative: put in


def test_roots_of_constants_share_one_radical():
    """gelu: 1/(sqrt(pi) sqrt(2)) printed 22 times as two roots; sqrt(2 pi) is one symbol."""
    latex = latex_of(derivation("gelu"))
    assert "\\sqrt{2 \\pi}" in latex and "\\sqrt{\\pi} \\, \\sqrt{2}" not in latex


def test_a_derivative_through_an_inverse_is_not_reused_for_a_hessian():
    """y uses x directly and through inv(B), B built from x: its local derivative holds B
    fixed, so the Hessian must not put it in (it did, and the check failed: 0.58)."""
    derived = derive_text(
        "dims N\ninput A[N,N], x[N]\nB[i,j] = A[i,j] + x[i] * x[j]\n"
        "y[i] = sum_j inv(B)[i,j] * x[j]\nf = sum_i y[i] * y[i]\nhessian f wrt x\n")
    result = derived.results[0]
    assert result.check.passed, result.check
    reused = reused_derivatives(result)
    assert "y" not in reused
