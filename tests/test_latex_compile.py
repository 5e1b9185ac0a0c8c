"""The LaTeX of every shipped derivation compiles with pdflatex (issue 2: "the LaTeX of
every derivation file compiles with pdflatex in CI")."""
from __future__ import annotations

import re

import pytest

from conftest import DERIVATIONS, derivation, derive_text
from indexcalc.pipeline import run
from indexcalc.render import rows
from indexcalc.render.document import render
from indexcalc.syntax.idx import parse_file
from test_render import compile_latex, need_pdflatex


@pytest.mark.parametrize("path", sorted(DERIVATIONS.glob("*.idx")), ids=lambda p: p.stem)
def test_latex_of_every_derivation_compiles_within_the_page(path, tmp_path):
    """It compiles, and no box is wider than the page by more than 1 pt (issue 14): long
    rows break at their additions, long code before its operators."""
    need_pdflatex()
    done = compile_latex(render(derivation(path.stem), "latex"), tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
    log = (tmp_path / "doc.log").read_text(errors="replace")
    widths = [float(m) for m in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide", log)]
    assert max(widths, default=0.0) <= 1.0, widths


def test_a_sum_of_many_long_names_compiles(tmp_path):
    """A right side wider than TeX can measure (40 names of 63 characters) stopped pdflatex
    with "Dimension too large" (exit 3, issue 9); it is broken into rows at its additions."""
    need_pdflatex()
    names = [f"w{k:02d}" + "x" * 60 for k in range(40)]
    text = ("dims N\ninput " + ", ".join(f"{n}[N]" for n in names) + "\nf = sum_i ("
            + " + ".join(f"{n}[i]" for n in names) + f")^2\ngrad f wrt {names[0]}\n")
    latex = render(derive_text(text), "latex")
    assert "&\\quad + " in latex
    done = compile_latex(latex, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]


def test_rows_break_only_wide_sides_outside_brace_groups():
    short = "a + b"
    assert rows.rows(short) == [short]
    term = "\\mathrm{" + "x" * 30 + "}_{i}"
    wide = "\\left(" + " + ".join([term] * 12) + "\\right) \\frac{1}{" + " + ".join([term] * 3) + "}"
    broken = rows.rows(wide)
    assert len(broken) > 1
    assert all(rows.width(row) <= rows.ROW_WIDTH + rows.width(term) + 3 for row in broken[:-1])
    # the bracket spans rows: \\left( ... \\right) cannot, \\Bigl( ... \\Bigr) can
    assert "\\left(" not in "".join(broken) and broken[0].startswith("\\Bigl(")
    assert "".join(broken).replace(" ", "") == wide.replace("\\left(", "\\Bigl(").replace(
        "\\right)", "\\Bigr)").replace(" ", "")
    # the denominator's additions are inside braces: never a break there
    assert broken[-1].endswith("\\frac{1}{" + " + ".join([term] * 3) + "}")
    # a bracket that closes in its own row keeps \\left ... \\right, sized to what it holds
    inner = "\\left(\\frac{a}{b}\\right) " + " + ".join([term] * 6)
    assert any("\\left(\\frac{a}{b}\\right)" in row for row in rows.rows(inner))
    unbreakable = "\\frac{1}{" + " + ".join([term] * 200) + "}"
    assert rows.rows(unbreakable) == [rows.TOO_WIDE]


def test_a_fragment_is_input_into_a_courses_own_document(tmp_path, capsys):
    """``--fragment`` (issue 14): the body only, to \\input in a document of the course's."""
    from indexcalc import cli

    need_pdflatex()
    fragment = tmp_path / "softmax.tex"
    source = str(DERIVATIONS / "softmax.idx")
    assert cli.main(["derive", source, "--format", "latex", "--fragment", "-o",
                     str(fragment)]) == 0
    body = fragment.read_text()
    assert "\\documentclass" not in body and "\\begin{document}" not in body
    assert "\\section{" in body
    course = ("\\documentclass{article}\n\\usepackage{amsmath,amssymb}\n\\begin{document}\n"
              "\\section*{Week 3: the softmax}\n\\input{softmax}\n\\end{document}\n")
    done = compile_latex(course, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert cli.main(["derive", source, "--fragment"]) == 2  # text has no fragment
    assert "--fragment is a LaTeX body" in capsys.readouterr().err


#: Every option away from its default at once (issue 14): the rows these write (cases,
#: grouped rules, limits on every sum, \nabla, subscript digits) must fit the page too.
EVERY_OPTION = ("style = documents, cases = split, steps = grouped, derivative = nabla, "
                "digits = subscript, matrices = plain, layout = denominator")


@pytest.mark.parametrize("path", sorted(DERIVATIONS.glob("*.idx")), ids=lambda p: p.stem)
def test_every_derivation_in_every_notation_compiles_within_the_page(path, tmp_path):
    need_pdflatex()
    problem = parse_file(str(path))
    problem.notation = problem.notation.read(EVERY_OPTION)
    done = compile_latex(render(run(problem), "latex"), tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    log = (tmp_path / "doc.log").read_text(errors="replace")
    widths = [float(m) for m in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide", log)]
    assert max(widths, default=0.0) <= 1.0, widths
