"""The term model: immutable index expressions.

Every stage of indexcalc reads and writes these terms.  A term is a frozen dataclass with
structural equality.  Division is a negative power inside a product (``Mul(a, Pow(b, -1))``),
so that cancellation and folding of definitions see one flat list of factors; the printers
turn negative powers back into fractions.

Indices carry the dim that gives their range.  Free indices are the indices a term is a
function of; indices bound by a ``Sum`` are renamed automatically by ``substitute`` so that a
substitution never captures them.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Callable, Iterable, Iterator, Mapping

from . import naming


@dataclass(frozen=True, order=True)
class Index:
    """An index such as ``s`` ranging over the dim ``S``."""

    name: str
    dim: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Affine:
    """An affine expression of indices at a tensor position: ``u+k``, ``t-1``, ``2*u+k``,
    or a constant index ``0``.  ``terms`` are (coefficient, index) pairs in the order
    written; ``dim`` is the dim of the position it stands at (a read outside 0..dim-1 is 0,
    which is zero padding), or "" for an index value outside a position (a bracket's side).
    """

    terms: tuple[tuple[int, Index], ...]
    offset: int = 0
    dim: str = ""
    #: Proven to stay in 0..dim-1 for every value of its indices (``u+k`` for u < T-K+1,
    #: k < K): set only on the generated code's terms, whose reads then need no padding.
    inside: bool = False

    @property
    def free(self) -> frozenset[Index]:
        return frozenset(i for _, i in self.terms)

    @property
    def name(self) -> str:
        """The expression as written in the file language and in LaTeX subscripts."""
        out = ""
        for c, i in sorted(self.terms, key=lambda t: t[0] < 0):  # l-k, not -k+l
            sign = "-" if c < 0 else ("+" if out else "")
            mag = "" if abs(c) == 1 else f"{abs(c)}"
            out += f"{sign}{mag}{i.name}"
        if self.offset or not out:
            out += f"{self.offset:+d}" if out else f"{self.offset}"
        return out

    def __str__(self) -> str:
        return self.name


def linear(p) -> tuple[dict[Index, int], int]:
    """An index or affine expression as {index: coefficient} and an offset."""
    if isinstance(p, Index):
        return {p: 1}, 0
    coeffs: dict[Index, int] = {}
    for c, i in p.terms:
        coeffs[i] = coeffs.get(i, 0) + c
    return {i: c for i, c in coeffs.items() if c}, p.offset


def position(coeffs: dict[Index, int], offset: int, dim: str):
    """The position with this linear form at a position of ``dim``: a plain index where the
    form is one index of that dim, else an ``Affine``."""
    terms = tuple((c, i) for i, c in coeffs.items() if c)
    if len(terms) == 1 and terms[0][0] == 1 and offset == 0 and terms[0][1].dim == dim:
        return terms[0][1]
    return Affine(terms, offset, dim)


def _free_of(positions) -> frozenset[Index]:
    out: set[Index] = set()
    for p in positions:
        if isinstance(p, Index):
            out.add(p)
        else:
            out |= p.free
    return frozenset(out)


def _substitute_position(p, mapping):
    """``p`` with each index in ``mapping`` replaced (by an index or an affine value)."""
    if isinstance(p, Index):
        new = mapping.get(p, p)
        if isinstance(new, Index) or new is p:
            return new
        return position(*linear(new), p.dim)
    if not (p.free & mapping.keys()):
        return p
    coeffs: dict[Index, int] = {}
    offset = p.offset
    for c, i in p.terms:
        new = mapping.get(i, i)
        sub, off = linear(new)
        offset += c * off
        for j, d in sub.items():
            coeffs[j] = coeffs.get(j, 0) + c * d
    return position(coeffs, offset, p.dim)


class Term:
    """Base class of all terms.  Subclasses are frozen dataclasses."""

    __slots__ = ()

    def children(self) -> tuple["Term", ...]:
        return ()

    def rebuild(self, children: tuple["Term", ...]) -> "Term":
        """The same node with new children (in the order of ``children()``)."""
        return self

    @cached_property
    def free(self) -> frozenset[Index]:
        out: set[Index] = set()
        for child in self.children():
            out |= child.free
        return frozenset(out)

    @cached_property
    def tensor_names(self) -> frozenset[str]:
        """Names of the tensors (inputs and defined) this term mentions."""
        if isinstance(self, Tensor):
            return frozenset((self.name,))
        if isinstance(self, MatrixFunc):
            return frozenset((self.matrix,))
        out: frozenset[str] = frozenset()
        for child in self.children():
            out |= child.tensor_names
        return out

    @cached_property
    def has_deriv(self) -> bool:
        return any(child.has_deriv for child in self.children())

    @cached_property
    def size(self) -> int:
        return 1 + sum(child.size for child in self.children())

    @cached_property
    def _hash(self) -> int:
        return hash((type(self).__name__,) + self._key())

    def _key(self) -> tuple:
        """The fields that make up equality and the hash; every node type defines it."""
        raise TypeError(f"{type(self).__name__} does not define _key")  # pragma: no cover

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if type(self) is not type(other):
            return False
        return self._hash == other._hash and self._key() == other._key()

    def walk(self) -> Iterator["Term"]:
        """Every subterm, pre-order."""
        yield self
        for child in self.children():
            yield from child.walk()

    def all_index_names(self) -> set[str]:
        names: set[str] = set()
        for node in self.walk():
            if isinstance(node, (Tensor, Grad, Delta, IndexValue, MatrixFunc)):
                names.update(i.name for i in node.free)
            elif isinstance(node, Arg):
                names.update(i.name for i in _free_of((node.at, node.over)))
            elif isinstance(node, Sum):
                names.update(i.name for i in node.indices)
        return names


def _term(cls):
    """Frozen dataclass that keeps Term's hashing, equality and cached properties."""
    return dataclass(frozen=True, eq=False, repr=True)(cls)


@_term
class Num(Term):
    """An exact rational number."""

    value: Fraction

    def _key(self):
        return (self.value,)


@_term
class DimSize(Term):
    """A dim used as a number, as in ``1/S``."""

    name: str

    def _key(self):
        return (self.name,)


@_term
class Constant(Term):
    """A named mathematical constant (``pi``): a real number with no exact rational value,
    whose facts (value, spellings) are in ``functions.CONSTANTS``."""

    name: str

    def _key(self):
        return (self.name,)


@_term
class Tensor(Term):
    """An entry ``X[s,m]`` of an input or defined tensor; a scalar has no indices."""

    name: str
    indices: tuple[Index, ...] = ()

    def _key(self):
        return (self.name, self.indices)

    @cached_property
    def free(self):
        return _free_of(self.indices)


#: The matrix functions of the language and the number of indices each takes.
MATRIX_FUNCTIONS = {"inv": 2, "det": 0, "logdet": 0}


@_term
class MatrixFunc(Term):
    """``inv(A)[i,j]``, ``det(A)`` or ``logdet(A)`` (the log of |det A|) of the square
    two-index tensor named ``matrix``, an input or a definition."""

    name: str
    matrix: str
    indices: tuple[Index, ...] = ()

    def _key(self):
        return (self.name, self.matrix, self.indices)

    @cached_property
    def free(self):
        return _free_of(self.indices)


@_term
class Grad(Term):
    """An entry of the gradient of a scalar ``of`` with respect to tensor ``wrt``.

    Used for upstream gradients ``dL/dY_sn`` of an opaque ``loss(...)``.
    """

    of: str
    wrt: str
    indices: tuple[Index, ...] = ()

    def _key(self):
        return (self.of, self.wrt, self.indices)

    @cached_property
    def free(self):
        return _free_of(self.indices)

    @property
    def array_name(self) -> str:
        return naming.gradient(self.of, self.wrt)


@_term
class Delta(Term):
    """The Kronecker delta ``delta_ab``: 1 where a = b, else 0.  A side may be an affine
    index expression (``delta(u+k, l)``, from differentiating a shifted read)."""

    a: Index | Affine
    b: Index | Affine

    def _key(self):
        return (self.a, self.b)

    @cached_property
    def free(self):
        return _free_of((self.a, self.b))

    @property
    def plain(self) -> bool:
        return isinstance(self.a, Index) and isinstance(self.b, Index)


@_term
class IndexValue(Term):
    """The value of an index expression as a number, as a side of a bracket:
    ``[u <= t]`` compares ``IndexValue(u)`` with ``IndexValue(t)``."""

    value: Affine

    def _key(self):
        return (self.value,)

    @cached_property
    def free(self):
        return self.value.free


@_term
class Add(Term):
    terms: tuple[Term, ...]

    def _key(self):
        return self.terms

    def children(self):
        return self.terms

    def rebuild(self, children):
        return add(*children)


@_term
class Mul(Term):
    """An ordered product; numbers come first, negative powers form the denominator."""

    factors: tuple[Term, ...]

    def _key(self):
        return self.factors

    def children(self):
        return self.factors

    def rebuild(self, children):
        return mul(*children)


@_term
class Pow(Term):
    """``base ^ exponent`` with an index-free exponent (a number in nearly every case)."""

    base: Term
    exponent: Term

    def _key(self):
        return (self.base, self.exponent)

    def children(self):
        return (self.base, self.exponent)

    def rebuild(self, children):
        return power(*children)


@_term
class Func(Term):
    """An elementwise function applied to a scalar-valued term: ``exp(X_sc)``, ``h'(X_sn)``.

    ``order`` counts derivatives of an unspecified function ``h`` (``h'`` has order 1).
    """

    name: str
    arg: Term
    order: int = 0

    def _key(self):
        return (self.name, self.arg, self.order)

    def children(self):
        return (self.arg,)

    def rebuild(self, children):
        return Func(self.name, children[0], self.order)


#: The comparisons of an Iverson bracket, and the one that holds where each does not.
COMPARISONS = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
#: ``Bracket(IN_RANGE, IndexValue(e), DimSize(D))`` is ``[0 <= e < D]``: where a contracted
#: delta clips the range of the index it replaced.
IN_RANGE = "in"


@_term
class Bracket(Term):
    """The Iverson bracket ``[a op b]``: 1 where the comparison holds, else 0 (entrywise).
    ``where(a > b, p, q)`` is ``[a > b] p + [a <= b] q``."""

    op: str
    a: Term
    b: Term

    def _key(self):
        return (self.op, self.a, self.b)

    def children(self):
        return (self.a, self.b)

    def rebuild(self, children):
        return Bracket(self.op, children[0], children[1])

    def negated(self) -> "Bracket":
        return Bracket(COMPARISONS[self.op], self.a, self.b)


def in_range(value: Affine, dim: str) -> Term:
    """``[0 <= value < dim]``."""
    return Bracket(IN_RANGE, IndexValue(Affine(value.terms, value.offset)), DimSize(dim))


@_term
class Arg(Term):
    """``[at == argmax_over body]``: 1 where ``at`` is the first ``over`` at which ``body``
    is largest (``kind`` "max") or smallest ("min"), else 0.  ``over`` is bound here.

    ``max_d e(d)`` is ``sum_d Arg("max", d, d2, e(d2)) e(d)``: the extreme is the entry at
    the maximiser, and its derivative goes through that entry alone (the bracket is
    constant wherever the maximiser is unique)."""

    kind: str  # "max" | "min"
    at: Index | Affine
    over: Index
    body: Term

    def _key(self):
        return (self.kind, self.at, self.over, self.body)

    def children(self):
        return (self.body,)

    def rebuild(self, children):
        return Arg(self.kind, self.at, self.over, children[0])

    @property
    def indices(self) -> tuple[Index, ...]:
        """The bound index, as a sum's (so renaming treats both alike)."""
        return (self.over,)

    @cached_property
    def free(self):
        return (self.body.free - {self.over}) | _free_of((self.at,))


def as_extreme(term: Term) -> tuple[str, Index, Term] | None:
    """``(kind, d, e)`` where ``term`` is ``sum_d [d == argmax_d' e(d')] e(d)``, which is
    ``max_d e`` (the parser's spelling of it), else None."""
    if not (isinstance(term, Sum) and len(term.indices) == 1 and isinstance(term.body, Mul)
            and len(term.body.factors) == 2):
        return None
    (d,) = term.indices
    for choice, value in (term.body.factors, term.body.factors[::-1]):
        if (isinstance(choice, Arg) and choice.at == d
                and rename_indices(choice.body, {choice.over: d}) == value):
            return choice.kind, d, value
    return None


def _rebind(term: Term, indices: tuple[Index, ...], body: Term) -> Term:
    """``term`` (a Sum or an Arg) with its bound indices and body replaced."""
    if isinstance(term, Arg):
        return Arg(term.kind, term.at, indices[0], body)
    return Sum(indices, body)


@_term
class Sum(Term):
    """``sum_{indices} body``."""

    indices: tuple[Index, ...]
    body: Term

    def _key(self):
        return (self.indices, self.body)

    def children(self):
        return (self.body,)

    def rebuild(self, children):
        return make_sum(self.indices, children[0])

    @cached_property
    def free(self):
        return self.body.free - frozenset(self.indices)


@_term
class Deriv(Term):
    """The unevaluated derivative ``d expr / d wrt`` where ``wrt`` is a tensor entry."""

    expr: Term
    wrt: Tensor

    def _key(self):
        return (self.expr, self.wrt)

    @cached_property
    def has_deriv(self):
        return True

    def children(self):
        return (self.expr,)

    def rebuild(self, children):
        return Deriv(children[0], self.wrt)

    @cached_property
    def free(self):
        return self.expr.free | self.wrt.free


ZERO = Num(Fraction(0))
ONE = Num(Fraction(1))
MINUS_ONE = Num(Fraction(-1))


def num(value) -> Num:
    return Num(Fraction(value))


# --- smart constructors: light normalisation that every rule can rely on -------------------

def add(*terms: Term) -> Term:
    """Flattened sum; zeros dropped; numbers merged where the first one stood.  Order is
    kept otherwise (``1 - H^2`` stays so when rebuilt)."""
    flat: list[Term] = []
    constant = Fraction(0)
    slot = None
    for t in terms:
        for u in (t.terms if isinstance(t, Add) else (t,)):
            if isinstance(u, Num):
                constant += u.value
                if slot is None:
                    slot = len(flat)
            else:
                flat.append(u)
    if constant:
        flat.insert(slot, Num(constant))
    if not flat:
        return ZERO
    if len(flat) == 1:
        return flat[0]
    return Add(tuple(flat))


def mul(*factors: Term) -> Term:
    """Flattened product; numbers merged in front; a zero factor gives zero; ones dropped."""
    flat: list[Term] = []
    coeff = Fraction(1)
    for f in factors:
        for g in (f.factors if isinstance(f, Mul) else (f,)):
            if isinstance(g, Num):
                coeff *= g.value
            else:
                flat.append(g)
    if coeff == 0:
        return ZERO
    if coeff != 1:
        flat.insert(0, Num(coeff))
    if not flat:
        return ONE
    if len(flat) == 1:
        return flat[0]
    return Mul(tuple(flat))


def neg(term: Term) -> Term:
    return mul(MINUS_ONE, term)


def sub(a: Term, b: Term) -> Term:
    return add(a, neg(b))


def power(base: Term, exponent: Term) -> Term:
    if isinstance(exponent, Num):
        if exponent.value == 0:
            return ONE
        if exponent.value == 1:
            return base
        if isinstance(base, Num) and exponent.value.denominator == 1:
            if base.value == 0 and exponent.value < 0:
                return Pow(base, exponent)
            return Num(base.value ** int(exponent.value))
        if isinstance(base, Pow) and isinstance(base.exponent, Num) and exponent.value.denominator == 1:
            return power(base.base, Num(base.exponent.value * exponent.value))
        if (isinstance(base, Func) and base.name == "sqrt" and base.order == 0
                and not base.arg.free and not base.arg.tensor_names
                and exponent.value.denominator == 1 and exponent.value % 2 == 0):
            # sqrt(2)^2 = 2 for a constant; sqrt(v + eps)^2 stays, so that (x - mu) /
            # sqrt(v + eps) can still fold into a normalised tensor (layer norm's Y)
            return power(base.arg, Num(exponent.value / 2))
        if isinstance(base, Mul) and exponent.value.denominator == 1:
            # (a b)^n = a^n b^n: keeps one flat list of factors for cancellation
            return mul(*(power(f, exponent) for f in base.factors))
    return Pow(base, exponent)


def div(a: Term, b: Term) -> Term:
    return mul(a, power(b, MINUS_ONE))


def make_sum(indices: Iterable[Index], body: Term) -> Term:
    """``sum_{indices} body``, keeping only indices the body depends on.

    A summed index the body does not mention multiplies it by the dim's size.
    """
    indices = tuple(indices)
    if not indices:
        return body
    if body == ZERO:
        return ZERO
    used = tuple(i for i in indices if i in body.free)
    unused = [i for i in indices if i not in body.free]
    inner = body
    if isinstance(body, Sum):
        used = used + body.indices
        inner = body.body
    out = Sum(used, inner) if used else inner
    if unused:
        out = mul(*(DimSize(i.dim) for i in unused), out)
    return out


def split_coeff(term: Term) -> tuple[Fraction, tuple[Term, ...]]:
    """A term as numeric coefficient and the remaining factors."""
    if isinstance(term, Num):
        return term.value, ()
    if isinstance(term, Mul):
        if isinstance(term.factors[0], Num):
            return term.factors[0].value, term.factors[1:]
        return Fraction(1), term.factors
    return Fraction(1), (term,)


def factors_of(term: Term) -> tuple[Term, ...]:
    return term.factors if isinstance(term, Mul) else (term,)


def base_exp(factor: Term) -> tuple[Term, Fraction]:
    """A factor as (base, numeric exponent)."""
    if isinstance(factor, Pow) and isinstance(factor.exponent, Num):
        return factor.base, factor.exponent.value
    return factor, Fraction(1)


# --- traversal and substitution ------------------------------------------------------------

def map_children(term: Term, fn: Callable[[Term], Term]) -> Term:
    kids = term.children()
    if not kids:
        return term
    new = [fn(k) for k in kids]
    for a, b in zip(new, kids):
        if a is not b:
            return term.rebuild(tuple(new))
    return term


def rename_indices(term: Term, mapping: Mapping[Index, Index]) -> Term:
    """Replace free indices by ``mapping``, renaming bound indices that would be captured.
    A value may be an ``Affine`` (``l`` by ``u+k``): positions become affine expressions."""
    if not mapping:
        return term
    mapping = {k: v for k, v in mapping.items() if k != v and k in term.free}
    if not mapping:
        return term
    return _rename(term, mapping)


def _rename(term: Term, mapping: Mapping[Index, Index]) -> Term:
    if not (term.free & mapping.keys()):
        return term
    if isinstance(term, Tensor):
        return Tensor(term.name, tuple(_substitute_position(i, mapping) for i in term.indices))
    if isinstance(term, Grad):
        return Grad(term.of, term.wrt, tuple(_substitute_position(i, mapping) for i in term.indices))
    if isinstance(term, MatrixFunc):
        return MatrixFunc(term.name, term.matrix,
                          tuple(_substitute_position(i, mapping) for i in term.indices))
    if isinstance(term, Delta):
        return Delta(_substitute_position(term.a, mapping), _substitute_position(term.b, mapping))
    if isinstance(term, IndexValue):
        return IndexValue(_substitute_position(term.value, mapping))
    if isinstance(term, Deriv):
        wrt = _rename(term.wrt, mapping)
        return Deriv(_rename(term.expr, mapping), wrt)
    if isinstance(term, (Sum, Arg)):
        inner_map = {k: v for k, v in mapping.items() if k not in term.indices}
        targets = {i.name for v in inner_map.values() for i in _free_of((v,))}
        indices, body = rename_bound(term, targets, targets | {k.name for k in inner_map})
        out = _rebind(term, indices, _rename(body, inner_map))
        if isinstance(term, Arg):
            out = Arg(term.kind, _substitute_position(term.at, mapping), out.over, out.body)
        return out
    return map_children(term, lambda c: _rename(c, mapping))


def rename_bound(s: Sum, clashing: set[str] | frozenset[str], avoid=frozenset()):
    """The indices and body of ``s`` with every bound index named in ``clashing`` renamed to
    a fresh name (not in ``clashing``, ``avoid`` or the body)."""
    clash = [i for i in s.indices if i.name in clashing]
    if not clash:
        return s.indices, s.body
    taken = set(clashing) | set(avoid) | s.body.all_index_names()
    mapping = {}
    for i in clash:
        mapping[i] = Index(fresh_name(i.name, taken), i.dim)
        taken.add(mapping[i].name)
    return tuple(mapping.get(i, i) for i in s.indices), _rename(s.body, mapping)


def freshen_bound(term: Term, avoid: set[str]) -> Term:
    """Rename every index bound inside ``term`` whose name is in ``avoid``."""
    if isinstance(term, (Sum, Arg)):
        indices, body = rename_bound(term, avoid)
        return _rebind(term, indices, freshen_bound(body, avoid))
    return map_children(term, lambda c: freshen_bound(c, avoid))


def unshadow(term: Term, bound: frozenset[str] = frozenset()) -> Term:
    """Rename a sum's index where it repeats the index of an enclosing sum
    (``sum_m (a_m - sum_m b_m)`` becomes ``... sum_m2 b_m2``): the same value, and text that
    the parser accepts."""
    if isinstance(term, (Sum, Arg)):
        indices, body = rename_bound(term, bound)
        new_body = unshadow(body, bound | {i.name for i in indices})
        if indices == term.indices and new_body is term.body:
            return term
        return _rebind(term, indices, new_body)
    if not any(isinstance(t, Sum) for t in term.children()) and not term.children():
        return term
    return map_children(term, lambda c: unshadow(c, bound))


def fresh_name(base: str, avoid: set[str]) -> str:
    """A new index name near ``base`` (``k`` -> ``k2``) that is not in ``avoid``."""
    return naming.fresh_variant(base, avoid)


def replace(term: Term, fn: Callable[[Term], Term | None]) -> Term:
    """Top-down replacement: where ``fn`` returns a term, use it and do not descend."""
    new = fn(term)
    if new is not None:
        return new
    return map_children(term, lambda c: replace(c, fn))


def depends_on(term: Term, tensor_name: str) -> bool:
    return tensor_name in term.tensor_names


def contains(term: Term, cls: type) -> bool:
    return any(isinstance(t, cls) for t in term.walk())


# --- canonical form: equality up to renaming of bound indices -----------------------------

def canonical(term: Term) -> Term:
    """A representative of ``term`` up to renaming of bound indices and order of commuting
    factors and terms.  Two terms are equal as index expressions when their canonical forms
    are equal.  Cached on the (immutable) term."""
    cached = term.__dict__.get("_canonical")
    if cached is None:
        cached = _canon(term, itertools.count())
        term.__dict__["_canonical"] = cached
    return cached


@functools.lru_cache(maxsize=1 << 16)
def _shape_key(term: Term, bound: frozenset = frozenset()) -> str:
    """A sort key that ignores the names of indices bound inside the term (``bound``)."""
    if isinstance(term, (Tensor, Grad, MatrixFunc)):
        head = (term.name if isinstance(term, Tensor) else f"d{term.of}/d{term.wrt}"
                if isinstance(term, Grad) else f"{term.name}({term.matrix})")
        return head + "[" + ",".join(_index_key(i, bound) for i in term.indices) + "]"
    if isinstance(term, Delta):
        return "delta(" + _index_key(term.a, bound) + "," + _index_key(term.b, bound) + ")"
    if isinstance(term, IndexValue):
        return "value(" + _index_key(term.value, bound) + ")"
    if isinstance(term, Sum):
        inner = bound | frozenset(term.indices)
        return "Sum(" + ",".join(i.dim for i in term.indices) + ";" + _shape_key(term.body, inner) + ")"
    if isinstance(term, (Add, Mul)):
        parts = sorted(_shape_key(c, bound) for c in term.children())
        return type(term).__name__ + "(" + ",".join(parts) + ")"
    kids = term.children()
    if kids:
        own = type(term).__name__ + repr(tuple(v for v in term._key() if not isinstance(v, Term)))
        return own + "(" + ",".join(_shape_key(c, bound) for c in kids) + ")"
    return repr(term)


def _index_key(i, bound: frozenset) -> str:
    if isinstance(i, Affine):
        return ("(" + "".join(f"{c:+d}*{_index_key(j, bound)}" for c, j in i.terms)
                + f"{i.offset:+d}:{i.dim})")
    return "_" + i.dim if i in bound else i.name


def _canon(term: Term, counter) -> Term:
    if isinstance(term, Sum):
        ordered = _binding_order(term)
        mapping = {b: Index(f"_{next(counter)}", b.dim) for b in ordered}
        body = _rename(term.body, mapping)
        return Sum(tuple(sorted(mapping.values())), _canon(body, counter))
    if isinstance(term, Add):
        kids = sorted(term.terms, key=_shape_key)
        return Add(tuple(_canon(k, counter) for k in kids))
    if isinstance(term, Mul):
        kids = list(term.factors)
        head = [k for k in kids if isinstance(k, Num)]
        rest = sorted((k for k in kids if not isinstance(k, Num)), key=_shape_key)
        return Mul(tuple(head + [_canon(k, counter) for k in rest]))
    return map_children(term, lambda c: _canon(c, counter))


def _binding_order(s: Sum) -> list[Index]:
    """Bound indices of ``s`` in order of first appearance in a canonical traversal."""
    seen: list[Index] = []
    bound = set(s.indices)

    def visit(t: Term):
        if isinstance(t, (Tensor, Grad, Delta, IndexValue, MatrixFunc)):
            positions = (t.indices if isinstance(t, (Tensor, Grad, MatrixFunc))
                         else (t.a, t.b) if isinstance(t, Delta) else (t.value,))
            for p in positions:
                for i in ((p,) if isinstance(p, Index) else (j for _, j in p.terms)):
                    if i in bound and i not in seen:
                        seen.append(i)
        elif isinstance(t, (Add, Mul)):
            for c in sorted(t.children(), key=_shape_key):
                visit(c)
        else:
            for c in t.children():
                visit(c)

    visit(s.body)
    for i in s.indices:
        if i not in seen:
            seen.append(i)
    return seen


def same(a: Term, b: Term) -> bool:
    """Equal up to renaming of bound indices and reordering of sums and products."""
    if a == b:
        return True
    if (type(a) is not type(b) or a.size != b.size or a.free != b.free
            or a.tensor_names != b.tensor_names):
        return False
    return canonical(a) == canonical(b)
