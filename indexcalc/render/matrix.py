"""The LaTeX printer of the matrix IR, in the documents' notation.

Bold matrices and vectors, ``^{T}``, ``\\mathbf{1}``, ``\\odot``/``\\oslash``,
``\\frac{\\partial L}{\\partial \\mathbf{Y}}``.  Vectors are columns; where a node's shape
makes a vector a row (``\\mathbf{1}^{T} \\mathbf{G}``), or an operation needs the other
orientation, the printer writes the transpose, so every product it prints conforms.
"""
from __future__ import annotations

from fractions import Fraction

from ..matrix import ir
from ..terms import Add, Constant, DimSize, Num, Tensor, split_coeff
from .printing import function_latex, gradient_latex, name_has_superscript, name_latex, to_latex

ATOM, TRANSPOSED, FRACTION, POWER, PRODUCT, ELEMENTWISE, SUM, LOW = 100, 90, 85, 80, 50, 40, 30, 20

COLUMN, ROW = "column", "row"


def matrix_latex(m: ir.Node) -> str:
    """``m`` as amsmath LaTeX (no ``$`` delimiters)."""
    return _latex(m)[0]


def bold(name: str) -> str:
    """A matrix or vector by name: ``\\mathbf{W}``, ``\\boldsymbol{\\gamma}``, ``\\mathbf{W}^{(1)}``
    (plain with the ``matrices = plain`` notation)."""
    return name_latex(name, bold=True)


def _named(name: str, text: str) -> tuple[str, int]:
    """A name's LaTeX, ranked so that a further superscript brackets ``W^{(1)}``."""
    return text, TRANSPOSED if name_has_superscript(name) else ATOM


def _latex(m: ir.Node) -> tuple[str, int]:
    return globals()["_" + type(m).__name__.lower()](m)


def _wrap(m: ir.Node, outer: int) -> str:
    text, prec = _latex(m)
    return f"\\left({text}\\right)" if prec < outer else text


def _orientation(shape: ir.Shape) -> str | None:
    if shape.is_column:
        return COLUMN
    if shape.is_row:
        return ROW
    return None


def _oriented(m: ir.Node, want: str | None, outer: int) -> str:
    """``m`` printed as a ``want`` vector (transposed where its own orientation is the
    other); matrices and scalars as they are."""
    own = _orientation(m.shape)
    if want is None or own is None or own == want:
        return _wrap(m, outer)
    return f"{_wrap(m, ATOM)}^{{T}}"


# --- leaves --------------------------------------------------------------------------------

def _ref(m: ir.Ref):
    if m.grad:
        of, wrt = m.grad
        return gradient_latex(of, wrt, rank=len(m.dims)), FRACTION
    return _named(m.name, bold(m.name) if m.dims else name_latex(m.name))


def _scalar(m: ir.Scalar):
    t = m.term
    if isinstance(t, Num) and t.value < 0:
        return to_latex(t), LOW
    if isinstance(t, Num) and t.value.denominator != 1:  # \frac{1}{2}: one symbol
        return to_latex(t), FRACTION
    return to_latex(t), ATOM if isinstance(t, (Num, DimSize, Constant, Tensor)) else LOW


def _ones(m: ir.Ones):
    return "\\mathbf{1}", ATOM


def _inverse(m: ir.Inverse):
    return f"{_wrap_named(m.name)}^{{-1}}", TRANSPOSED  # bracketed before a further superscript


def _identity(m: ir.Identity):
    return "\\mathbf{I}", ATOM


def _wrap_named(name: str) -> str:
    text = bold(name)
    return f"\\left({text}\\right)" if name_has_superscript(name) else text


# --- structure -------------------------------------------------------------------------------

def _transpose(m: ir.Transpose):
    if isinstance(m.x, ir.Inverse):  # (S^-1)^T = S^-T
        return f"{_wrap_named(m.x.name)}^{{-T}}", TRANSPOSED
    return f"{_wrap(m.x, ATOM)}^{{T}}", TRANSPOSED


def _matmul(m: ir.MatMul):
    # a product of matrices is associative: no brackets between products
    return f"{_oriented(m.a, ROW, PRODUCT)} {_oriented(m.b, COLUMN, PRODUCT)}", PRODUCT


def _outer(m: ir.Outer):
    return f"{_oriented(m.a, COLUMN, PRODUCT)} {_oriented(m.b, ROW, ATOM)}", PRODUCT


