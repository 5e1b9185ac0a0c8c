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


# --- erf: NumPy has none, so its code is the registry's series --------------------------------

def test_the_generated_erf_is_accurate_to_rounding_everywhere():
    """The inline NumPy erf (A&S 7.1.6, positive terms) against the standard library's
    ``math.erf``, across the real line: both tails, zero, and past the clip at |x| = 6."""
    import math
    erf = eval(FUNCTIONS["erf"].numpy_code("x").join(["lambda x: ", ""]), {"np": np})  # noqa: S307
    x = np.concatenate([np.linspace(-8, 8, 4001), [0.0, 1e-300, -1e-8, 5.99, 6.0, 40.0]])
    expected = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), expected, rtol=0, atol=3e-15)
    small = np.abs(x) < 1  # near 0 the value is small: relative accuracy there too
    np.testing.assert_allclose(erf(x[small]), expected[small], rtol=1e-14, atol=1e-300)


def test_the_checks_complex_erf_is_the_analytic_continuation():
    """The complex step through erf gives erf' = 2/sqrt(pi) exp(-x^2) (A&S 7.1.19) without
    using that identity: Im erf(x + ih) / h from the Maclaurin series (A&S 7.1.5)."""
    import mpmath
    x = np.linspace(-5.5, 5.5, 23) + 0.01
    got = FUNCTIONS["erf"].value(x + 1e-20j).imag / 1e-20
    np.testing.assert_allclose(got, 2 / np.sqrt(np.pi) * np.exp(-x ** 2), rtol=1e-12, atol=1e-300)
    z = np.array([0.3 + 0.2j, -1.5 + 0.7j, 2.5 - 1.0j])
    expected = np.array([complex(mpmath.erf(complex(v))) for v in z])
    np.testing.assert_allclose(FUNCTIONS["erf"].value(z), expected, rtol=1e-13)


def test_exact_gelu_matches_its_textbook_derivative():
    """GELU(a) = a Phi(a), GELU'(a) = Phi(a) + a phi(a) (Hendrycks & Gimpel 2016, eq. 1)."""
    import math
    d = derive_text("""
        dims N=7
        input a[N]
        f = sum_n a[n] / 2 * (1 + erf(a[n] / sqrt(2)))
        grad f wrt a
    """)
    (res,) = d.results
    assert res.check.passed, res.check
    a = np.linspace(-4, 4, 7) + 0.1
    phi = np.exp(-a ** 2 / 2) / np.sqrt(2 * np.pi)
    Phi = np.array([(1 + math.erf(v / math.sqrt(2))) / 2 for v in a])
    fn = eval(res.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    np.testing.assert_allclose(fn(a), Phi + a * phi, rtol=1e-13)
