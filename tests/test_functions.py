"""The function registry is the one table of builtin functions (indexcalc/functions.py).

Every stage reads its entries: the parser accepts exactly the language's entries, the rule
table has one derivative rule per entry whose reason is the entry's identity, the printers
spell a function as its entry says, and the check computes it with the entry's ``numeric``.
Each derivative is checked against central differences of that ``numeric`` (any calculus
table gives the identities).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import derive_text
from indexcalc.calculus.rules import RULES
from indexcalc.emit.numpy import Names, apply_function
from indexcalc.functions import FUNCTIONS, LANGUAGE_FUNCTIONS, POSITIVE
from indexcalc.problem import InputError
from indexcalc.render.printing import function_latex
from indexcalc.syntax.idx import parse_text

LANGUAGE = [name for name in FUNCTIONS if FUNCTIONS[name].in_language]


def test_the_language_is_the_registry():
    assert tuple(LANGUAGE) == LANGUAGE_FUNCTIONS
    for name in LANGUAGE:
        parse_text(f"dims N\ninput x[N]\nf = sum_n {name}(x[n])\ngrad f wrt x\n", "f.idx")
    for name in set(FUNCTIONS) - set(LANGUAGE):  # step, sign arise only as derivatives
        with pytest.raises(InputError):
            parse_text(f"dims N\ninput x[N]\nf = sum_n {name}(x[n])\ngrad f wrt x\n", "f.idx")


def test_every_entry_has_one_derivative_rule_with_its_identity():
    by_name = {rule.name: rule for rule in RULES}
    for name, entry in FUNCTIONS.items():
        rule = by_name[f"derivative of {name}"]
        assert rule.identity == entry.identity


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_printers_spell_a_function_as_its_entry_says(name):
    entry = FUNCTIONS[name]
    assert apply_function(name, 0, "x", Names(None)) in (entry.numpy_code("x"),
                                                          f"({entry.numpy_code('x')})")
    assert function_latex(name, 0, "x", atomic=True) == entry.latex_code("x", True, str)


@pytest.mark.parametrize("name", LANGUAGE)
def test_each_derivative_agrees_with_finite_differences_of_the_numeric(name):
    """f'(u) from the entry, evaluated by the check, against (f(u+h) - f(u-h)) / 2h."""
    entry = FUNCTIONS[name]
    low, high = (0.3, 2.0) if entry.domain == POSITIVE else (-2.0, 2.0)
    u = np.linspace(low, high, 9) + 0.013  # away from 0, where relu and abs have kinks
    step = 1e-6
    expected = (entry.numeric(u + step) - entry.numeric(u - step)) / (2 * step)
    d = derive_text(f"""
        dims N=9
        input x[N]
        f = sum_n {name}(x[n])
        grad f wrt x
    """)
    res = d.results[0]
    assert res.check.passed, res.check
    fn = eval(res.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    np.testing.assert_allclose(fn(u), expected, rtol=1e-6, atol=1e-8)
