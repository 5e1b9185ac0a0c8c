"""Tests of the renderers: LaTeX, Markdown, text and the JSON of CONTRACT section 2.

The main case is the linear layer of seed 002 (question 1a-1c), built by hand so that these
tests do not depend on the parser; the files that need the parser skip without it.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import importlib.resources
import json
import math
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexcalc.derivation import CheckResult, Derivation
from indexcalc.pipeline import run
from indexcalc.render.printing import to_latex, to_text
from indexcalc.problem import Definition, Goal, InputTensor, Problem
from indexcalc.render.document import (
    FORMATS,
    latex_escape,
    markdown_escape,
    render,
    to_json_data,
    wrap_code,
)
from indexcalc.terms import Index, Sum, Tensor, add, mul

MALICIOUS = r"\input{/etc/passwd} \write18{rm -rf /} $x$ & #1 ^ _ % ~ <b>"


def linear_layer_problem(title: str | None = "Gradients of a linear layer") -> Problem:
    """``Y[s,n] = sum_m X[s,m] W[n,m] + b[n]``, ``L = loss(Y)``, ``grad L wrt W, b, X``."""
    s, m, n = Index("s", "S"), Index("m", "M"), Index("n", "N")
    problem = Problem(title=title)
    problem.dims = {"S": None, "M": None, "N": None}
    problem.inputs = {
        "X": InputTensor("X", ("S", "M")),
        "W": InputTensor("W", ("N", "M")),
        "b": InputTensor("b", ("N",)),
    }
    body = add(Sum((m,), mul(Tensor("X", (s, m)), Tensor("W", (n, m)))), Tensor("b", (n,)))
    problem.definitions = {
        "Y": Definition("Y", (s, n), body),
        "L": Definition("L", (), None, loss_args=("Y",)),
    }
    problem.goals = [Goal("grad", "L", wrt) for wrt in ("W", "b", "X")]
    return problem


@pytest.fixture(scope="module")
def linear() -> Derivation:
    return run(linear_layer_problem())


def with_check(derivation: Derivation, position: int, check: CheckResult) -> Derivation:
    results = list(derivation.results)
    results[position] = dataclasses.replace(results[position], check=check)
    return dataclasses.replace(derivation, results=tuple(results))


def failed_first(derivation: Derivation) -> Derivation:
    return with_check(derivation, 0, CheckResult(False, 0.25, "15 entries, step 1e-06"))


def compile_latex(source: str, folder: Path) -> subprocess.CompletedProcess:
    (folder / "doc.tex").write_text(source, encoding="utf-8")
    return subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
        cwd=folder, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
    )


def need_pdflatex() -> None:
    """Skip without pdflatex; under CI (``CI`` set) fail instead, so the test always runs there."""
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing on CI: .ci/run should have installed it")
        pytest.skip("pdflatex is not installed")


# --- JSON: CONTRACT section 2 ----------------------------------------------------------

def test_json_has_exactly_the_contract_shape(linear):
    data = json.loads(render(linear, "json"))
    assert list(data) == ["title", "results"]
    assert data["title"] == "Gradients of a linear layer"
    assert [(r["kind"], r["of"], r["wrt"]) for r in data["results"]] == [
        ("grad", "L", "W"), ("grad", "L", "b"), ("grad", "L", "X")]
    for result in data["results"]:
        assert list(result) == ["kind", "of", "wrt", "index", "matrix", "numpy", "steps", "check"]
        assert set(result["index"]) == {"text", "latex"}
        # CONTRACT section 2: matrix.where lists the defined tensors matrix.text names
        assert result["matrix"] is None or set(result["matrix"]) == {"text", "latex", "where"}
        assert set(result["numpy"]) == {"source", "args"}
        assert isinstance(result["numpy"]["args"], list)
        assert result["steps"], "every result shows its steps"
        for step in result["steps"]:
            assert set(step) == {"rule", "text", "latex"}
            assert all(isinstance(v, str) for v in step.values())
        # CONTRACT section 2's two keys, then what the check was and how it went
        assert list(result["check"]) == ["passed", "max_rel_error", "status", "method",
                                         "detail"]
        assert result["check"]["passed"] is True and result["check"]["status"] == "passed"
        assert result["check"]["method"] == "complex step"
        assert isinstance(result["check"]["max_rel_error"], float)
        assert math.isfinite(result["check"]["max_rel_error"])


def test_json_values_of_the_linear_layer(linear):
    grad_w = json.loads(render(linear, "json"))["results"][0]
    assert grad_w["index"]["text"] == "dL_dW[i,j] = sum_s dL_dY[s,i] * X[s,j]"
    assert grad_w["index"]["latex"].startswith(r"\frac{\partial L}{\partial W_{ij}} = ")
    assert grad_w["matrix"]["text"] == "dL_dY.T @ X"
    assert grad_w["numpy"] == {"source": "lambda dL_dY, X: dL_dY.T @ X", "args": ["dL_dY", "X"]}


def test_json_steps_are_every_step_of_every_block_as_target_equals_after(linear):
    result = linear.results[0]
    steps = json.loads(render(linear, "json"))["results"][0]["steps"]
    expected = [(s.rule, f"{to_text(b.target)} = {to_text(s.after)}",
                 f"{to_latex(b.target)} = {to_latex(s.after)}")
                for b in result.blocks for s in b.steps]
    assert [(s["rule"], s["text"], s["latex"]) for s in steps] == expected
    assert steps[0]["rule"] == "chain rule"
    assert steps[-1]["text"] == "dL_dW[i,j] = sum_s dL_dY[s,i] * X[s,j]"


def test_json_is_json_dumps_with_indent_2(linear):
    out = render(linear, "json")
    assert out == json.dumps(to_json_data(linear), indent=2) + "\n"


@pytest.mark.parametrize("error", [math.nan, math.inf, -math.inf])
def test_json_max_rel_error_not_finite_is_null(linear, error):
    derivation = with_check(linear, 1, CheckResult(False, error, ""))
    check = json.loads(render(derivation, "json"))["results"][1]["check"]
    assert check == {"passed": False, "max_rel_error": None, "status": "failed", "method": "",
                     "detail": ""}


def test_json_title_absent_is_null():
    derivation = Derivation(linear_layer_problem(title=None), ())
    assert json.loads(render(derivation, "json")) == {"title": None, "results": []}


# --- the documents ---------------------------------------------------------------------

def test_text_shows_chains_result_numpy_and_check(linear):
    out = render(linear, "text")
    assert out.startswith("Gradients of a linear layer\n===========================\n")
    assert "1. Gradient of L with respect to W" in out
    assert "dL_dW[i,j] = sum_s dL_dY[s,i] * X[s,j]" in out
    assert "dL_dW = dL_dY.T @ X" in out
    assert "lambda dL_dY, X: dL_dY.T @ X" in out
    assert "= X[s,j] * delta(n,i)" in out and "(contract deltas)" in out
    assert out.count("check passed") == 3
    assert "FAILED" not in out


def test_markdown_uses_aligned_math_blocks_and_a_python_fence(linear):
    out = render(linear, "markdown")
    assert out.startswith("# Gradients of a linear layer\n")
    assert "## 1. Gradient of L with respect to W" in out
    assert "$$\n\\begin{aligned}\n" in out and "\\end{aligned}\n$$" in out
    assert r"&& \text{(contract deltas)}" in out
    assert "```python\nlambda dL_dY, X: dL_dY.T @ X\n```" in out
    assert r"\frac{\partial L}{\partial \mathbf{W}} &= " in out
    assert out.count("check passed") == 3


def test_latex_is_a_standalone_document_like_the_seeds(linear):
    out = render(linear, "latex")
    assert out.startswith("\\documentclass{article}\n")
    for needed in (r"\usepackage{amsmath}", r"\usepackage{amssymb}", r"\begin{document}",
                   r"\end{document}", r"\title{Gradients of a linear layer}",
                   r"\section{Gradient of $L$ with respect to $W$}", r"\begin{align*}",
                   r"\text{(chain rule)}", r"\text{(contract deltas)}",
                   "\\begin{verbatim}\nlambda dL_dY, X: dL_dY.T @ X\n\\end{verbatim}",
                   r"\Leftrightarrow\quad \frac{\partial L}{\partial \mathbf{W}}"):
        assert needed in out, needed
    assert r"\today" not in out and r"\date{}" in out  # deterministic: no date
    assert out.count("check passed") == 3


def test_latex_block_is_one_chain_target_then_each_step(linear):
    out = render(linear, "latex")
    block = linear.results[0].blocks[1]  # "Derivative of Y": four steps
    lines = [f"  &= {to_latex(step.after)}" for step in block.steps]
    chain = "\n".join(f"{line}\n  && \\text{{({step.rule})}}\n  \\\\" for line, step
                      in zip(lines, block.steps))[: -len("\n  \\\\")]
    assert f"\\begin{{align*}}\n  {to_latex(block.target)}\n{chain}\n\\end{{align*}}" in out


def test_block_without_steps_shows_target_equals_start(linear):
    result = linear.results[0]
    empty = dataclasses.replace(result.blocks[0], steps=())
    derivation = dataclasses.replace(
        linear, results=(dataclasses.replace(result, blocks=(empty,)),))
    out = render(derivation, "text")
    assert f"    {to_text(empty.target)}\n      = {to_text(empty.start)}\n" in out
    assert f"{to_latex(empty.target)}\n  &= {to_latex(empty.start)}\n" in render(derivation, "latex")
    assert json.loads(render(derivation, "json"))["results"][0]["steps"] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_check_reads_check_failed_in_every_format(linear, fmt):
    out = render(failed_first(linear), fmt)
    if fmt == "json":
        checks = [r["check"] for r in json.loads(out)["results"]]
        assert checks[0]["passed"] is False and checks[0]["max_rel_error"] == 0.25
        assert checks[0]["status"] == "failed"
        assert [c["passed"] for c in checks[1:]] == [True, True]
    else:
        assert "check FAILED" in out
        assert out.count("check passed") == 2  # the two others, never the failed one


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_is_deterministic(fmt):
    first = render(run(linear_layer_problem()), fmt)
    second = render(run(linear_layer_problem()), fmt)
    # The check draws random inputs; only its error may differ between runs.
    if fmt == "json":
        first, second = (json.loads(o) for o in (first, second))
        for data in (first, second):
            for result in data["results"]:
                result["check"]["max_rel_error"] = 0.0
    else:
        first, second = (_without_errors(o) for o in (first, second))
    assert first == second


def _without_errors(text: str) -> str:
    return re.sub(r"\d\.\d\d(e[-+]\d+| \\times 10\^\{-?\d+\})", "E", text)


def test_unknown_format_is_an_error(linear):
    with pytest.raises(ValueError, match="unknown format"):
        render(linear, "html")


# --- escaping --------------------------------------------------------------------------

def test_latex_escape_of_every_special():
    assert latex_escape("\\ { } $ & # ^ _ % ~") == (
        r"\textbackslash{} \{ \} \$ \& \# \textasciicircum{} \_ \% \textasciitilde{}")
    assert latex_escape(r"\input{/etc/passwd}") == r"\textbackslash{}input\{/etc/passwd\}"
    assert latex_escape("two\n\nlines") == "two  lines"  # a blank line would end \title
    assert latex_escape("Résumé λ Σ ☃") == (
        r"R\'{e}sum\'{e} $\lambda$ $\Sigma$ \texttt{U+2603}")


_UNESCAPE = {r"\textbackslash{}": "\\", r"\{": "{", r"\}": "}", r"\$": "$", r"\&": "&",
             r"\#": "#", r"\textasciicircum{}": "^", r"\_": "_", r"\%": "%",
             r"\textasciitilde{}": "~", r"\textless{}": "<", r"\textgreater{}": ">",
             r"\textbar{}": "|"}


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126)))
def test_latex_escape_of_ascii_is_literal_text(text):
    escaped = latex_escape(text)
    # Reading the escapes back gives the text, and nothing else in it is TeX syntax.
    out, rest = [], escaped
    while rest:
        for escape, char in _UNESCAPE.items():
            if rest.startswith(escape):
                out.append(char)
                rest = rest[len(escape):]
                break
        else:
            assert rest[0] not in "\\{}$&#^_%~", escaped
            out.append(rest[0])
            rest = rest[1:]
    assert "".join(out) == text


def malicious(derivation: Derivation) -> Derivation:
    """Free text everywhere it can reach the LaTeX document."""
    result = derivation.results[0]
    blocks = tuple(
        dataclasses.replace(b, title=MALICIOUS,
                            steps=tuple(dataclasses.replace(s, rule=MALICIOUS) for s in b.steps))
        for b in result.blocks)
    result = dataclasses.replace(result, blocks=blocks,
                                 check=CheckResult(False, 0.5, MALICIOUS))
    problem = dataclasses.replace(derivation.problem, title=MALICIOUS)
    return Derivation(problem, (result,) + derivation.results[1:])


def test_latex_prints_free_text_literally(linear):
    out = render(malicious(linear), "latex")
    assert "\\input" not in out and "\\write18" not in out
    assert r"\title{\textbackslash{}input\{/etc/passwd\} \textbackslash{}write18" in out
    blocks = linear.results[0].blocks
    # the title, each block title, each rule name and the check detail
    expected = 1 + len(blocks) + sum(len(b.steps) for b in blocks) + 1
    assert out.count(latex_escape(MALICIOUS)) == expected


def test_markdown_and_text_keep_the_title_as_is(linear):
    derivation = dataclasses.replace(
        linear, problem=dataclasses.replace(linear.problem, title="Softmax & cross-entropy"))
    assert render(derivation, "markdown").startswith("# Softmax & cross-entropy\n")
    assert render(derivation, "text").startswith("Softmax & cross-entropy\n")
    assert markdown_escape("a <script> b\nc") == "a &lt;script&gt; b c"


# --- LaTeX compiles --------------------------------------------------------------------

def test_latex_output_compiles_with_pdflatex(linear, tmp_path):
    need_pdflatex()
    done = compile_latex(render(linear, "latex"), tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_latex_with_malicious_and_unicode_text_compiles(linear, tmp_path):
    need_pdflatex()
    derivation = malicious(linear)
    derivation = dataclasses.replace(derivation, problem=dataclasses.replace(
        derivation.problem, title=MALICIOUS + " Résumé λ Ω ☃ | ü"))
    done = compile_latex(render(derivation, "latex"), tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "(/etc/passwd" not in (tmp_path / "doc.log").read_text(errors="replace")


SAMPLES = {
    "softmax": """\
        title: Softmax and cross-entropy
        dims S=4, C=3
        input X[S,C], T[S,C]
        Y[s,c] = exp(X[s,c]) / sum_k exp(X[s,k])
        L = -1/S * sum_{s,c} T[s,c] * log(Y[s,c])
        grad L wrt X
        jacobian Y wrt X
        """,
    "hessian": """\
        dims N=4, D=3
        input A[N,D], x[D], lam
        f = sum_n (sum_d A[n,d] x[d])^2 + lam * sum_d x[d]^2
        hessian f wrt x
        """,
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_jacobian_and_hessian_render_and_compile(name, tmp_path):
    parser = pytest.importorskip("indexcalc.syntax.idx")
    derivation = run(parser.parse_text(textwrap.dedent(SAMPLES[name]), f"{name}.idx"))
    for fmt in FORMATS:
        assert render(derivation, fmt)
    kinds = [r["kind"] for r in json.loads(render(derivation, "json"))["results"]]
    assert kinds == (["grad", "jacobian"] if name == "softmax" else ["hessian"])
    if any(r.matrix is None and "einsum" in r.numpy.source for r in derivation.results):
        assert "No matrix form; NumPy uses einsum." in render(derivation, "latex")
        assert "matrix form: none; NumPy uses einsum" in render(derivation, "text")
    need_pdflatex()
    done = compile_latex(render(derivation, "latex"), tmp_path)
    assert done.returncode == 0, done.stdout[-3000:]


# --- code wrapping and packaging -------------------------------------------------------

def test_wrap_code_keeps_valid_python_within_the_width():
    source = ("lambda X: ((Y := (_t1 := np.exp(X)) / (_t1.sum(axis=-1))[:, None]), "
              "np.einsum('ac,ad,cba->acdb', Y, np.eye(X.shape[0]), ((np.eye(X.shape[1]))"
              "[:, :, None] + (np.einsum('ab->ba', (-1.0) * Y))[None, :, :]), "
              "optimize=True))[-1]")
    lines = wrap_code(source, 88)
    assert len(lines) > 1 and max(map(len, lines)) <= 88
    assert ast.dump(ast.parse("\n".join(lines))) == ast.dump(ast.parse(source))
    assert wrap_code("lambda x: x", 5) == ("lambda x: x",)


def test_templates_ship_in_the_installed_package():
    try:
        importlib.metadata.distribution("indexcalc")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("indexcalc is not installed (running from a source checkout)")
    folder = importlib.resources.files("indexcalc.templates")
    names = {entry.name for entry in folder.iterdir()}
    assert {"derivation.tex.j2", "derivation.md.j2", "derivation.txt.j2"} <= names


def test_wrap_code_breaks_before_operators_inside_brackets():
    """A long expression without commas (batch norm's gradient) breaks before + - * / @ &
    inside brackets (never inside ** or before a unary minus), and stays valid Python."""
    source = ("lambda dL_dY, Xh, gamma, v, eps: ((dL_dY - (dL_dY.sum(axis=0) / dL_dY.shape[0])"
              "[None, :] - (Xh * ((dL_dY * Xh).sum(axis=0))[None, :]) / dL_dY.shape[0]) * "
              "(gamma / np.sqrt(v + eps))[None, :] * (-Xh) ** 2)")
    lines = wrap_code(source, 60)
    assert len(lines) > 1 and all(len(line) <= 64 for line in lines)
    assert not any(line.strip().startswith("**") for line in lines)
    compile("\n".join(lines), "<wrapped>", "eval")


def test_the_code_of_every_derivation_fits_the_page(tmp_path):
    """No verbatim line of generated code runs off the page (issue 14: batch norm was 371 pt
    over): pdflatex reports no overfull box in typewriter type."""
    from conftest import derivation

    need_pdflatex()
    for name in ("batch_norm", "layer_norm", "conv1d", "strided_conv", "gelu"):
        folder = tmp_path / name
        folder.mkdir()
        done = compile_latex(render(derivation(name), "latex"), folder)
        assert done.returncode == 0, done.stdout[-2000:]
        log = (folder / "doc.log").read_text(errors="replace")
        overfull = [k for k, line in enumerate(log.splitlines()) if line.startswith("Overfull")]
        typewriter = [k for k in overfull if "cmtt" in "".join(log.splitlines()[k:k + 3])]
        assert not typewriter, name