def _sumaxis(m: ir.SumAxis):
    if m.x.shape.ndim == 1:
        return f"\\mathbf{{1}}^{{T}} {_oriented(m.x, COLUMN, PRODUCT)}", PRODUCT
    if m.axis == 0:
        return f"\\mathbf{{1}}^{{T}} {_wrap(m.x, PRODUCT)}", PRODUCT
    return f"{_wrap(m.x, PRODUCT)} \\mathbf{{1}}", PRODUCT


def _broadcast(m: ir.Broadcast):
    if m.x.shape.ndim == 0:
        ones = "\\mathbf{1} \\mathbf{1}^{T}" if m.to.ndim == 2 else "\\mathbf{1}"
        return f"{_wrap(m.x, PRODUCT)} {ones}", PRODUCT
    if m.along == 1:
        return f"{_oriented(m.x, COLUMN, PRODUCT)} \\mathbf{{1}}^{{T}}", PRODUCT
    return f"\\mathbf{{1}} {_oriented(m.x, ROW, PRODUCT)}", PRODUCT


def _diag(m: ir.Diag):
    return f"\\operatorname{{diag}}\\left({_latex(m.v)[0]}\\right)", ATOM


def _trace(m: ir.Trace):
    return f"\\operatorname{{tr}}\\left({_latex(m.x)[0]}\\right)", ATOM


# --- elementwise -----------------------------------------------------------------------------

def _left_level(child: ir.Node) -> int:
    return ELEMENTWISE if isinstance(child, (ir.Hadamard, ir.HadamardDiv)) else PRODUCT + 1


def _elementwise(m: ir.Node, a: ir.Node, b: ir.Node, op: str):
    want = _orientation(m.shape)
    return (f"{_oriented(a, want, _left_level(a))} {op} {_oriented(b, want, PRODUCT + 1)}",
            ELEMENTWISE)


def _hadamard(m: ir.Hadamard):
    return _elementwise(m, m.a, m.b, "\\odot")


def _hadamarddiv(m: ir.HadamardDiv):
    return _elementwise(m, m.a, m.b, "\\oslash")


def _scale(m: ir.Scale):
    if isinstance(m.c, ir.Scalar):
        coeff, factors = split_coeff(m.c.term)
        if coeff == -1 and not factors:
            return f"-{_wrap(m.x, ELEMENTWISE + 1)}", ELEMENTWISE
        coefficient = _latex(m.c)[0]
        if isinstance(m.c.term, Add):  # (1 - 1/(lam + 2)) X, not 1 - 1/(lam + 2) X
            coefficient = f"\\left({coefficient}\\right)"
        return f"{coefficient} {_wrap(m.x, ELEMENTWISE + 1)}", ELEMENTWISE
    return f"{_wrap(m.c, ELEMENTWISE)} {_wrap(m.x, ELEMENTWISE + 1)}", ELEMENTWISE


def _apply(m: ir.Apply):
    return function_latex(m.fn, m.order, _latex(m.x)[0]), ATOM


def _power(m: ir.Power):
    n = _fraction_text(m.n)
    if m.x.shape.ndim == 0:  # the base has no superscript of its own (^{T}, ^{(1)})
        return f"{_wrap(m.x, ATOM)}^{{{n}}}", POWER
    return f"{_wrap(m.x, ATOM)}^{{\\circ {n}}}", POWER


def _sum(m: ir.Sum):
    want = _orientation(m.shape)
    out = ""
    for k, (sign, t) in enumerate(m.terms):
        text = _oriented(t, want, SUM + 1)
        if m.shape.ndim == 1 and _is_number(t):  # 1 - p: the vector of ones, minus p
            value = t.term.value
            text = "\\mathbf{1}" if value == 1 else f"{_fraction_text(value)} \\, \\mathbf{{1}}"
        if k == 0:
            out = text if sign > 0 else f"-{text}"
        else:
            out += f" + {text}" if sign > 0 else f" - {text}"
    return out, SUM


def _is_number(m: ir.Node) -> bool:
    return (isinstance(m, ir.Scalar) and isinstance(m.term, Num) and m.term.value > 0
            and m.term.value.denominator == 1)


def _fraction_text(n: Fraction) -> str:
    return str(n.numerator) if n.denominator == 1 else f"{n.numerator}/{n.denominator}"
