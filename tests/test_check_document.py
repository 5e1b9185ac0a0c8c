"""``indexcalc check FILE --against DOC`` (CONTRACT section 6): worked solutions link by link.

The seed documents ship in ``examples/seed000``-``seed002`` with their context files.  Seed
002 has five wrong lines: 1d divides by h' (line 37), 1e's product of two exponentials
takes ``X_sc`` for ``X_sj`` (line 54) and drops a factor ``Y_ij`` (line 60), 1f writes the
Kronecker product (line 77), and 2a turns ``Y (.) ((T (.) Y) 1 1^T)`` into ``(T (.) Y) 1 1^T``
(line 84).  Seeds 000 and 001 are right.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from indexcalc import cli
from indexcalc.check.document import (
    DOES_NOT_HOLD, HOLDS, NOT_UNDERSTOOD, check_document, load_context,
)
from indexcalc.syntax.idx import parse_file, parse_text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEEDS = {"seed000": "single.idx", "seed001": "softmax_cross_entropy.idx",
         "seed002": "linear.idx", "seed003": "softmax_regression.idx"}


def report(seed: str):
    folder = EXAMPLES / seed
    doc = folder / "document.md"
    return check_document(doc.read_text(), str(doc), parse_file(str(folder / SEEDS[seed])),
                          load_context(str(doc)))


def lines(rep, verdict: str) -> list[int]:
    return sorted({k.line for k in rep.links if k.verdict == verdict})


# --- the seed documents ----------------------------------------------------------------------

def test_seed_002_every_wrong_line_is_flagged_and_nothing_else():
    rep = report("seed002")
    assert lines(rep, DOES_NOT_HOLD) == [37, 54, 60, 77, 84]
    assert rep.first_wrong_line == 37


def test_seed_002_the_wrong_links_say_why():
    rep = report("seed002")
    by_line = {}
    for link in rep.links:
        if link.verdict == DOES_NOT_HOLD:
            by_line.setdefault(link.line, []).append(link)
    assert "not a derivative" in by_line[37][0].reason            # 1d: divides by h'
    assert "different shapes" in by_line[77][0].reason            # 1f: (x) is Kronecker
    assert by_line[84][0].counterexample is not None               # 2a: a counterexample
    assert "earlier step" in by_line[60][1].reason                 # 1e: recovers after it


def test_seeds_000_and_001_hold_throughout():
    for seed in ("seed000", "seed001"):
        rep = report(seed)
        assert lines(rep, DOES_NOT_HOLD) == [], seed
        assert rep.first_wrong_line is None


def test_seeds_000_to_002_are_read_at_least_80_percent():
    reps = [report(seed) for seed in ("seed000", "seed001", "seed002")]
    links = sum(len(r.links) for r in reps)
    read = sum(len(r.links) - r.count(NOT_UNDERSTOOD) for r in reps)
    assert links >= 90
    assert read / links >= 0.8, (read, links)


def test_seed_001_reads_the_case_conditions_stated_in_the_text():
    rep = report("seed001")
    diagonal = [k for k in rep.links if k.line == 47]
    assert diagonal and diagonal[0].verdict == HOLDS and "where i == k" in diagonal[0].reason


def test_seed_003_vector_arrows_are_not_understood_and_nothing_is_flagged():
    """Seed 003 writes columns of W as arrows, sums from 0 and 1{y_n = k}: not read; what
    is read (X (S(X) - Y)^T, S(X) being S written as a function of X) is never misjudged."""
    rep = report("seed003")
    assert lines(rep, DOES_NOT_HOLD) == []
    assert "X @ (S - Y).T" in {k.right for k in rep.links}


def test_not_understood_is_reported_with_its_place_and_never_holds():
    rep = report("seed001")
    unread = [k for k in rep.links if k.verdict == NOT_UNDERSTOOD]
    assert [k.line for k in unread] == [15, 17]  # the rules with \nabla (u^T A)
    assert all("line 15" in k.reason or "line 17" in k.reason for k in unread)


# --- worked solutions with mistakes planted -------------------------------------------------

TANH = """\
dims S, N
input X[S,N]
Y[s,n] = tanh(X[s,n])
L = loss(Y)
"""

TANH_DOC = r"""
# Backward through tanh

$$\frac{\partial Y_{sn}}{\partial X_{ij}} = (1 - \tanh^2(X_{sn})) \delta_{si} \delta_{nj}$$

