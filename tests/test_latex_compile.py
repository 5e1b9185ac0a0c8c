"""The LaTeX of every shipped derivation compiles with pdflatex (issue 2: "the LaTeX of
every derivation file compiles with pdflatex in CI")."""
from __future__ import annotations

import pytest

from conftest import DERIVATIONS, derivation
from indexcalc.render.document import render
from test_render import compile_latex, need_pdflatex


@pytest.mark.parametrize("path", sorted(DERIVATIONS.glob("*.idx")), ids=lambda p: p.stem)
def test_latex_of_every_derivation_compiles(path, tmp_path):
    need_pdflatex()
    done = compile_latex(render(derivation(path.stem), "latex"), tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
