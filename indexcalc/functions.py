"""The one registry of builtin functions: every stage reads a function's facts from here.

An entry says everything indexcalc knows about a function: its name in the file language,
its arity, its derivative as a term with the identity that justifies it (shown as the
step's reason), how NumPy spells it, how LaTeX writes it, how the numeric check evaluates
it (independently of the NumPy spelling the code generator prints, so a spelling bug cannot
agree with itself) and the domain the check draws its argument from.  Adding a function is
adding one entry to ``FUNCTIONS``.

The parser accepts the entries marked ``in_language``; the others (``step``, ``sign``) only
arise as derivatives (of ``relu`` and ``abs``).

Unspecified functions declared with ``function h`` are not entries: their derivatives are
``h'``, ``h''``, ... (``Func(name, arg, order)``), named in code by ``naming``.

``kind`` and ``arity`` leave room for the functions CONTRACT section 3 adds: ``where`` (three
arguments, ``np.where({}, {}, {})``), reductions (``max_d``: ``kind="reduction"``) and matrix
functions of a square tensor's name (``inv``, ``det``, ``logdet``: ``kind="matrix"``), each
with its derivative rule and Matrix Cookbook identity in its entry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .terms import ONE, ZERO, Constant, Func, Term, add, div, mul, neg, num, power, sub

#: Domains the numeric check draws a function's argument from.
REAL, POSITIVE = "real", "positive"


@dataclass(frozen=True)
class Function:
    """One builtin elementwise function."""

    name: str
    #: f'(u) as a term in u (the rule writes d f(u) = f'(u) du).
    derivative: Callable[[Term], Term]
    #: The identity the derivative rests on, shown as the step's reason.
    identity: str
    #: NumPy code with ``{}`` for the argument (``np.exp({})``).
    numpy: str
    #: The value the numeric check computes (not derived from ``numpy``).
    numeric: Callable[[np.ndarray], np.ndarray]
    #: LaTeX with ``{}`` for the argument in brackets (``\\exp{}``), or a whole template that
    #: brackets by itself (``\\sqrt{{{}}}``) when ``latex_brackets`` is False.
    latex: str
    latex_brackets: bool = True
    #: LaTeX template used instead when the argument is a single symbol (``e^{{{}}}``).
    latex_atomic: str | None = None
    #: Where the check draws the tensors under this function from.
    domain: str = REAL
    #: The value at a complex argument x + iy with tiny y, for the check's complex-step
    #: derivative: the analytic continuation of the branch the real part x lies on (for a
    #: piecewise function such as ``relu``: z where x > 0, else 0).  None when ``numeric``
    #: is analytic and NumPy's complex version of it is that continuation (``np.exp``).
    complex_numeric: Callable[[np.ndarray], np.ndarray] | None = None
    arity: int = 1
    kind: str = "elementwise"  # "elementwise" | "reduction" | "matrix"
    #: False for functions that only arise as derivatives (``step`` of ``relu``).
    in_language: bool = True
    #: The framework's own function where its spelling is not a translation of ``numpy``
    #: (``{"torch": "torch.special.erf", "jax": "jax.lax.erf"}``): the module emitter
    #: replaces the NumPy code of the function, whatever it is, by a call of this.  A NumPy
    #: module calls ``module_helper``'s function instead, defined once in the module.
    frameworks: tuple[tuple[str, str], ...] = ()
    module_helper: str = ""

    def value(self, x: np.ndarray) -> np.ndarray:
        """The check's value of the function at ``x`` (real, or complex for a complex step)."""
        if self.complex_numeric is not None and np.iscomplexobj(x):
            return self.complex_numeric(x)
        return self.numeric(x)

    def numpy_code(self, *args: str) -> str:
        if len(args) != self.arity:
            raise TypeError(f"{self.name} takes {self.arity} argument(s), got {len(args)}")
        return self.numpy.format(*args)

    def latex_code(self, arg: str, atomic: bool, brackets: Callable[[str], str]) -> str:
        """LaTeX of the function applied to ``arg`` (``atomic``: ``arg`` is one symbol)."""
        if atomic and self.latex_atomic is not None:
            return self.latex_atomic.format(arg)
        if not self.latex_brackets:
            return self.latex.format(arg)
        return self.latex.format(f"({arg})" if atomic else brackets(arg))