$$\begin{aligned}
\frac{\partial L}{\partial X_{ij}} &= \sum_{s}^{S} \sum_{n}^{N} \frac{\partial L}{\partial Y_{sn}} \frac{\partial Y_{sn}}{\partial X_{ij}} \\
&= \sum_{s}^{S} \sum_{n}^{N} \frac{\partial L}{\partial Y_{sn}} (1 - Y_{sn}^2) \delta_{si} \delta_{nj} \\
&= \frac{\partial L}{\partial Y_{ji}} (1 - Y_{ij}^2)
\end{aligned}$$

$$\frac{\partial L}{\partial \mathbf{X}} = \frac{\partial L}{\partial \mathbf{Y}} \odot (1 - \mathbf{Y} \odot \mathbf{Y})$$
"""


def check_text(context: str, document: str):
    return check_document(textwrap.dedent(document), "doc.md",
                          parse_text(textwrap.dedent(context), "context.idx"))


def test_a_wrong_index_after_contracting_is_flagged_on_its_line():
    rep = check_text(TANH, TANH_DOC)
    assert lines(rep, DOES_NOT_HOLD) == [9]           # dL/dY_ji for dL/dY_ij
    assert lines(rep, HOLDS) == [4, 7, 8, 12]
    (wrong,) = [k for k in rep.links if k.verdict == DOES_NOT_HOLD]
    assert "index i ranges over" in wrong.reason  # over N in dL/dY_ji, over S in Y_ij


def test_a_counterexample_names_the_inputs():
    doc = TANH_DOC.replace("Y_{ji}", "Y_{ij}").replace("(1 - Y_{ij}^2)\n", "(1 + Y_{ij}^2)\n")
    doc = doc.replace(r"\frac{\partial L}{\partial Y_{ij}} (1 - Y_{ij}^2)",
                      r"\frac{\partial L}{\partial Y_{ij}} (1 + Y_{ij}^2)")
    rep = check_text(TANH, doc)
    (wrong,) = [k for k in rep.links if k.verdict == DOES_NOT_HOLD]
    assert wrong.line == 9
    assert set(wrong.counterexample.inputs) == {"X", "dL_dY"}
    assert len(wrong.counterexample.entry) == 2


@pytest.mark.parametrize("right, holds", [
    (r"\frac{\partial L}{\partial \mathbf{Y}} \odot (1 - \mathbf{Y} \odot \mathbf{Y})", True),
    (r"\frac{\partial L}{\partial \mathbf{Y}} \odot (1 + \mathbf{Y} \odot \mathbf{Y})", False),
    (r"\frac{\partial L}{\partial \mathbf{Y}} \oslash (1 - \mathbf{Y} \odot \mathbf{Y})", False),
    (r"-\frac{\partial L}{\partial \mathbf{Y}} \odot (1 - \mathbf{Y} \odot \mathbf{Y})", False),
    (r"\left(\frac{\partial L}{\partial \mathbf{Y}}\right)^T \odot (1 - \mathbf{Y}^T)", False),
])
def test_kinds_of_planted_mistakes_in_a_matrix_form(right, holds):
    rep = check_text(TANH, f"$$\\frac{{\\partial L}}{{\\partial \\mathbf{{X}}}} = {right}$$")
    (link,) = rep.links
    assert link.verdict == (HOLDS if holds else DOES_NOT_HOLD), link.reason


LINEAR = """\
dims S, M, N
input X[S,M], W[N,M]
Y[s,n] = sum_m X[s,m] W[n,m]
L = loss(Y)
"""


@pytest.mark.parametrize("right, holds", [
    (r"\left(\frac{\partial L}{\partial \mathbf{Y}}\right)^{T} \mathbf{X}", True),
    (r"\mathbf{X}^T \frac{\partial L}{\partial \mathbf{Y}}", False),        # transposed
    (r"\frac{1}{S} \left(\frac{\partial L}{\partial \mathbf{Y}}\right)^{T} \mathbf{X}", False),
])
def test_a_transposed_matrix_form_is_a_wrong_shape(right, holds):
    rep = check_text(LINEAR, f"$$\\frac{{\\partial L}}{{\\partial \\mathbf{{W}}}} = {right}$$")
    (link,) = rep.links
    assert link.verdict == (HOLDS if holds else DOES_NOT_HOLD), link.reason


def test_an_unknown_name_is_not_understood_and_does_not_count_as_holding():
    rep = check_text(LINEAR, r"$$\frac{\partial L}{\partial W_{ij}} = Q_{ij}$$")
    (link,) = rep.links
    assert link.verdict == NOT_UNDERSTOOD and "Q is not a name" in link.reason
    assert rep.first_wrong_line is None


# --- the command line ------------------------------------------------------------------------

def test_check_against_exits_1_and_reports_json(capsys):
    folder = EXAMPLES / "seed002"
    status = cli.main(["check", str(folder / "linear.idx"), "--against",
                       str(folder / "document.md"), "--format", "json"])
    assert status == 1
    data = json.loads(capsys.readouterr().out)
    assert data["first_wrong_line"] == 37
    link = data["links"][0]
    assert set(link) >= {"line", "left", "right", "verdict", "reason", "counterexample"}
    assert {k["verdict"] for k in data["links"]} == {HOLDS, DOES_NOT_HOLD, NOT_UNDERSTOOD}


def test_check_against_a_right_document_exits_0(capsys):
    folder = EXAMPLES / "seed000"
    assert cli.main(["check", str(folder / "single.idx"), "--against",
                     str(folder / "document.md")]) == 0
    assert "first wrong line: none" in capsys.readouterr().out


def test_the_annotated_document_carries_every_verdict(tmp_path, capsys):
    folder = EXAMPLES / "seed002"
    out = tmp_path / "annotated.md"
    cli.main(["check", str(folder / "linear.idx"), "--against", str(folder / "document.md"),
              "--format", "markdown", "-o", str(out)])
    text = out.read_text()
    source = (folder / "document.md").read_text()
    assert text.count("> \u2717 line") == 8 and "line 37, DOES NOT HOLD" in text
    for paragraph in ("Question 1", "resulting in"):  # the document itself is all there
        assert paragraph in text and paragraph in source


def test_check_refuses_to_overwrite_the_document(capsys):
    folder = EXAMPLES / "seed000"
    doc = folder / "document.md"
    before = doc.read_bytes()
    assert cli.main(["check", str(folder / "single.idx"), "--against", str(doc),
                     "-o", str(doc)]) == 2
    assert doc.read_bytes() == before


def test_a_missing_document_is_a_usage_error(tmp_path, capsys):
    folder = EXAMPLES / "seed000"
    assert cli.main(["check", str(folder / "single.idx"), "--against",
                     str(tmp_path / "none.md")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_ones_vector_met_elementwise_is_a_matrix_of_ones():
    """``\\mathbf{1} - \\mathbf{Y}``: the ones take the shape of Y (sigmoid' = Y (1 - Y))."""
    context = """\
    dims S, N
    input X[S,N]
    Y[s,n] = sigmoid(X[s,n])
    L = loss(Y)
    """
    doc = (r"$$\nabla_{\mathbf{X}} L = \frac{\partial L}{\partial \mathbf{Y}} \odot \mathbf{Y} "
           r"\odot \left( \mathbf{1} - \mathbf{Y} \right).$$")
    (link,) = check_text(context, doc).links
    assert link.verdict == HOLDS, link.reason


def test_an_inner_product_with_ones_is_a_number():
    """``\\exp(z) / (1^T \\exp(z))``: the softmax as the gradient of log-sum-exp."""
    context = """\
    dims J
    input z[J]
    L = log(sum_j exp(z[j]))
    """
    doc = r"$$\nabla_{\mathbf{z}} L = \frac{\exp(\mathbf{z})}{\mathbf{1}^\top \exp(\mathbf{z})}$$"
    (link,) = check_text(context, doc).links
    assert link.verdict == HOLDS, link.reason
    wrong = doc.replace(r"{\mathbf{1}^\top \exp(\mathbf{z})}", r"{\exp(\mathbf{z})^\top \mathbf{1} + 1}")
    (link,) = check_text(context, wrong).links
    assert link.verdict == DOES_NOT_HOLD


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_the_shipped_reports_are_what_the_checker_prints(seed, tmp_path, monkeypatch):
    """examples/seed00*/report.txt and annotated.md are the checker's output, as it is now."""
    folder = EXAMPLES / seed
    monkeypatch.chdir(folder)
    for name, fmt in (("report.txt", "text"), ("annotated.md", "markdown")):
        out = tmp_path / name
        cli.main(["check", SEEDS[seed], "--against", "document.md", "-f", fmt, "-o", str(out)])
        assert out.read_text() == (folder / name).read_text(), f"regenerate {seed}/{name}"


def test_a_jacobian_of_two_vectors_is_read_in_either_layout():
    """The softmax Jacobian diag(p) - p p^T (symmetric), and d(Wx)/dx as W (numerator
    layout) or W^T (denominator layout): documents use both."""
    context = """\
    dims K, N
    input o[K], W[K,N], x[N]
    p[i] = exp(o[i]) / sum_j exp(o[j])
    z[k] = sum_n W[k,n] x[n]
    """
    doc = "\n\n".join([
        r"$$\frac{\partial \mathbf{p}}{\partial \mathbf{o}} = \operatorname{diag}(\mathbf{p}) - \mathbf{p}\mathbf{p}^\top$$",
        r"$$\frac{\partial \mathbf{z}}{\partial \mathbf{x}} = \mathbf{W}$$",
        r"$$\frac{\partial \mathbf{z}}{\partial \mathbf{x}} = \mathbf{W}^T$$",
        r"$$\frac{\partial \mathbf{p}}{\partial \mathbf{o}} = \operatorname{diag}(\mathbf{p}) + \mathbf{p}\mathbf{p}^\top$$",
        r"$$\frac{\partial \mathbf{z}}{\partial \mathbf{x}} = \mathbf{W}^T \mathbf{W}$$",
    ])
    rep = check_text(context, doc)
    assert [k.verdict for k in rep.links] == [HOLDS, HOLDS, HOLDS, DOES_NOT_HOLD, DOES_NOT_HOLD]


def test_a_context_switch_to_a_missing_file_is_bad_input_at_the_display(tmp_path, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text("Intro.\n<!-- indexcalc: nowhere.idx -->\n\n$$A = B$$\n")
    context = tmp_path / "c.idx"
    context.write_text(LINEAR)
    assert cli.main(["check", str(context), "--against", str(doc)]) == 2
    err = capsys.readouterr().err
    assert "doc.md:4:1" in err and "nowhere.idx" in err and "Traceback" not in err


def test_standard_input_is_read_once(capsys):
    assert cli.main(["check", "-", "--against", "-"]) == 2
    assert "only once" in capsys.readouterr().err


TEX_DOC = r"""\documentclass{article}
\usepackage{amsmath,amssymb}
\begin{document}
The gradient of the linear layer, with a slip in the second line:
\begin{align*}
\frac{\partial L}{\partial W_{ij}} &= \sum_{s}^{S} \sum_{n}^{N} \frac{\partial L}{\partial Y_{sn}} X_{sj} \delta_{ni} \\
&= \sum_{s}^{S} \frac{\partial L}{\partial Y_{si}} X_{si} \quad \text{(contract the delta)}
\end{align*}
and $\frac{\partial L}{\partial \mathbf{W}} = \Big(\frac{\partial L}{\partial \mathbf{Y}}\Big)^\top \mathbf{X}$ inline is not checked.
\[ \frac{\partial L}{\partial \mathbf{W}} = \left(\frac{\partial L}{\partial \mathbf{Y}}\right)^\top \mathbf{X}_{\#} \]
\end{document}
"""


def test_the_annotated_latex_of_a_latex_document_compiles(tmp_path, capsys):
    from test_render import compile_latex, need_pdflatex

    need_pdflatex()
    (tmp_path / "c.idx").write_text(LINEAR)
    (tmp_path / "doc.tex").write_text(TEX_DOC)
    out = tmp_path / "annotated.tex"
    assert cli.main(["check", str(tmp_path / "c.idx"), "--against", str(tmp_path / "doc.tex"),
                     "-f", "latex", "-o", str(out)]) == 1
    annotated = out.read_text()
    assert "does not hold" in annotated and "not understood" in annotated
    assert annotated.count(r"\begin{document}") == 1
    folder = tmp_path / "build"
    folder.mkdir()
    done = compile_latex(annotated, folder)
    assert done.returncode == 0, done.stdout[-2000:]


def test_documents_are_checked_at_small_sizes_whatever_dims_gives():
    context = LINEAR.replace("dims S, M, N", "dims S=300, M=200, N=100")
    doc = (r"$$\frac{\partial L}{\partial W_{ij}} = \sum_{s}^{S} \sum_{n}^{N} "
           r"\frac{\partial L}{\partial Y_{sn}} \frac{\partial Y_{sn}}{\partial W_{ij}}$$")
    (link,) = check_text(context, doc).links  # W has 20000 entries at the given sizes
    assert link.verdict == HOLDS, link.reason
