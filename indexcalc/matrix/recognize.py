"""Recognition: an index expression read off as a matrix expression (the IR), where one exists.

``sum_s dL_dY[s,i] X[s,j]`` becomes ``(dL/dY)^T X``; a sum over one axis becomes ``1^T G``
or ``G 1`` (``SumAxis``); equal index sets combine elementwise (``⊙``, ``⊘``); a vector
meeting a matrix is broadcast as ``r 1^T``; disjoint vectors form an outer product.  Anything
else (more than two indices, a diagonal ``X_ii``, three factors sharing a summed index) has
no matrix form: ``to_matrix`` returns None and the caller falls back to einsum.

The result is an :mod:`indexcalc.matrix.ir` value; the printers in ``emit.numpy`` and
``render.matrix`` write it as NumPy and as LaTeX.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..terms import (
    Add, Delta, Func, Grad, Index, MatrixFunc, Mul, Num, Pow, Sum, Tensor, Term, base_exp,
    make_sum, mul, add as add_terms, split_coeff,
)
from .ir import (
    Apply, Broadcast, Diag, Hadamard, HadamardDiv, Identity, Inverse, MatMul, Node, Ones, Outer,
    Power, Ref, Scalar, Scale, Shape, ShapeMismatch, SumAxis, Trace, Transpose, map_children,
    walk,
)
from .ir import Sum as MSum


class NoMatrixForm(Exception):
    pass


# --- index expression -> matrix expression -------------------------------------------------

@dataclass(frozen=True)
class Shaped:
    expr: Node
    idx: tuple[Index, ...]
    inverse: bool = False  # a denominator factor, still to divide by


def to_matrix(term: Term, out: tuple[Index, ...]) -> Node | None:
    """The matrix form of ``term`` with axes in the order ``out``; None if there is none."""
    if len(out) > 2 or len(set(out)) != len(out):
        return None
    try:
        shaped = _conv(term)
        if out and not shaped.idx:  # the same value in every entry: c 1 (or c 1 1^T)
            to = Shape(out[0].dim, out[1].dim if len(out) == 2 else None)
            return Broadcast(shaped.expr, to)
        return _align(shaped, out).expr
    except (NoMatrixForm, ShapeMismatch):
        return None


# --- factoring ------------------------------------------------------------------------------

def factor(expr: Node) -> Node:
    """Products with a common left or right factor gathered, as a textbook writes them:
    ``B X + B^T X`` is ``(B + B^T) X``, ``A B C + A B D^T`` is ``A B (C + D^T)`` (fewer
    products; the value is the same by distributivity, and the check tests it)."""
    expr = map_children(expr, factor)
    if not isinstance(expr, MSum):
        return expr
    terms = list(expr.terms)
    while True:
        best = _best_pair(terms)
        if best is None:
            break
        i, j, merged = best
        terms = [t for k, t in enumerate(terms) if k not in (i, j)]
        terms.insert(min(i, j), (1, merged))
    if len(terms) == 1 and terms[0][0] == 1:
        return terms[0][1]
    return _gather_transposes(MSum(tuple(terms)))


def _gather_transposes(expr: MSum) -> Node:
    """``A^T - B^T`` as ``(A - B)^T`` where that prints fewer transposes."""
    if expr.shape.ndim != 2:
        return expr
    whole = Transpose(MSum(tuple((sign, transpose(t)) for sign, t in expr.terms)))
    return whole if _transposes(whole) < _transposes(expr) else expr


def _chain(expr: Node, turn: bool = False) -> list[Node]:
    """The factors of a product, left to right.  ``turn``: a vector on the left is turned
    to the right (``r^T D = (D^T r)^T``, one array in NumPy), and an outer product of a
    product with a vector ends in its matrices (``(X c) b^T = X (c b^T)``), so that
    ``D r + r^T D`` shows its common factor ``r``."""
    if isinstance(expr, MatMul):
        if turn and expr.a.shape.ndim == 1 and expr.b.shape.ndim == 2:
            return _chain(transpose(expr.b), turn) + _chain(expr.a, turn)
        return _chain(expr.a, turn) + _chain(expr.b, turn)
    if turn and isinstance(expr, Outer) and isinstance(expr.a, MatMul):
        inner = _chain(expr.a, turn)
        if len(inner) > 1 and inner[-1].shape.ndim == 1:
            return inner[:-1] + [Outer(inner[-1], expr.b)]
    return [expr]


def _product(chain: list[Node]) -> Node:
    out = chain[0]
    for x in chain[1:]:
        out = MatMul(out, x)
    return out


def _best_pair(terms):
    """The two terms sharing the longest run of factors at the left or right end of their
    products, merged; None if no two share one."""
    for turn in (False, True):  # as written first; with vectors turned where that helps
        best = _best_pair_of([_chain(t, turn) for _, t in terms], terms)
        if best is not None:
            return best
    return None


def _best_pair_of(chains, terms):
    best = None
    for i in range(len(terms)):
        for j in range(i + 1, len(terms)):
            a, b = chains[i], chains[j]
            for side in ("left", "right"):
                n = 0
                while (n < len(a) - 1 and n < len(b) - 1
                       and (a[n] if side == "left" else a[-1 - n])
                       == (b[n] if side == "left" else b[-1 - n])):
                    n += 1
                if not n or (best is not None and n <= best[0]):
                    continue
                try:
                    if side == "left":
                        inner = MSum(((terms[i][0], _product(a[n:])), (terms[j][0], _product(b[n:]))))
                        merged = _product(a[:n] + [_gather_transposes(inner)])
                    else:
                        inner = MSum(((terms[i][0], _product(a[:-n])),
                                      (terms[j][0], _product(b[:-n]))))
                        merged = _product([_gather_transposes(inner)] + a[-n:])
                except ShapeMismatch:
                    continue
                best = (n, i, j, merged)
    return None if best is None else best[1:]


def _dims(indices: tuple[Index, ...]) -> tuple[str, ...]:
    return tuple(i.dim for i in indices)


def _scalar_only(term: Term) -> bool:
    return not term.free and not any(isinstance(t, Sum) for t in term.walk())


def _conv(term: Term) -> Shaped:
    if _scalar_only(term):
        return Shaped(Scalar(term), ())
    if isinstance(term, (Tensor, Grad)) and not all(isinstance(i, Index) for i in term.indices):
        raise NoMatrixForm  # a shifted read x[u+k]: no matrix reading
    if isinstance(term, (Tensor, Grad)):
        if len(term.indices) > 2 or len(set(term.indices)) != len(term.indices):
            raise NoMatrixForm
        return Shaped(_leaf(term), term.indices)
    if isinstance(term, MatrixFunc) and term.name == "inv":
        if len(set(term.indices)) != 2 or not all(isinstance(i, Index) for i in term.indices):
            raise NoMatrixForm
        return Shaped(_leaf(term), term.indices)
    if isinstance(term, Delta):
        if not term.plain or term.a.dim != term.b.dim:
            raise NoMatrixForm
        if term.a == term.b:
            raise NoMatrixForm
        return Shaped(Identity(term.a.dim), (term.a, term.b))
    if isinstance(term, Func):
        inner = _conv(term.arg)
        return Shaped(Apply(term.name, inner.expr, term.order), inner.idx)
    if isinstance(term, Pow):
        base, exp = base_exp(term)
        if not isinstance(term.exponent, Num):
            raise NoMatrixForm
        if exp == -1:
            return _contract([term], ())
        inner = _conv(base)
        return Shaped(Power(inner.expr, exp), inner.idx)
    if isinstance(term, Add):
        return _add([_conv(t) for t in term.terms], term.terms)
    if isinstance(term, Sum):
        if isinstance(term.body, Add):  # the sum of each term, its sign outside the sum
            return _conv(add_terms(*(mul(Num(c), make_sum(term.indices, mul(*rest)))
                                     for c, rest in map(split_coeff, term.body.terms))))
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
    return Shaped(MSum(tuple(signed)), order)


def _negate(expr: Node) -> Node:
    """Strip a leading -1 (the sign is printed by the sum)."""
    if isinstance(expr, Scale) and isinstance(expr.c, Scalar):
        c = mul(Num(Fraction(-1)), expr.c.term)
        return expr.x if c == Num(Fraction(1)) else Scale(Scalar(c), expr.x)
    if isinstance(expr, Scalar):
        return Scalar(mul(Num(Fraction(-1)), expr.term))
    raise NoMatrixForm  # pragma: no cover - a negative term is always a scaled product


def _align(p: Shaped, order: tuple[Index, ...]) -> Shaped:
    """``p`` with its axes in ``order``: transposed, or broadcast with a ones vector."""
    if p.idx == tuple(order):
        return p
    if len(p.idx) == 2 and tuple(reversed(p.idx)) == tuple(order):
        return Shaped(transpose(p.expr), tuple(order))
    if len(p.idx) == 1 and len(order) == 2 and p.idx[0] in order:
        if p.idx[0] == order[0]:
            return Shaped(Broadcast(p.expr, Shape(order[0].dim, order[1].dim), along=1), tuple(order))
        return Shaped(Broadcast(p.expr, Shape(order[0].dim, order[1].dim), along=0), tuple(order))
    if not p.idx:
        return Shaped(p.expr, tuple(order))  # a scalar broadcasts by itself
    raise NoMatrixForm


def transpose(expr: Node) -> Node:
    """``expr^T``, written as a textbook does: (A B)^T = B^T A^T, transposes of sums and
    elementwise operations distributed where that prints no more of them."""
    if isinstance(expr, Transpose):
        return expr.x
    if isinstance(expr, (Identity, Diag)):
        return expr
    if isinstance(expr, Outer):
        return Outer(expr.b, expr.a)
    if isinstance(expr, Broadcast) and expr.x.shape.ndim == 1:
        return Broadcast(expr.x, expr.to.transposed(), 1 - expr.along)
    if isinstance(expr, MatMul) and expr.a.shape.ndim == 2 and expr.b.shape.ndim == 2:
        return MatMul(transpose(expr.b), transpose(expr.a))  # (A B)^T = B^T A^T
    if isinstance(expr, Scale):
        return Scale(expr.c, transpose(expr.x))
    if isinstance(expr, (Scalar, Ones)) or expr.shape.ndim < 2:
        return expr
    if isinstance(expr, (MSum, Hadamard, HadamardDiv, Apply, Power)):
        # (A + B^T)^T = A^T + B, as a textbook writes it, where that takes no more
        # transposes than the transpose of the whole
        distributed = _distribute_transpose(expr)
        if _transposes(distributed) <= _transposes(expr) + 1:
            return distributed
    return Transpose(expr)


def _distribute_transpose(expr: Node) -> Node:
    if isinstance(expr, MSum):
        return MSum(tuple((sign, transpose(t)) for sign, t in expr.terms))
    if isinstance(expr, (Hadamard, HadamardDiv)):
        return type(expr)(transpose(expr.a), transpose(expr.b))
    if isinstance(expr, Apply):
        return Apply(expr.fn, transpose(expr.x), expr.order)
    return Power(transpose(expr.x), expr.n)


def _transposes(expr: Node) -> int:
    """How many matrix transposes ``expr`` prints."""
    return sum(1 for n in walk(expr) if isinstance(n, Transpose) and n.shape.ndim == 2)


def _diagonal(f: Term) -> Index | None:
    """``j`` where ``f`` is a diagonal entry ``X_jj`` (a tensor, an upstream gradient or an
    inverse), else None."""
    if isinstance(f, (Tensor, Grad, MatrixFunc)) and len(f.indices) == 2:
        a, b = f.indices
        if a == b and isinstance(a, Index) and (not isinstance(f, MatrixFunc) or f.name == "inv"):
            return a
    return None


def _leaf(f: Tensor | Grad | MatrixFunc) -> Node:
    """The array an entry reads: a tensor, an upstream gradient, or an inverse."""
    if isinstance(f, Tensor):
        return Ref(f.name, _dims(f.indices))
    if isinstance(f, Grad):
        return Ref(f.array_name, _dims(f.indices), (f.of, f.wrt))
    return Inverse(f.matrix, f.indices[0].dim)


def _contract(factors: list[Term], bound: tuple[Index, ...]) -> Shaped:
    scalars: list[Term] = []
    items: list[Shaped] = []
    bound = tuple(bound)
    for f in factors:
        if _scalar_only(f):
            scalars.append(f)
            continue
        j = _diagonal(f)
        if j is not None and j in bound and sum(j in g.free for g in factors) == 1:
            items.append(Shaped(Trace(_leaf(f)), ()))  # sum_j X_jj = tr(X)
            bound = tuple(i for i in bound if i != j)
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
        holders = _absorb_inverse([p for p in items if k in p.idx])
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
        result = Shaped(Scale(Scalar(c), result.expr), result.idx)
    if result is None:
        return Shaped(Scalar(Num(Fraction(1))), ())
    return result


def _absorb_inverse(holders: list[Shaped]) -> list[Shaped]:
    """A denominator whose axes another factor has divides that factor elementwise:
    exp(U)_ln / s_n = (exp(U) ⊘ 1 s^T)_ln (an inline softmax), so the sum over n that
    follows is a product of two matrices."""
    out = list(holders)
    for p in holders:
        if not p.inverse or len(out) < 2:
            continue
        for k, q in enumerate(out):
            if q is not p and not q.inverse and set(p.idx) < set(q.idx):
                out[k] = _elementwise(q, p)
                out.remove(p)
                break
    return out


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
    if a.inverse and b.inverse:
        return Shaped(Hadamard(ea, eb), order, inverse=True)
    if b.inverse:
        return Shaped(HadamardDiv(ea, eb), order)
    if a.inverse:
        return Shaped(HadamardDiv(eb, ea), order)
    return Shaped(_hadamard(ea, eb), order)


def _broadcast_vector(m: Node) -> Broadcast | None:
    """``m`` if it is a vector broadcast to a matrix (``v 1^T`` or ``1 v^T``), else None."""
    if isinstance(m, Broadcast) and m.x.shape.ndim == 1:
        return m
    return None


def _hadamard(a: Node, b: Node) -> Node:
    """a ⊙ b, written the textbook way where an identity or two broadcasts meet:
    I ⊙ (v 1^T) = diag(v);  (a 1^T) ⊙ (1 b^T) = a b^T;  (v 1^T) ⊙ M = diag(v) M; and ⊙
    distributes over a sum holding such a term (so p_i (delta_ik - p_k) reads
    diag(p) - p p^T)."""
    for x, y in ((a, b), (b, a)):
        bx = _broadcast_vector(x)
        if bx is None:
            continue
        if isinstance(y, Identity):
            return Diag(bx.x)
        by = _broadcast_vector(y)
        if by is not None and by.along != bx.along:
            return Outer(bx.x, by.x) if bx.along == 1 else Outer(by.x, bx.x)
        if by is not None:  # (a 1^T) ⊙ (b 1^T) = (a ⊙ b) 1^T
            return Broadcast(Hadamard(bx.x, by.x), bx.to, bx.along)

        def meets(t):
            bt = _broadcast_vector(t)
            return isinstance(t, Identity) or (bt is not None and bt.along != bx.along)

        if isinstance(y, MSum) and any(meets(t) for _, t in y.terms):
            return MSum(tuple((sg, _hadamard(x, t)) for sg, t in y.terms))
        if y.shape.ndim == 2 and not isinstance(y, MSum):  # (v 1^T) ⊙ M = diag(v) M
            return MatMul(Diag(bx.x), y) if bx.along == 1 else MatMul(y, Diag(bx.x))
    return Hadamard(a, b)


def _sum_axis(p: Shaped, k: Index) -> Shaped:
    rest = tuple(i for i in p.idx if i != k)
    return Shaped(SumAxis(p.expr, p.idx.index(k)), rest)


def _matmul(a: Shaped, b: Shaped, k: Index) -> Shaped:
    a_rest = tuple(i for i in a.idx if i != k)
    b_rest = tuple(i for i in b.idx if i != k)
    if set(a_rest) & set(b_rest) or len(a_rest) + len(b_rest) > 2:
        raise NoMatrixForm
    # orient a as (rest, k) and b as (k, rest)
    ea = a.expr if a.idx[-1] == k else transpose(a.expr)
    eb = b.expr if b.idx[0] == k else transpose(b.expr)
    if not a_rest and b_rest:  # a vector times a matrix reads better as written
        return Shaped(MatMul(ea, eb), b_rest)
    if a_rest and not b_rest:
        return Shaped(MatMul(ea, eb), a_rest)
    if not a_rest and not b_rest:  # x^T y
        return Shaped(MatMul(ea, eb), ())
    return Shaped(MatMul(ea, eb), a_rest + b_rest)


def _combine(items: list[Shaped]) -> Shaped | None:
    """Put together items with no summed index left: broadcast or outer products."""
    if not items:
        return None
    items = sorted(items, key=lambda p: -len(p.idx))
    acc = items[0]
    if acc.inverse:
        acc = Shaped(HadamardDiv(Scalar(Num(Fraction(1))), acc.expr), acc.idx)
    for p in items[1:]:
        if set(p.idx) <= set(acc.idx):
            acc = _elementwise(acc, p)
        elif not set(p.idx) & set(acc.idx) and len(acc.idx) + len(p.idx) <= 2 and not p.inverse:
            acc = Shaped(Outer(acc.expr, p.expr), acc.idx + p.idx)
        else:
            raise NoMatrixForm
    return acc
