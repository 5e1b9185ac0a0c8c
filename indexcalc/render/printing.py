"""Printers for terms: the derivation-file language (``to_text``) and LaTeX (``to_latex``).

Both printers follow the notation of the hand derivations: explicit sums, Kronecker deltas,
upstream gradients written as ``dL_dY[s,i]`` (text) or ``\\frac{\\partial L}{\\partial Y_{si}}``
(LaTeX), and quotients for the negative powers that the term model keeps inside products.

Parentheses are chosen by precedence, lowest first::

    ADD  <  MUL (products, quotients, sums)  <  NEG (unary minus)  <  POW  <  ATOM

and nothing more, with one extra rule that comes from the language: ``sum_m`` covers the
whole product/quotient term that follows it.  So a sum is bracketed when it is a factor of a
product and not its last factor, when it is a denominator, and when it is the base of a
power; a sum whose body is an addition brackets the body (``sum_c (a + b)``).

Products are printed as

    [-] [coefficient] numerator-factors [/ denominator-factors]

where the coefficient is the leading number together with the leading run of constant
denominator factors (``-1/S * T[i,j] / X[i,j]``, LaTeX ``-\\frac{1}{S} \\frac{T_{ij}}{X_{ij}}``)
and every other negative power of the product goes to one denominator
(``T[s,c] / (S * Y[s,c])``).

The text form is the language of CONTRACT section 1 and reads back to an equal term
(``terms.same``) when the parser turns ``a / (b * c)`` into ``a * b^-1 * c^-1``; factor order
changes only where a product interleaves numerator and denominator factors.  Two spellings
are not part of the language: ``step``/``sign`` (internal functions) and
``d(Y[s,n])/d(W[i,j])`` for an unevaluated derivative.

Helpers for other printers: ``name_latex`` (``lam`` -> ``\\lambda``) and ``function_latex``.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace as replace_field
from fractions import Fraction
from functools import lru_cache, singledispatch
from typing import Callable, NamedTuple

from ..functions import CONSTANTS, builtin
from ..naming import GREEK_LETTERS
from ..notation import DEFAULT, Notation
from ..terms import (
    Add,
    Arg,
    MatrixFunc,
    IN_RANGE,
    as_extreme,
    IndexValue,
    Delta,
    Deriv,
    Bracket,
    Constant,
    DimSize,
    Func,
    Grad,
    Index,
    Mul,
    Num,
    Pow,
    Sum,
    Tensor,
    Term,
)

__all__ = ["to_text", "to_latex", "inline_latex", "name_latex", "function_latex", "notation",
           "current_notation", "shown_indices", "index_latex", "index_subscript"]

# --- the notation in force ---------------------------------------------------------------

#: The LaTeX printers read the course's notation (``indexcalc.notation``) from here, so
#: that every printer below it (terms, matrix forms, names) writes the same way.
_NOTATION: ContextVar[Notation] = ContextVar("indexcalc_notation", default=DEFAULT)


@contextmanager
def notation(chosen: Notation):
    """Print LaTeX in the ``chosen`` notation inside the ``with`` block."""
    token = _NOTATION.set(chosen)
    try:
        yield chosen
    finally:
        _NOTATION.reset(token)


def current_notation() -> Notation:
    return _NOTATION.get()


#: Index names the LaTeX shows in place of the engine's (``t2`` -> ``q``): set per result
#: by the documents, so that fresh indices read as a teacher would name them.
_SHOWN_INDICES: ContextVar[dict[str, str]] = ContextVar("indexcalc_indices", default={})


@contextmanager
def shown_indices(mapping: dict[str, str]):
    """Print the index named ``k`` as ``mapping[k]`` inside the ``with`` block (LaTeX)."""
    token = _SHOWN_INDICES.set(dict(mapping))
    try:
        yield
    finally:
        _SHOWN_INDICES.reset(token)


def index_latex(index) -> str:
    """An index (or an affine position ``u+k``) as the LaTeX shows it (``t2`` may be shown
    as ``q``, ``shown_indices``)."""
    mapping = _SHOWN_INDICES.get()
    if not mapping:
        return index.name
    if isinstance(index, Index):
        return mapping.get(index.name, index.name)
    terms = tuple((c, Index(mapping.get(i.name, i.name), i.dim)) for c, i in index.terms)
    return replace_field(index, terms=terms).name


# --- precedence ------------------------------------------------------------------------

ADD, MUL, NEG, POW, ATOM = 1, 2, 3, 4, 5


class Rendered(NamedTuple):
    """A printed subterm with the precedence of its outermost operator."""

    text: str
    prec: int


def to_text(term: Term) -> str:
    """``term`` in the derivation-file language (CONTRACT section 1)."""
    return _text(term).text


def to_latex(term: Term) -> str:
    """``term`` as amsmath LaTeX in the notation of the documents (no ``$`` delimiters)."""
    return _latex(term).text


# --- shared structure ------------------------------------------------------------------

@dataclass(frozen=True)
class _Product:
    """A product split for printing: ``sign * coeff / const_den * numer / denom``."""

    negative: bool
    coeff: Fraction  # the absolute value of the numeric coefficient
    const_den: tuple[Term, ...]  # leading constant denominator factors (as positive powers)
    numer: tuple[Term, ...]
    denom: tuple[Term, ...]  # the other denominator factors (as positive powers)


def _split_product(factors: tuple[Term, ...]) -> _Product:
    coeff = Fraction(1)
    rest = list(factors)
    if rest and isinstance(rest[0], Num):
        coeff = rest.pop(0).value
    const_den: list[Term] = []
    while rest and _is_denominator(rest[0]) and _is_constant(rest[0]):
        const_den.append(_invert(rest.pop(0)))
    numer = tuple(f for f in rest if not _is_denominator(f))
    denom = tuple(_invert(f) for f in rest if _is_denominator(f))
    return _Product(coeff < 0, abs(coeff), tuple(const_den), numer, denom)


def _is_denominator(factor: Term) -> bool:
    exponent = factor.exponent if isinstance(factor, Pow) else None
    return isinstance(exponent, Num) and exponent.value < 0


def _invert(factor: Pow) -> Term:
    """``b^-e`` as ``b^e`` (just ``b`` for ``e = 1``)."""
    exponent = -factor.exponent.value
    return factor.base if exponent == 1 else Pow(factor.base, Num(exponent))


def _is_constant(term: Term) -> bool:
    """Index-free and free of tensors: numbers, dims and functions of them."""
    return not term.free and not any(isinstance(n, (Tensor, Grad, Deriv)) for n in term.walk())


def _is_negative(term: Term) -> bool:
    """A term that an addition prints after ``-`` (negative number or coefficient)."""
    if isinstance(term, Num):
        return term.value < 0
    return isinstance(term, Mul) and isinstance(term.factors[0], Num) and term.factors[0].value < 0


def _negate(term: Term) -> Term:
    """``-term`` for a term with ``_is_negative``, keeping its structure."""
    if isinstance(term, Num):
        return Num(-term.value)
    coeff, rest = -term.factors[0].value, term.factors[1:]
    if coeff != 1:
        return Mul((Num(coeff),) + rest)
    return rest[0] if len(rest) == 1 else Mul(rest)


def _wrap(r: Rendered, min_prec: int, paren: Callable[[str], str]) -> str:
    return r.text if r.prec >= min_prec else paren(r.text)


def _factors(factors, render, paren, tail: bool) -> list[Rendered]:
    """Factors of a product; the last one may be an unbracketed sum when ``tail``."""
    out = []
    for k, f in enumerate(factors):
        r = render(f)
        # a last sum needs no brackets, unless it prints with its sign pulled out
        last_sum = (tail and k == len(factors) - 1 and isinstance(f, Sum)
                    and not r.text.startswith("-"))
        out.append(r if last_sum or r.prec >= POW else Rendered(paren(r.text), ATOM))
    return out


def _factor_texts(factors, render, paren, tail: bool) -> list[str]:
    return [r.text for r in _factors(factors, render, paren, tail)]


def _add(terms, render, paren) -> Rendered:
    parts = []
    for k, t in enumerate(terms):
        if k and _is_negative(t):
            parts.append("- " + _wrap(render(_negate(t)), MUL, paren))
            continue
        shown = render(t)
        if k and render is _latex and shown.text.startswith("-"):
            parts.append("- " + shown.text[1:])  # a sign pulled out of a sum or fraction
        else:
            parts.append(("+ " if k else "") + _wrap(shown, MUL, paren))
    return Rendered(" ".join(parts), ADD)


def _signed(negative: bool, r: Rendered) -> Rendered:
    return Rendered("-" + r.text, min(NEG, r.prec)) if negative else r


# --- text ------------------------------------------------------------------------------

def _tparen(text: str) -> str:
    return f"({text})"


def _index_list(indices) -> str:
    return "[" + ",".join(i.name for i in indices) + "]" if indices else ""


#: An integer of more digits than this, ending in zeros, is written with an exponent
#: (``1e45``, as the file language reads it back), not as a 46-digit literal.
PLAIN_DIGITS = 15


def integer_text(n: int) -> str:
    """``n`` as the file language writes it: ``1e45``, ``-25e30``, ``123``."""
    digits = str(abs(n))
    stripped = digits.rstrip("0")
    if len(digits) <= PLAIN_DIGITS or len(digits) - len(stripped) < 3:
        return str(n)
    return f"{'-' if n < 0 else ''}{stripped}e{len(digits) - len(stripped)}"


def integer_latex(n: int) -> str:
    """``n`` in LaTeX: ``10^{45}``, ``2.5 \\times 10^{31}`` where the text writes an exponent."""
    text = integer_text(n)
    if "e" not in text:
        return text
    mantissa, zeros = text.split("e")
    sign = "-" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("-")
    power = int(zeros) + len(mantissa) - 1
    if mantissa == "1":
        return f"{sign}10^{{{power}}}"
    shown = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{sign}{shown} \\times 10^{{{power}}}"


def _fraction_text(value: Fraction) -> Rendered:
    if value.denominator != 1:
        return Rendered(f"{integer_text(value.numerator)}/{integer_text(value.denominator)}", MUL)
    return Rendered(integer_text(value.numerator), NEG if value < 0 else ATOM)


@singledispatch
def _text(term: Term) -> Rendered:
    raise TypeError(f"no text form for {type(term).__name__}")


@_text.register
def _(term: Num) -> Rendered:
    return _fraction_text(term.value)


@_text.register
def _(term: DimSize) -> Rendered:
    return Rendered(term.name, ATOM)


@_text.register
def _(term: Constant) -> Rendered:
    return Rendered(term.name, ATOM)


@_text.register
def _(term: Tensor) -> Rendered:
    return Rendered(term.name + _index_list(term.indices), ATOM)


@_text.register
def _(term: Grad) -> Rendered:
    return Rendered(term.array_name + _index_list(term.indices), ATOM)


@_text.register
def _(term: Delta) -> Rendered:
    return Rendered(f"delta({term.a.name},{term.b.name})", ATOM)


@_text.register
def _(term: Func) -> Rendered:
    return Rendered(f"{term.name}{chr(39) * term.order}({_text(term.arg).text})", ATOM)


@_text.register
def _(term: Bracket) -> Rendered:
    if term.op == IN_RANGE:
        return Rendered(f"[0 <= {_text(term.a).text} < {_text(term.b).text}]", ATOM)
    return Rendered(f"[{_text(term.a).text} {term.op} {_text(term.b).text}]", ATOM)


def _index_value(term: IndexValue) -> Rendered:
    """``u``, ``0`` or ``l-k``, the same in text and LaTeX (a sum binds as an addition)."""
    value = term.value
    single = len(value.terms) <= 1 and not (value.terms and value.offset)
    return Rendered(value.name, ATOM if single else ADD)


_text.register(IndexValue, _index_value)


@_text.register
def _(term: MatrixFunc) -> Rendered:
    return Rendered(f"{term.name}({term.matrix})" + _index_list(term.indices), ATOM)


@_text.register
def _(term: Arg) -> Rendered:
    body = _text(term.body).text
    return Rendered(f"[{term.at.name} == arg{term.kind}_{term.over.name} {body}]", ATOM)


@_text.register
def _(term: Sum) -> Rendered:
    extreme = as_extreme(term)
    if extreme is not None:  # max_d e, as the file writes it
        kind, d, value = extreme
        return Rendered(f"{kind}_{d.name} {_wrap(_text(value), MUL, _tparen)}", MUL)
    names = [i.name for i in term.indices]
    head = f"sum_{names[0]}" if len(names) == 1 else "sum_{" + ",".join(names) + "}"
    return Rendered(f"{head} {_wrap(_text(term.body), MUL, _tparen)}", MUL)


@_text.register
def _(term: Add) -> Rendered:
    return _add(term.terms, _text, _tparen)


@_text.register
def _(term: Pow) -> Rendered:
    if _is_denominator(term):
        return _text(Mul((term,)))
    base = _wrap(_text(term.base), ATOM, _tparen)
    return Rendered(f"{base}^{_wrap(_text(term.exponent), POW, _tparen)}", POW)


@_text.register
def _(term: Deriv) -> Rendered:
    return Rendered(f"d({_text(term.expr).text})/d({_text(term.wrt).text})", POW)


@_text.register
def _(term: Mul) -> Rendered:
    p = _split_product(term.factors)
    den = list(p.const_den)
    head = _text_number_over(p.coeff, den)
    if not p.numer and p.denom:  # nothing but a number over the denominator
        den_text = _text_denominator(_number_den(p.coeff) + den + list(p.denom))
        return _signed(p.negative, Rendered(f"{integer_text(p.coeff.numerator)} / {den_text}", MUL))
    if not p.numer:
        return _signed(p.negative, head or Rendered("1", ATOM))
    parts = ([head] if head else []) + _factors(p.numer, _text, _tparen, tail=not p.denom)
    text = " * ".join(r.text for r in parts)
    if p.denom:
        text += " / " + _text_denominator(list(p.denom))
    prec = MUL if len(parts) > 1 or p.denom else parts[0].prec
    return _signed(p.negative, Rendered(text, prec))


def _number_den(coeff: Fraction) -> list[Term]:
    return [Num(Fraction(coeff.denominator))] if coeff.denominator != 1 else []


def _text_number_over(coeff: Fraction, const_den: list[Term]) -> Rendered | None:
    """The coefficient ``3``, ``1/3`` or ``1/S``, ``2/(3 * S)``; None for a plain 1."""
    if const_den:
        den = _text_denominator(_number_den(coeff) + const_den)
        return Rendered(f"{integer_text(coeff.numerator)}/{den}", MUL)
    if coeff == 1:
        return None
    return _fraction_text(coeff)


def _text_denominator(factors: list[Term]) -> str:
    if len(factors) == 1:
        return _wrap(_text(factors[0]), POW, _tparen)
    return "(" + " * ".join(_factor_texts(factors, _text, _tparen, tail=True)) + ")"


# --- LaTeX -----------------------------------------------------------------------------

_GREEK = {name: "\\" + name for name in GREEK_LETTERS}
_GREEK.update({"lam": "\\lambda", "eps": "\\epsilon", "Lam": "\\Lambda", "ell": "\\ell"})

def _lparen(text: str) -> str:
    return f"\\left({text}\\right)"


#: A name ending in one of these is its stem under the accent: ``yhat`` -> ``\\hat{y}``.
_ACCENTS = {"hat": "\\hat", "bar": "\\bar", "tilde": "\\tilde"}
#: ``W1``, ``H12``, ``x0``: letters, then the digits that number them (a layer, a step).
_NUMBERED = re.compile(r"([A-Za-z]+?)([0-9]+)")


@dataclass(frozen=True)
class _Name:
    """A name split for printing: ``core`` (``W``, ``\\gamma``, ``\\mathrm{lr}``), an
    ``accent`` around it, and the ``number`` its digits give (``1`` in ``W1``)."""

    core: str
    accent: str = ""
    number: str = ""
    greek: bool = False
    letters: str = ""  # the plain letters of a multi-letter core (``lr``), else ""


@lru_cache(maxsize=4096)
def _split_name(name: str, numbered_names: bool = True) -> _Name:
    """``numbered_names``: the notation writes a name's digits apart (not ``digits =
    plain``).  Cached: every entry of every printed term asks."""
    if name in _GREEK:
        return _Name(_GREEK[name], greek=True)
    for suffix, accent in _ACCENTS.items():
        stem = name[:-len(suffix)]
        if name.endswith(suffix) and stem and (stem in _GREEK or stem.isalpha()):
            inner = _split_name(stem, numbered_names)
            if not inner.accent and not inner.number:
                return _Name(inner.core, accent, "", inner.greek, inner.letters)
    numbered = _NUMBERED.fullmatch(name)
    if numbered and numbered_names:
        inner = _split_name(numbered.group(1), numbered_names)
        return _Name(inner.core, inner.accent, numbered.group(2), inner.greek, inner.letters)
    if sum(ch.isalpha() for ch in name) <= 1 and "_" not in name:
        return _Name(name)  # an underscore would make a double subscript: W_1_{s}
    return _Name("\\mathrm{" + name.replace("_", "\\_") + "}",
                 letters=name if name.isalnum() else "")


def _bold_core(parts: _Name) -> str:
    if parts.greek:
        return f"\\boldsymbol{{{parts.core}}}"
    if parts.letters:
        return f"\\mathbf{{{parts.letters}}}"  # \mathbf{\mathrm{Xh}} would print upright thin
    return f"\\mathbf{{{parts.core}}}"


def name_latex(name: str, operator: bool = False, bold: bool = False,
               indices: str = "") -> str:
    """A tensor, scalar, dim or function name: ``lam`` -> ``\\lambda``, ``lr`` ->
    ``\\mathrm{lr}``, ``W1`` -> ``W^{(1)}``, ``yhat`` -> ``\\hat{y}``.

    ``bold`` (a matrix or vector, unless the notation's matrices are plain) prints
    ``\\mathbf{W}``, ``\\boldsymbol{\\gamma}``; ``indices`` (``ij``, ``s,t``) is the
    subscript of an entry, joined with the name's own number where the notation writes
    digits as subscripts (``W_{1,ij}``).  A name with one letter stays as it is.
    """
    if operator:
        if sum(ch.isalpha() for ch in name) <= 1 and "_" not in name or name in _GREEK:
            return _GREEK.get(name, name)
        return "\\operatorname{" + name.replace("_", "\\_") + "}"
    parts = _split_name(name, current_notation().digits != "plain")
    core = _bold_core(parts) if bold and current_notation().matrices == "bold" else parts.core
    if parts.accent:
        core = f"{parts.accent}{{{core}}}"
    number, lower = parts.number, indices
    if number and current_notation().digits == "subscript":
        lower = f"{number},{indices}" if indices else number
        number = ""
    upper = f"^{{({number})}}" if number else ""
    return core + upper + (f"_{{{lower}}}" if lower else "")


def name_has_superscript(name: str) -> bool:
    """Does ``name`` print with a superscript (``W^{(1)}``), so that a power or a transpose
    of it needs brackets?"""
    return current_notation().digits == "superscript" and bool(_split_name(name).number)


def index_subscript(indices) -> str:
    """The subscript of an entry with these indices, as the LaTeX shows them: ``ij`` for
    one-letter indices, else ``s,t2``."""
    names = [index_latex(i) for i in indices]
    return ("" if all(len(n) == 1 for n in names) else ",").join(names)


def _latex_indices(indices: tuple[Index, ...]) -> str:
    return "_{" + index_subscript(indices) + "}" if indices else ""


def _entry(name: str, indices, bold: bool = False) -> Rendered:
    """``W_{ij}``, ``W^{(1)}_{ij}`` (a power of it needs brackets: it has a superscript)."""
    text = name_latex(name, bold=bold, indices=index_subscript(indices))
    return Rendered(text, POW if name_has_superscript(name) else ATOM)


def _latex_fraction(num: str, den: str) -> str:
    return f"\\frac{{{num}}}{{{den}}}"


def _juxtapose(texts: list[str]) -> str:
    """Factors side by side, with a thin space where they would run together."""
    out = texts[0] if texts else ""
    for left, right in zip(texts, texts[1:]):
        thin = (right[:1].isdigit() or "\\mathrm" in (left[:7], right[:7])
                or left.startswith("\\sqrt"))  # \sqrt{v} \, S: S clear of the radical
        out += (" \\, " if thin else " ") + right
    return out


@singledispatch
def _latex(term: Term) -> Rendered:
    raise TypeError(f"no LaTeX form for {type(term).__name__}")


@_latex.register
def _(term: Num) -> Rendered:
    value = term.value
    if value.denominator == 1:
        shown = integer_latex(value.numerator)
        return Rendered(shown, NEG if value < 0 else MUL if "\\times" in shown else ATOM)
    frac = _latex_fraction(integer_latex(abs(value.numerator)), integer_latex(value.denominator))
    return _signed(value < 0, Rendered(frac, POW))


@_latex.register
def _(term: DimSize) -> Rendered:
    return Rendered(name_latex(term.name), ATOM)


@_latex.register
def _(term: Constant) -> Rendered:
    return Rendered(CONSTANTS[term.name].latex, ATOM)


@_latex.register
def _(term: Tensor) -> Rendered:
    return _entry(term.name, term.indices)


@_latex.register
def _(term: Grad) -> Rendered:
    return Rendered(gradient_latex(term.of, term.wrt, index_subscript(term.indices)), POW)


def gradient_latex(of: str, wrt: str, indices: str = "", rank: int = 0) -> str:
    """The gradient of ``of`` with respect to ``wrt`` (an entry when ``indices``, else the
    whole of a tensor of ``rank``): ``\\frac{\\partial L}{\\partial W_{ij}}``, or with the
    ``nabla`` notation ``[\\nabla_{\\mathbf{W}} L]_{ij}``."""
    if current_notation().derivative == "nabla":
        whole = f"\\nabla_{{{name_latex(wrt, bold=bool(rank or indices))}}} {name_latex(of)}"
        return f"\\left[{whole}\\right]_{{{indices}}}" if indices else whole
    return _latex_fraction(f"\\partial {name_latex(of)}",
                           f"\\partial {name_latex(wrt, bold=bool(rank), indices=indices)}")


@_latex.register
def _(term: Delta) -> Rendered:
    return Rendered("\\delta" + _latex_indices((term.a, term.b)), ATOM)


@_latex.register
def _(term: Func) -> Rendered:
    arg = _latex(term.arg)
    text = function_latex(term.name, term.order, arg.text, atomic=arg.prec == ATOM)
    return Rendered(text, POW if text.startswith("e^") else ATOM)


def function_latex(name: str, order: int, arg: str, atomic: bool = False) -> str:
    """``name`` with ``order`` primes applied to the LaTeX ``arg``.

    ``atomic`` says that ``arg`` needs no brackets: then ``exp`` prints as ``e^{arg}`` and
    the argument goes in plain parentheses, else in ``\\left( \\right)``.  A builtin's
    spelling comes from the registry; a declared function is its name with primes.
    """
    known = builtin(name)
    if known is not None and not order:
        return known.latex_code(arg, atomic, _lparen)
    head = name_latex(name, operator=True)
    return head + "'" * order + (f"({arg})" if atomic else _lparen(arg))


#: LaTeX of the comparisons of an Iverson bracket.
_COMPARISON_LATEX = {"<": "<", "<=": "\\le", ">": ">", ">=": "\\ge", "==": "=", "!=": "\\ne"}


@_latex.register
def _(term: Bracket) -> Rendered:
    if term.op == IN_RANGE:
        inner = f"0 \\le {_latex(term.a).text} < {_latex(term.b).text}"
    else:
        inner = f"{_latex(term.a).text} {_COMPARISON_LATEX[term.op]} {_latex(term.b).text}"
    return Rendered(f"\\left[{inner}\\right]", ATOM)


@_latex.register
def _(term: IndexValue) -> Rendered:
    value = term.value
    single = len(value.terms) <= 1 and not (value.terms and value.offset)
    return Rendered(index_latex(value), ATOM if single else ADD)


@_latex.register
def _(term: MatrixFunc) -> Rendered:
    matrix = name_latex(term.matrix, bold=True)
    if name_has_superscript(term.matrix):
        matrix = _lparen(matrix)
    if term.name == "det":
        return Rendered(f"\\det {matrix}", ATOM)
    if term.name == "logdet":
        return Rendered(f"\\log\\lvert {matrix}\\rvert", ATOM)
    return Rendered(f"({matrix}^{{-1}})" + _latex_indices(term.indices), ATOM)


@_latex.register
def _(term: Arg) -> Rendered:
    body = _wrap(_latex(term.body), MUL, _lparen)
    head = f"\\operatorname*{{arg\\,{term.kind}}}_{{{index_latex(term.over)}}}"
    return Rendered(f"\\left[{index_latex(term.at)} = {head} {body}\\right]", ATOM)


@_latex.register
def _(term: Sum) -> Rendered:
    extreme = as_extreme(term)
    if extreme is not None:
        kind, d, value = extreme
        return Rendered(f"\\{kind}_{{{index_latex(d)}}} {_wrap(_latex(value), MUL, _lparen)}", MUL)
    body = term.body
    negative = _is_negative(body)  # -\\sum_{s} a, not \\sum_{s} -a
    if negative:
        body = _negate(body)
    text = f"{sum_head_latex(term.indices)} {_wrap(_latex(body), MUL, _lparen)}"
    return _signed(negative, Rendered(text, MUL))


def inline_latex(term: Term) -> str:
    """``term`` for a line of text: a derivative as ``\\partial L / \\partial W_{ij}``
    (a stacked fraction would crowd the line); anything else as ``to_latex`` prints it."""
    if isinstance(term, Grad) and current_notation().derivative != "nabla":
        wrt = name_latex(term.wrt, indices=index_subscript(term.indices))
        return f"\\partial {name_latex(term.of)} / \\partial {wrt}"
    if isinstance(term, Deriv) and isinstance(term.expr, Tensor):
        return f"\\partial {_latex(term.expr).text} / \\partial {_latex(term.wrt).text}"
    return to_latex(term)


def sum_head_latex(indices) -> str:
    """``\\sum_{s,n}``; with the notation's limits ``\\sum_{s}^{S} \\sum_{n}^{N}`` or
    ``\\sum_{s=1}^{S} \\sum_{n=1}^{N}``, one sum per index as the documents write them."""
    sums = current_notation().sums
    if sums == "plain" or not all(i.dim for i in indices):
        return "\\sum_{" + ",".join(index_latex(i) for i in indices) + "}"
    start = "=1" if sums == "range" else ""
    return " ".join(f"\\sum_{{{index_latex(i)}{start}}}^{{{name_latex(i.dim)}}}" for i in indices)


@_latex.register
def _(term: Add) -> Rendered:
    return _add(term.terms, _latex, _lparen)


@_latex.register
def _(term: Pow) -> Rendered:
    if _is_denominator(term):
        return _latex(Mul((term,)))
    exponent = term.exponent
    if exponent == Num(Fraction(1, 2)):
        return Rendered(f"\\sqrt{{{_latex(term.base).text}}}", ATOM)
    base_term = term.base
    if (isinstance(base_term, Func) and base_term.name == "sqrt" and not base_term.order
            and isinstance(exponent, Num)):  # sqrt(v + eps)^2 = v + eps: no root squared
        exponent = Num(exponent.value / 2)
        if exponent.value == 1:
            return _latex(base_term.arg)
        base_term = base_term.arg
    base = _wrap(_latex(base_term), ATOM, _lparen)
    if isinstance(exponent, Num):
        exp_text = str(exponent.value)  # 2, -1 or 3/2
    else:
        exp_text = _latex(exponent).text
    return Rendered(f"{base}^{{{exp_text}}}", POW)


@_latex.register
def _(term: Deriv) -> Rendered:
    wrt = f"\\partial {_latex(term.wrt).text}"
    if isinstance(term.expr, Grad):  # a second derivative: d^2 L / (dw_i dw_j)
        first = name_latex(term.expr.wrt, indices=index_subscript(term.expr.indices))
        return Rendered(_latex_fraction(f"\\partial^2 {name_latex(term.expr.of)}",
                                        f"\\partial {first} \\, {wrt}"), POW)
    inner = term.expr
    if (isinstance(inner, Deriv) and isinstance(inner.expr, Tensor) and not inner.expr.indices
            and isinstance(inner.wrt, Tensor)):  # the same, as the engine states a Hessian
        return Rendered(_latex_fraction(f"\\partial^2 {_latex(inner.expr).text}",
                                        f"\\partial {_latex(inner.wrt).text} \\, {wrt}"), POW)
    if isinstance(term.expr, Tensor) and not term.expr.indices and isinstance(term.wrt, Tensor):
        # d(L)/d(Z[s,h]): an entry of a gradient, written as the gradients are
        return Rendered(gradient_latex(term.expr.name, term.wrt.name,
                                       index_subscript(term.wrt.indices)), POW)
    if isinstance(term.expr, Tensor):
        return Rendered(_latex_fraction(f"\\partial {_latex(term.expr).text}", wrt), POW)
    inside = _latex(term.expr)
    if not (isinstance(term.expr, (Bracket, Func, MatrixFunc, Arg)) and inside.prec == ATOM):
        inside = Rendered(_lparen(inside.text), ATOM)  # [|r| <= tau] and log(p) need none
    return Rendered(_latex_fraction("\\partial", wrt) + " " + inside.text, POW)


@_latex.register
def _(term: Mul) -> Rendered:
    p = _split_product(term.factors)
    if not p.numer and p.denom:  # nothing but a number over the denominator
        den = _latex_product(_number_den(p.coeff) + list(p.const_den) + list(p.denom))
        return _signed(p.negative, Rendered(_latex_fraction(integer_latex(p.coeff.numerator), den), POW))
    head = _latex_number_over(p.coeff, list(p.const_den))
    if not p.numer:
        return _signed(p.negative, head or Rendered("1", ATOM))
    if p.denom:
        # \\frac{T}{Y} \\frac{dY}{dX}, never \\frac{T \\frac{dY}{dX}}{Y}: a fraction inside a
        # numerator prints in script size; so does a sum of fractions (then 1/den leads)
        after = [f for f in p.numer if isinstance(f, (Grad, Deriv))]
        numer = [f for f in p.numer if not isinstance(f, (Grad, Deriv))]
        den = _latex_product(list(p.denom))
        top = _latex_product(numer) if numer else "1"
        if "\\frac" in top:
            after, numer, top = numer + after, [], "1"
        if top.startswith("-") and len(numer) == 1:  # \frac{-\sum a}{b} as -\frac{\sum a}{b}
            top, p = top[1:], replace_field(p, negative=not p.negative)
        if (top == "1" and head is not None and not p.const_den and p.coeff.numerator == 1
                and p.coeff.denominator != 1):  # \frac{1}{2 \ell^{3}}, not \frac{1}{2} \frac{1}{\ell^{3}}
            den, head = f"{integer_latex(p.coeff.denominator)} {den}", None
        parts = [Rendered(_latex_fraction(top, den), POW)]
        parts += _factors(tuple(after), _latex, _lparen, tail=True)
    else:
        parts = _factors(p.numer, _latex, _lparen, tail=True)
    parts = ([head] if head else []) + parts
    prec = MUL if len(parts) > 1 else parts[0].prec
    return _signed(p.negative, Rendered(_juxtapose([r.text for r in parts]), prec))


def _latex_number_over(coeff: Fraction, const_den: list[Term]) -> Rendered | None:
    """The coefficient ``3``, ``\\frac{1}{3}``, ``\\frac{1}{S}``; None for a plain 1."""
    if const_den:
        den = _latex_product(_number_den(coeff) + const_den)
        return Rendered(_latex_fraction(integer_latex(coeff.numerator), den), POW)
    if coeff == 1:
        return None
    return _latex(Num(coeff))


def _positive_constant(term: Term) -> bool:
    return (isinstance(term, Num) and term.value > 0) or isinstance(term, Constant)


def _root_of(term: Term) -> Term | None:
    """``x`` for ``sqrt(x)`` or ``x^(1/2)`` of a positive constant (``2``, ``pi``)."""
    if isinstance(term, Func) and term.name == "sqrt" and not term.order:
        return term.arg if _positive_constant(term.arg) else None
    if isinstance(term, Pow) and term.exponent == Num(Fraction(1, 2)):
        return term.base if _positive_constant(term.base) else None
    return None


def _merged_roots(factors: list[Term]) -> list[Term]:
    """``\\sqrt{\\pi} \\sqrt{2}`` as ``\\sqrt{2 \\pi}``: roots of positive constants in one
    product share one radical (equal for positive numbers)."""
    roots = [f for f in factors if _root_of(f) is not None]
    if len(roots) < 2:
        return factors
    merged = Pow(Mul(tuple(sorted((_root_of(f) for f in roots),
                                  key=lambda t: not isinstance(t, Num)))), Num(Fraction(1, 2)))
    first = factors.index(roots[0])
    rest = [f for f in factors if _root_of(f) is None]
    return rest[:first] + [merged] + rest[first:]


def _latex_product(factors: list[Term]) -> str:
    """The inside of a numerator or denominator: a lone factor needs no brackets."""
    factors = _merged_roots(factors)
    if len(factors) == 1:
        return _latex(factors[0]).text
    return _juxtapose(_factor_texts(factors, _latex, _lparen, tail=True))