#: erf by its series with positive terms (Abramowitz & Stegun 7.1.6):
#: erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1 3 5 ... (2n+1)).  No term cancels
#: another, so it is accurate to rounding wherever it converges; 100 terms reach 1.5e-15 at
#: |x| = 6, and past 6 erf is +-1 in float64 (erfc(6) = 2e-17), so x is clipped there.
#: NumPy has no erf (CONTRACT section 2 allows the code only ``np``); the polynomial is
#: evaluated by Horner's rule (``np.polyval``), whole arrays, 100 multiply-adds an entry.
ERF_TERMS = 100
ERF_NUMPY = ("(lambda x: np.clip(x, -6, 6) * np.exp(-np.clip(x, -6, 6) ** 2) * np.polyval("
             f"(2 / np.sqrt(np.pi) / np.cumprod(np.arange(1.0, {2 * ERF_TERMS}, 2)))[::-1], "
             "2 * np.clip(x, -6, 6) ** 2))({})")


ERF_HELPER = f'''def _erf(x):
    """erf(x), which NumPy lacks: 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!
    (Abramowitz & Stegun 7.1.6), {ERF_TERMS} terms, accurate to 2e-15; +-1 past |x| = 6."""
    x = np.clip(x, -6, 6)
    coefficients = 2 / np.sqrt(np.pi) / np.cumprod(np.arange(1.0, {2 * ERF_TERMS}, 2))
    return x * np.exp(-x ** 2) * np.polyval(coefficients[::-1], 2 * x ** 2)'''


def _erf(x: np.ndarray) -> np.ndarray:
    """The check's erf: the standard library's, entry by entry."""
    return np.vectorize(math.erf, otypes=[float])(x)


def _erf_complex(z: np.ndarray) -> np.ndarray:
    """erf at x + iy for the complex step, by other means than the generated code, so that
    neither can agree with a slip in the other: the Maclaurin series (A&S 7.1.5) where
    |x| < 2, and beyond, erf = +-(1 - erfc) with erfc by Laplace's continued fraction
    (A&S 7.1.14), evaluated from depth 60 upward, which carries erfc's (and so erf''s)
    digits into the tails.  Both are analytic, so Im erf(x + ih) / h is erf'(x)."""
    z = np.asarray(z, dtype=complex)
    near = np.abs(z.real) < 2
    w = np.where(near, z, 0)
    term, total = w.copy(), w.copy()  # (-1)^n w^(2n+1) / n!, and the sum of term / (2n+1)
    for n in range(1, 80):  # |w| < 2: the terms fall below 1e-17 by n ~ 40
        term = -term * w * w / n
        total = total + term / (2 * n + 1)
    side = np.where(z.real < 0, -1.0, 1.0)
    v = np.where(near, 2.0, side * z)  # Re v >= 2
    fraction = v.copy()  # v + (1/2) / (v + 1 / (v + (3/2) / (v + ...)))
    for k in range(60, 0, -1):
        fraction = v + (k / 2) / fraction
    erfc = np.exp(-v * v) / (math.sqrt(math.pi) * fraction)
    return np.where(near, 2 / math.sqrt(math.pi) * total, side * (1 - erfc))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _sigmoid_prime(u: Term) -> Term:
    s = Func("sigmoid", u)
    return mul(s, sub(ONE, s))


