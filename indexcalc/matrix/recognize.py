"""Matrix form: read an index expression off as a matrix expression, where one exists.

``sum_s dL_dY[s,i] X[s,j]`` becomes ``(dL/dY)^T X``; a sum over one axis becomes ``1^T G``
or ``G 1``; equal index sets combine elementwise (``⊙``, ``⊘``); a vector meeting a matrix
is broadcast as ``r 1^T``; disjoint vectors form an outer product.  Anything else (more
than two indices, a diagonal ``X_ii``, three factors sharing a summed index) has no matrix
form: ``to_matrix`` returns None and the caller falls back to einsum.

Matrix expressions print to the documents' LaTeX (bold matrices, ``^T``, ``\\mathbf{1}``)
and to NumPy-syntax text.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..render import printing
from ..terms import (
    Add, Delta, DimSize, Func, Grad, Index, Mul, Num, Pow, Sum, Tensor, Term, base_exp,
    make_sum, mul, add as add_terms, split_coeff,
)


class NoMatrixForm(Exception):
    pass


# --- matrix expression nodes -----------------------------------------------------------

class MatrixExpr:
    rank: int  # 0 scalar, 1 vector, 2 matrix
    precedence = 100

    def text(self) -> str:
        return self._text()

    def latex(self) -> str:
        return self._latex()

    def wrap_text(self, outer: int) -> str:
        s = self._text()
        return f"({s})" if self.precedence < outer else s

    def wrap_latex(self, outer: int) -> str:
        s = self._latex()
        return f"\\left({s}\\right)" if self.precedence < outer else s


@dataclass(frozen=True)
class Ref(MatrixExpr):
    """A named tensor: an input, a defined tensor or an upstream gradient."""

    name: str
    rank: int
    grad: tuple[str, str] | None = None  # (of, wrt) for dL_dY

    @property
    def precedence(self):
        return 85 if self.grad else 100  # a fraction is bracketed before ^T

    def wrap_text(self, outer: int) -> str:
        return self.name

    def _text(self):
        return self.name

    def _latex(self):
        if self.grad:
            of, wrt = self.grad
            return f"\\frac{{\\partial {printing.name_latex(of)}}}{{\\partial {_bold(wrt)}}}"
        return _bold(self.name) if self.rank else printing.name_latex(self.name)


@dataclass(frozen=True)
class Scalar(MatrixExpr):
    """An index-free term: a number, a dim such as ``S``, a scalar input."""

    term: Term
    rank: int = 0

    @property
    def precedence(self):
        t = self.term
        if isinstance(t, Num) and (t.value < 0 or t.value.denominator != 1):
            return 20
        return 100 if isinstance(t, (Num, DimSize, Tensor)) else 20

    def _text(self):
        return numpy_text(self.term)

    def _latex(self):
        return printing.to_latex(self.term)


@dataclass(frozen=True)
class Ones(MatrixExpr):
    dim: str
    rank: int = 1

    def _text(self):
        return f"np.ones({self.dim})"

    def _latex(self):
        return "\\mathbf{1}"


@dataclass(frozen=True)
class Identity(MatrixExpr):
    dim: str
    rank: int = 2

    def _text(self):
        return f"np.eye({self.dim})"

    def _latex(self):
        return "\\mathbf{I}"


@dataclass(frozen=True)
class Diag(MatrixExpr):
    """The diagonal matrix with the vector ``v`` on its diagonal."""

    v: MatrixExpr
    rank: int = 2

    def _text(self):
        return f"np.diag({self.v.text()})"

    def _latex(self):
        return f"\\operatorname{{diag}}\\left({self.v.latex()}\\right)"


@dataclass(frozen=True)
class Transpose(MatrixExpr):
    x: MatrixExpr
    rank: int = 2
    precedence = 90

    def _text(self):
        return f"{self.x.wrap_text(100)}.T"

    def _latex(self):
        return f"{self.x.wrap_latex(100)}^{{T}}"


@dataclass(frozen=True)
class MatMul(MatrixExpr):
    a: MatrixExpr
    b: MatrixExpr
    rank: int = 2
    precedence = 50

    def _text(self):
        return f"{self.a.wrap_text(50)} @ {self.b.wrap_text(51)}"

    def _latex(self):
        left = self.a.wrap_latex(50)
        if self.a.rank == 1:
            left = f"{left}^{{T}}"  # a vector on the left is a row vector
        return f"{left} {self.b.wrap_latex(50)}"  # a product of matrices is associative


@dataclass(frozen=True)
class Outer(MatrixExpr):
    """``a b^T`` for vectors a and b (``r 1^T`` broadcasts r along the columns)."""

    a: MatrixExpr
    b: MatrixExpr
    rank: int = 2
    precedence = 50

    def _text(self):
        return f"np.outer({self.a.text()}, {self.b.text()})"

    def _latex(self):
        return f"{self.a.wrap_latex(50)} {self.b.wrap_latex(100)}^{{T}}"


@dataclass(frozen=True)
class Hadamard(MatrixExpr):
    a: MatrixExpr
    b: MatrixExpr
    rank: int = 2
    precedence = 40

    def _text(self):
        return f"{self.a.wrap_text(_left_level(self.a))} * {self.b.wrap_text(51)}"

    def _latex(self):
        return f"{self.a.wrap_latex(_left_level(self.a))} \\odot {self.b.wrap_latex(51)}"


@dataclass(frozen=True)
class HadamardDiv(MatrixExpr):
    a: MatrixExpr
    b: MatrixExpr
    rank: int = 2
    precedence = 40

    def _text(self):
        return f"{self.a.wrap_text(_left_level(self.a))} / {self.b.wrap_text(51)}"

    def _latex(self):
        return f"{self.a.wrap_latex(_left_level(self.a))} \\oslash {self.b.wrap_latex(51)}"


@dataclass(frozen=True)
class Scale(MatrixExpr):
    """A scalar times a matrix; ``1/S`` is printed as a division, as the documents do."""

    c: MatrixExpr
    x: MatrixExpr
    rank: int = 2
    precedence = 40

    def _split(self):
        """(sign, numerator, denominator) of the scalar, for printing ``(Y - T) / S``."""
        if isinstance(self.c, Scalar):
            coeff, fs = split_coeff(self.c.term)
            num = [f for f in fs if base_exp(f)[1] > 0]
            den = [Pow(base_exp(f)[0], Num(-base_exp(f)[1])) if base_exp(f)[1] != -1
                   else base_exp(f)[0] for f in fs if base_exp(f)[1] < 0]
            return coeff, num, den
        return None

    def _text(self):
        parts = self._split()
        if parts:
            coeff, num, den = parts
            if den and coeff.numerator in (1, -1) and not num:
                sign = "-" if coeff < 0 else ""
                d = mul(Num(Fraction(coeff.denominator)), *den)
                d_text = numpy_text(d)
                if isinstance(d, Mul):
                    d_text = f"({d_text})"
                return f"{sign}{self.x.wrap_text(51)} / {d_text}"
            if coeff == -1 and not num and not den:
                return f"-{self.x.wrap_text(51)}"
        return f"{self.c.wrap_text(40)} * {self.x.wrap_text(51)}"

    def _latex(self):
        parts = self._split()
        if parts:
            coeff, num, den = parts
            if coeff == -1 and not num and not den:
                return f"-{self.x.wrap_latex(41)}"
            return f"{self.c.latex()} {self.x.wrap_latex(41)}"
        return f"{self.c.wrap_latex(40)} {self.x.wrap_latex(41)}"


@dataclass(frozen=True)
class Elementwise(MatrixExpr):
    fn: str
    x: MatrixExpr
    order: int = 0
    rank: int = 2

    def _text(self):
        arg = self.x.text()
        if self.order:  # the NumPy arguments of a declared h: h_prime, h_prime2
            return f"{self.fn}_prime{self.order if self.order > 1 else ''}({arg})"
        if self.fn in NUMPY_FUNCTIONS:
            return f"{NUMPY_FUNCTIONS[self.fn]}({arg})"
        if self.fn in NUMPY_SPELLED_OUT:
            return NUMPY_SPELLED_OUT[self.fn].format(arg)
        return f"{self.fn}({arg})"

    def _latex(self):
        return printing.function_latex(self.fn, self.order, self.x.latex())


@dataclass(frozen=True)
class Power(MatrixExpr):
    x: MatrixExpr
    n: Fraction
    rank: int = 2
    precedence = 80

    def _text(self):
        exponent = _num_text(self.n)
        if self.n.denominator != 1:
            exponent = f"({exponent})"  # x ** -1/2 would be (x ** -1) / 2
        return f"{self.x.wrap_text(81)} ** {exponent}"

    def _latex(self):
        if self.x.rank == 0:
            return f"{self.x.wrap_latex(81)}^{{{_num_text(self.n)}}}"
        return f"{self.x.wrap_latex(81)}^{{\\circ {_num_text(self.n)}}}"


@dataclass(frozen=True)
class MSum(MatrixExpr):
    """``a + b - c``: terms with signs."""

    terms: tuple[tuple[int, MatrixExpr], ...]
    rank: int = 2
    precedence = 30

    def _text(self):
        return _join_signed([(s, t.wrap_text(31)) for s, t in self.terms])

    def _latex(self):
        return _join_signed([(s, t.wrap_latex(31)) for s, t in self.terms])


#: NumPy spelling of the elementwise functions (``sigmoid`` and ``relu`` have none).
NUMPY_FUNCTIONS = {
    "exp": "np.exp", "log": "np.log", "sqrt": "np.sqrt", "tanh": "np.tanh", "abs": "np.abs",
    "sin": "np.sin", "cos": "np.cos", "sign": "np.sign",
}


def numpy_text(term: Term) -> str:
    """A scalar term in NumPy syntax: the file language but for ``**`` as the power."""
    return printing.to_text(term).replace("^", " ** ")


def _left_level(child: MatrixExpr) -> int:
    """Python gives ``*``, ``/`` and ``@`` one level: bracket a product on the left of an
    elementwise operation unless it is itself elementwise (``a * b * c`` reads fine)."""
    return 40 if isinstance(child, (Hadamard, HadamardDiv)) else 51


#: Functions NumPy has no name for, written out (in matrix text: readable NumPy).
NUMPY_SPELLED_OUT = {
    "sigmoid": "1 / (1 + np.exp(-({})))",
    "relu": "np.maximum({}, 0)",
    "step": "np.heaviside({}, 0)",
}


def _join_signed(parts):
    out = ""
    for k, (sign, s) in enumerate(parts):
        if k == 0:
            out = s if sign > 0 else f"-{s}"
        else:
            out += f" + {s}" if sign > 0 else f" - {s}"
    return out


def _num_text(n: Fraction) -> str:
    return str(n.numerator) if n.denominator == 1 else f"{n.numerator}/{n.denominator}"


def _bold(name: str) -> str:
    return f"\\mathbf{{{printing.name_latex(name)}}}"


# --- index expression -> matrix expression -------------------------------------------------

@dataclass(frozen=True)
class Shaped:
    expr: MatrixExpr
    idx: tuple[Index, ...]
    inverse: bool = False  # a denominator factor, still to divide by


def to_matrix(term: Term, out: tuple[Index, ...]) -> MatrixExpr | None:
    """The matrix form of ``term`` with axes in the order ``out``; None if there is none."""
    if len(out) > 2 or len(set(out)) != len(out):
        return None
    try:
        shaped = _conv(term)
        if out and not shaped.idx:  # the same value in every entry: c 1 (or c 1 1^T)
            ones: MatrixExpr = Ones(out[0].dim)
            if len(out) == 2:
                ones = Outer(ones, Ones(out[1].dim))
            return Scale(shaped.expr, ones, len(out))
        return _align(shaped, out).expr
    except NoMatrixForm:
        return None


def _scalar_only(term: Term) -> bool:
    return not term.free and not any(isinstance(t, Sum) for t in term.walk())


def _conv(term: Term) -> Shaped:
    if _scalar_only(term):
        return Shaped(Scalar(term), ())
    if isinstance(term, Tensor):
        if len(term.indices) > 2 or len(set(term.indices)) != len(term.indices):
            raise NoMatrixForm
        return Shaped(Ref(term.name, len(term.indices)), term.indices)
    if isinstance(term, Grad):
        if len(term.indices) > 2 or len(set(term.indices)) != len(term.indices):
            raise NoMatrixForm
        return Shaped(Ref(term.array_name, len(term.indices), (term.of, term.wrt)), term.indices)
    if isinstance(term, Delta):
        if term.a == term.b:
            raise NoMatrixForm
        return Shaped(Identity(term.a.dim), (term.a, term.b))
    if isinstance(term, Func):
        inner = _conv(term.arg)
        return Shaped(Elementwise(term.name, inner.expr, term.order, inner.expr.rank), inner.idx)
    if isinstance(term, Pow):
        base, exp = base_exp(term)
        if not isinstance(term.exponent, Num):
            raise NoMatrixForm
        if exp == -1:
            return _contract([term], ())
        inner = _conv(base)
        return Shaped(Power(inner.expr, exp, inner.expr.rank), inner.idx)
    if isinstance(term, Add):
        return _add([_conv(t) for t in term.terms], term.terms)
    if isinstance(term, Sum):
        if isinstance(term.body, Add):
            return _conv(add_terms(*(make_sum(term.indices, t) for t in term.body.terms)))
        factors = term.body.factors if isinstance(term.body, Mul) else (term.body,)
        return _contract(list(factors), term.indices)
    if isinstance(term, Mul):
        return _contract(list(term.factors), ())
    raise NoMatrixForm


def _add(parts: list[Shaped], terms) -> Shaped:
    union: list[Index] = []
    for p in parts:
        for i in p.idx:
            if i not in union:
                union.append(i)
    if len(union) > 2:
        raise NoMatrixForm
    # the order of the first term with the most axes
    widest = max(parts, key=lambda p: len(p.idx))
    order = tuple(widest.idx) + tuple(i for i in union if i not in widest.idx)
    signed = []
    for p, t in zip(parts, terms):
        sign = -1 if split_coeff(t)[0] < 0 else 1
        if sign < 0:
            p = Shaped(_negate(p.expr), p.idx)
        expr = _align(p, order).expr if p.idx else p.expr
        signed.append((sign, expr))
    return Shaped(MSum(tuple(signed), len(order)), order)


def _negate(expr: MatrixExpr) -> MatrixExpr:
    """Strip a leading -1 (the sign is printed by the sum)."""
    if isinstance(expr, Scale) and isinstance(expr.c, Scalar):
        c = mul(Num(Fraction(-1)), expr.c.term)
        return expr.x if c == Num(Fraction(1)) else Scale(Scalar(c), expr.x, expr.rank)
    if isinstance(expr, Scalar):
        return Scalar(mul(Num(Fraction(-1)), expr.term))
    raise NoMatrixForm  # pragma: no cover - a negative term is always a scaled product


def _align(p: Shaped, order: tuple[Index, ...]) -> Shaped:
    """``p`` with its axes in ``order``: transposed, or broadcast with a ones vector."""
    if p.idx == tuple(order):
        return p
    if len(p.idx) == 2 and tuple(reversed(p.idx)) == tuple(order):
        return Shaped(_transpose(p.expr), tuple(order))
    if len(p.idx) == 1 and len(order) == 2 and p.idx[0] in order:
        if p.idx[0] == order[0]:
            return Shaped(Outer(p.expr, Ones(order[1].dim)), tuple(order))
        return Shaped(Outer(Ones(order[0].dim), p.expr), tuple(order))
    if not p.idx:
        return Shaped(p.expr, tuple(order))  # a scalar broadcasts by itself
    raise NoMatrixForm


def _transpose(expr: MatrixExpr) -> MatrixExpr:
    if isinstance(expr, Transpose):
        return expr.x
    if isinstance(expr, (Identity, Diag)):
        return expr
    if isinstance(expr, Outer):
        return Outer(expr.b, expr.a)
    if isinstance(expr, MatMul) and expr.a.rank == 2 and expr.b.rank == 2:
        return MatMul(_transpose(expr.b), _transpose(expr.a))  # (A B)^T = B^T A^T
    if isinstance(expr, Scale):
        return Scale(expr.c, _transpose(expr.x), expr.rank)
    if isinstance(expr, (Scalar, Ones)) or expr.rank < 2:
        return expr
    return Transpose(expr)


def _contract(factors: list[Term], bound: tuple[Index, ...]) -> Shaped:
    scalars: list[Term] = []
    items: list[Shaped] = []
    for f in factors:
        if _scalar_only(f):
            scalars.append(f)
            continue
        base, exp = base_exp(f)
        if exp == -1:
            inner = _conv(base)
            items.append(Shaped(inner.expr, inner.idx, inverse=True))
        else:
            items.append(_conv(f))
    pending = list(bound)
    while True:
        items = _merge_equal_sets(items)
        if not pending:
            break
        k = pending.pop(0)
        holders = [p for p in items if k in p.idx]
        others = [p for p in items if k not in p.idx]
        if len(holders) > 2:  # v_k A_kx B_ky = (A^T diag(v) B)_xy
            holders = _absorb_vector(holders, k)
        if len(holders) == 1 and not holders[0].inverse:
            items = others + [_sum_axis(holders[0], k)]
        elif len(holders) == 2 and not any(h.inverse for h in holders):
            items = others + [_matmul(holders[0], holders[1], k)]
        else:
            raise NoMatrixForm
    result = _combine(items)
    if scalars:
        c = mul(*scalars)
        if result is None:
            return Shaped(Scalar(c), ())
        result = Shaped(Scale(Scalar(c), result.expr, result.expr.rank), result.idx)
    if result is None:
        return Shaped(Scalar(Num(Fraction(1))), ())
    return result


def _absorb_vector(holders: list[Shaped], k: Index) -> list[Shaped]:
    """Fold a vector v_k into a matrix that shares k: diag(v) M (or M diag(v))."""
    vectors = [p for p in holders if p.idx == (k,) and not p.inverse]
    matrices = [p for p in holders if len(p.idx) == 2 and not p.inverse]
    if not vectors or not matrices:
        return holders
    v, m = vectors[0], matrices[0]
    expr = MatMul(Diag(v.expr), m.expr) if m.idx[0] == k else MatMul(m.expr, Diag(v.expr))
    rest = [p for p in holders if p is not v and p is not m]
    return [Shaped(expr, m.idx)] + rest


def _merge_equal_sets(items: list[Shaped]) -> list[Shaped]:
    out: list[Shaped] = []
    for p in items:
        for k, q in enumerate(out):
            if set(q.idx) == set(p.idx) and p.idx:
                out[k] = _elementwise(q, p)
                break
        else:
            out.append(p)
    return out


def _elementwise(a: Shaped, b: Shaped) -> Shaped:
    """a ⊙ b, a ⊘ b (or b ⊘ a) for two items on the same axes; a may be broadcast."""
    order = a.idx if len(a.idx) >= len(b.idx) else b.idx
    ea = _align(Shaped(a.expr, a.idx), order).expr
    eb = _align(Shaped(b.expr, b.idx), order).expr
    rank = len(order)
    if a.inverse and b.inverse:
        return Shaped(Hadamard(ea, eb, rank), order, inverse=True)
    if b.inverse:
        return Shaped(HadamardDiv(ea, eb, rank), order)
    if a.inverse:
        return Shaped(HadamardDiv(eb, ea, rank), order)
    return Shaped(_hadamard(ea, eb, rank), order)


def _broadcast_vector(m: MatrixExpr) -> tuple[MatrixExpr, int] | None:
    """``(v, 0)`` for ``v 1^T`` (rows of v), ``(v, 1)`` for ``1 v^T``; else None."""
    if isinstance(m, Outer):
        if isinstance(m.b, Ones) and not isinstance(m.a, Ones):
            return m.a, 0
        if isinstance(m.a, Ones) and not isinstance(m.b, Ones):
            return m.b, 1
    return None


def _hadamard(a: MatrixExpr, b: MatrixExpr, rank: int) -> MatrixExpr:
    """a ⊙ b, written the textbook way where an identity or two broadcasts meet:
    I ⊙ (v 1^T) = diag(v);  (a 1^T) ⊙ (1 b^T) = a b^T;  (v 1^T) ⊙ M = diag(v) M; and ⊙
    distributes over a sum holding such a term (so p_i (delta_ik - p_k) reads
    diag(p) - p p^T)."""
    for x, y in ((a, b), (b, a)):
        bx = _broadcast_vector(x)
        if bx is None:
            continue
        if isinstance(y, Identity):
            return Diag(bx[0])
        by = _broadcast_vector(y)
        if by is not None and by[1] != bx[1]:
            return Outer(bx[0], by[0]) if bx[1] == 0 else Outer(by[0], bx[0])
        if by is not None:  # (a 1^T) ⊙ (b 1^T) = (a ⊙ b) 1^T
            v = Hadamard(bx[0], by[0], 1)
            return Outer(v, y.b) if bx[1] == 0 else Outer(y.a, v)

        def meets(t):
            bt = _broadcast_vector(t)
            return isinstance(t, Identity) or (bt is not None and bt[1] != bx[1])

        if isinstance(y, MSum) and any(meets(t) for _, t in y.terms):
            return MSum(tuple((sg, _hadamard(x, t, rank)) for sg, t in y.terms), rank)
        if y.rank == 2 and not isinstance(y, MSum):  # (v 1^T) ⊙ M = diag(v) M
            return MatMul(Diag(bx[0]), y) if bx[1] == 0 else MatMul(y, Diag(bx[0]))
    return Hadamard(a, b, rank)


def _sum_axis(p: Shaped, k: Index) -> Shaped:
    rest = tuple(i for i in p.idx if i != k)
    ones = Ones(k.dim)
    if len(p.idx) == 1:
        return Shaped(MatMul(ones, p.expr, 0), ())
    if p.idx[0] == k:
        return Shaped(MatMul(ones, p.expr, 1), rest)
    return Shaped(MatMul(p.expr, ones, 1), rest)


def _matmul(a: Shaped, b: Shaped, k: Index) -> Shaped:
    a_rest = tuple(i for i in a.idx if i != k)
    b_rest = tuple(i for i in b.idx if i != k)
    if set(a_rest) & set(b_rest) or len(a_rest) + len(b_rest) > 2:
        raise NoMatrixForm
    # orient a as (rest, k) and b as (k, rest)
    ea = a.expr if a.idx[-1] == k else _transpose(a.expr)
    eb = b.expr if b.idx[0] == k else _transpose(b.expr)
    if not a_rest and b_rest:  # a vector times a matrix reads better as written
        return Shaped(MatMul(ea, eb, 1), b_rest)
    if a_rest and not b_rest:
        return Shaped(MatMul(ea, eb, 1), a_rest)
    return Shaped(MatMul(ea, eb, len(a_rest) + len(b_rest)), a_rest + b_rest)


def _combine(items: list[Shaped]) -> Shaped | None:
    """Put together items with no summed index left: broadcast or outer products."""
    if not items:
        return None
    items = sorted(items, key=lambda p: -len(p.idx))
    acc = items[0]
    if acc.inverse:
        acc = Shaped(HadamardDiv(Scalar(Num(Fraction(1))), acc.expr, len(acc.idx)), acc.idx)
    for p in items[1:]:
        if set(p.idx) <= set(acc.idx):
            acc = _elementwise(acc, p)
        elif not set(p.idx) & set(acc.idx) and len(acc.idx) + len(p.idx) <= 2 and not p.inverse:
            acc = Shaped(Outer(acc.expr, p.expr), acc.idx + p.idx)
        else:
            raise NoMatrixForm
    return acc
