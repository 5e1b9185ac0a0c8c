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


PI_FILE = """
dims N, D
input X[N,D], mu[D], s[D]
L = sum_{n,d} ((X[n,d] - mu[d])^2 / (2 s[d]^2) + log(s[d]) + log(2 pi) / 2)
grad L wrt s
"""


def test_pi_is_a_constant_of_the_language():
    """``pi`` reads as the number (its value in constant parts of an expression, np.pi in the
    code, \\pi in LaTeX); differentiating gives 0 for it."""
    import indexcalc
    from indexcalc.emit.numpy import Names, scalar_code
    from indexcalc.functions import CONSTANTS
    from indexcalc.syntax import constants
    from indexcalc.terms import Constant

    assert CONSTANTS["pi"].value == np.pi
    assert constants.value(Constant("pi"), {}) == np.pi
    assert scalar_code(Constant("pi"), Names(None)) == "np.pi"
    result = indexcalc.derive(PI_FILE)
    (r,) = result.results
    assert r.check.passed  # the log(2 pi) term's derivative is 0
    assert "pi" not in r.index
    assert "\\log\\left(2 \\pi\\right)" in result.latex()


@pytest.mark.parametrize("text, message", [
    ("dims N\ninput x[N]\npi = 3\n", "pi is a constant and cannot be used as a name"),
    ("dims N\ninput pi[N]\n", "pi is a constant and cannot be used as a name"),
    ("dims N\ninput x[N]\nf = sum_n pi[n] x[n]\ngrad f wrt x\n", "pi is a constant, not a tensor"),
    ("dims N\ninput x[N]\nf = sum_n x[n] * log(pi - pi)\ngrad f wrt x\n", "log"),
])
def test_pi_misused_is_bad_input_at_its_place(text, message):
    with pytest.raises(InputError) as caught:
        parse_text(text, "f.idx")
    assert message in str(caught.value)