_ENTRIES = (
    Function("exp", lambda u: Func("exp", u), "d exp(u) = exp(u) du",
             numpy="np.exp({})", numeric=np.exp, latex="\\exp{}", latex_atomic="e^{{{}}}"),
    Function("log", lambda u: power(u, num(-1)), "d log(u) = du / u",
             numpy="np.log({})", numeric=np.log, latex="\\log{}", domain=POSITIVE),
    Function("sqrt", lambda u: div(ONE, mul(num(2), Func("sqrt", u))),
             "d sqrt(u) = du / (2 sqrt(u))",
             numpy="np.sqrt({})", numeric=np.sqrt, latex="\\sqrt{{{}}}", latex_brackets=False,
             domain=POSITIVE),
    Function("tanh", lambda u: sub(ONE, power(Func("tanh", u), num(2))),
             "d tanh(u) = (1 - tanh(u)^2) du",
             numpy="np.tanh({})", numeric=np.tanh, latex="\\tanh{}"),
    # sigmoid' = sigmoid (1 - sigmoid) follows from the quotient rule on 1 / (1 + exp(-u)).
    Function("sigmoid", _sigmoid_prime, "d sigmoid(u) = sigmoid(u) (1 - sigmoid(u)) du",
             numpy="1 / (1 + np.exp(-({})))", numeric=_sigmoid, latex="\\sigma{}"),
    Function("relu", lambda u: Func("step", u), "d relu(u) = step(u) du",
             numpy="np.maximum({}, 0)", numeric=lambda x: np.maximum(x, 0.0),
             complex_numeric=lambda z: np.where(z.real > 0, z, 0.0),
             latex="\\operatorname{{relu}}{}"),
    Function("abs", lambda u: Func("sign", u), "d |u| = sign(u) du",
             numpy="np.abs({})", numeric=np.abs,
             complex_numeric=lambda z: np.where(z.real < 0, -z, z), latex="\\left|{}\\right|",
             latex_brackets=False),
    Function("sin", lambda u: Func("cos", u), "d sin(u) = cos(u) du",
             numpy="np.sin({})", numeric=np.sin, latex="\\sin{}"),
    Function("cos", lambda u: neg(Func("sin", u)), "d cos(u) = -sin(u) du",
             numpy="np.cos({})", numeric=np.cos, latex="\\cos{}"),
    Function("cosh", lambda u: Func("sinh", u), "d cosh(u) = sinh(u) du",
             numpy="np.cosh({})", numeric=np.cosh, latex="\\cosh{}"),
    Function("sinh", lambda u: Func("cosh", u), "d sinh(u) = cosh(u) du",
             numpy="np.sinh({})", numeric=np.sinh, latex="\\sinh{}"),
    # log1p(u) = log(1 + u) and expm1(u) = exp(u) - 1, accurate near u = 0.
    Function("log1p", lambda u: power(add(ONE, u), num(-1)), "d log(1 + u) = du / (1 + u)",
             numpy="np.log1p({})", numeric=np.log1p, latex="\\log\\left(1 + {}\\right)",
             latex_brackets=False, domain=POSITIVE),
    Function("expm1", lambda u: Func("exp", u), "d (exp(u) - 1) = exp(u) du",
             numpy="np.expm1({})", numeric=np.expm1, latex="\\left(e^{{{}}} - 1\\right)",
             latex_brackets=False),
    # softplus(u) = log(1 + exp(u)); its derivative exp(u) / (1 + exp(u)) is sigmoid(u).
    Function("softplus", lambda u: Func("sigmoid", u),
             "d softplus(u) = sigmoid(u) du, softplus(u) = log(1 + exp(u))",
             numpy="np.logaddexp(0, {})", numeric=lambda x: np.logaddexp(0.0, x),
             complex_numeric=lambda z: np.where(z.real > 0, z + np.log1p(np.exp(-z)),
                                                np.log1p(np.exp(z))),
             latex="\\operatorname{{softplus}}{}"),
    # erf(u) = 2/sqrt(pi) int_0^u exp(-t^2) dt; the exact GELU is u Phi(u), with the normal
    # distribution function Phi(u) = (1 + erf(u / sqrt 2)) / 2.
    Function("erf", lambda u: div(mul(num(2), Func("exp", neg(power(u, num(2))))),
                                  Func("sqrt", Constant("pi"))),
             "d erf(u) = 2 / sqrt(pi) exp(-u^2) du",
             numpy=ERF_NUMPY, numeric=_erf, complex_numeric=_erf_complex,
             latex="\\operatorname{{erf}}{}",
             frameworks=(("numpy", "_erf"), ("torch", "torch.special.erf"),
                         ("jax", "jax.lax.erf")),
             module_helper=ERF_HELPER),
    Function("step", lambda u: ZERO, "d step(u) = 0 (almost everywhere)",
             numpy="np.heaviside({}, 0)", numeric=lambda x: np.heaviside(x, 0.0),
             complex_numeric=lambda z: np.heaviside(z.real, 0.0),
             latex="\\operatorname{{step}}{}", in_language=False),
    Function("sign", lambda u: ZERO, "d sign(u) = 0 (almost everywhere)",
             numpy="np.sign({})", numeric=np.sign,
             complex_numeric=lambda z: np.sign(z.real), latex="\\operatorname{{sign}}{}",
             in_language=False),
)

@dataclass(frozen=True)
class NamedConstant:
    """A constant of the language: its value, and how NumPy and LaTeX write it."""

    name: str
    value: float
    numpy: str
    latex: str


#: The constants a file may write, by name.
CONSTANTS: dict[str, NamedConstant] = {
    "pi": NamedConstant("pi", math.pi, "np.pi", "\\pi"),
}

#: Every builtin function by name, in the order the rule table lists their derivatives.
FUNCTIONS: dict[str, Function] = {f.name: f for f in _ENTRIES}

#: The names a derivation file may call.
LANGUAGE_FUNCTIONS: tuple[str, ...] = tuple(f.name for f in _ENTRIES if f.in_language)


def builtin(name: str) -> Function | None:
    """The registry entry of ``name``; None for a declared (unspecified) function."""
    return FUNCTIONS.get(name)
