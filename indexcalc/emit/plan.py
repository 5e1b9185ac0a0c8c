"""The contraction planner: an index expression as a tree of array operations with axes.

It decides, once for both users, what every evaluation of an index expression must decide:
the axes of each subterm and their order (an addition takes the order of its widest term,
a product the order of first appearance), which indices a product sums (einsum), where a
tensor is read on its diagonal (``X[i,i]``), and which summed indices the body does not use
(a factor of the dim's size).  The numeric check executes a plan directly with NumPy
(``check.numeric``); the NumPy backend prints it as code (``emit.numpy``).  So the forward
pass the check differentiates never runs printed code, and the logic exists once.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
from itertools import permutations

from ..terms import (
    IN_RANGE, Affine, Arg, IndexValue, MatrixFunc, as_extreme, linear,
    Add, Bracket, Constant, Delta, DimSize, Func, Grad, Index, Mul, Num, Pow, Sum, Tensor, Term, add, make_sum, mul,
)


@dataclass(frozen=True)
class Plan:
    """An array whose axes follow ``axes``."""

    axes: tuple[Index, ...]


@dataclass(frozen=True)
class Read(Plan):
    """A tensor (``grad=False``) or upstream gradient read at ``indices``; a repeated index
    reads a diagonal, so ``axes`` are the indices without repeats."""

    name: str
    indices: tuple[Index, ...]
    grad: bool = False

    @property
    def diagonal(self) -> bool:
        return len(self.axes) != len(self.indices)


@dataclass(frozen=True)
class Arange(Plan):
    """The integer values of an index expression ``sum_m c_m i_m + offset`` over ``axes``
    (the i_m, coefficients in ``coefficients``): ``u+k`` is arange(U)[:, None] + arange(K)."""

    coefficients: tuple[int, ...]
    offset: int

    @property
    def nonnegative(self) -> bool:
        """Never below 0 (no negative coefficient or offset): only the upper end can clip."""
        return self.offset >= 0 and all(c >= 0 for c in self.coefficients)

    def widened(self, axes: tuple[Index, ...]) -> "Arange":
        """The same values over ``axes`` (a superset of its own), to broadcast with others."""
        own = dict(zip(self.axes, self.coefficients))
        return Arange(axes, tuple(own.get(i, 0) for i in axes), self.offset)


@dataclass(frozen=True)
class Gather(Plan):
    """A tensor read where some positions are index expressions (``x[n, c, u+k]``): the
    entries there, 0 outside the tensor's range (zero padding).  The array's positions are
    read in the order ``plain`` then ``shifted``; a plain position's axis is its index, the
    shifted ones together give the axes of their indices (``union``, in order of first
    appearance); each ``Arange`` is over its own position's indices.  ``raw`` are the axes before repeated indices are read on their diagonal."""

    name: str
    grad: bool
    plain: tuple[int, ...]
    shifted: tuple[tuple[int, Arange, str], ...]  # (position, its values, the position's dim)
    raw: tuple[Index, ...]
    #: Per shifted position: proven in range (``Affine.inside``), so read with no padding.
    inside: tuple[bool, ...]

    @property
    def union(self) -> tuple[Index, ...]:
        return self.raw[len(self.plain):]

    @property
    def separate(self) -> bool:
        """Do the shifted positions use disjoint indices (x[n, c, i+a, j+b]), so that each
        can be read along its own axis in turn?"""
        return sum(len(a.axes) for _, a, _ in self.shifted) == len(self.union)

    @property
    def order(self) -> tuple[int, ...]:
        return self.plain + tuple(k for k, _, _ in self.shifted)

    @property
    def rank(self) -> int:
        """The number of axes of the tensor read."""
        return len(self.plain) + len(self.shifted)


@dataclass(frozen=True)
class ArgIndex(Plan):
    """The first index along ``over`` where ``body`` is largest (``kind`` "max") or
    smallest: ``np.argmax(body, axis=...)``, over the body's other axes."""

    kind: str
    over: Index
    body: Plan


@dataclass(frozen=True)
class Reduce(Plan):
    """``max_d body`` / ``min_d body``: ``np.max(body, axis=...)``."""

    kind: str
    over: Index
    body: Plan


@dataclass(frozen=True)
class MatrixValue(Plan):
    """``inv(A)`` read at ``indices`` (a repeated index reads its diagonal), or the number
    ``det(A)`` / ``logdet(A)``."""

    fn: str
    matrix: str
    indices: tuple[Index, ...]


@dataclass(frozen=True)
class Number(Plan):
    value: Fraction


@dataclass(frozen=True)
class DimValue(Plan):
    dim: str


@dataclass(frozen=True)
class ConstantValue(Plan):
    """A named constant of the language (``pi``)."""

    name: str


@dataclass(frozen=True)
class Eye(Plan):
    """delta_ab for a != b: the identity of the dim, axes (a, b)."""

    dim: str


@dataclass(frozen=True)
class Call(Plan):
    """An elementwise function (a builtin, or a declared one's ``order``-th derivative)."""

    fn: str
    order: int
    arg: Plan


@dataclass(frozen=True)
class Compare(Plan):
    """An Iverson bracket ``[a op b]``: 1.0 where the comparison holds, else 0.0, over the
    axes of both sides."""

    op: str
    a: Plan
    b: Plan


@dataclass(frozen=True)
class Select(Plan):
    """``[c] then + [not c] otherwise`` as one choice per entry (``np.where``): the branch
    not taken is not multiplied by 0, so one undefined there (``log`` of a negative, in
    ``where(x > 0, log(x), 0)``) does not make the sum NaN."""

    test: Compare
    then: Plan
    otherwise: Plan


@dataclass(frozen=True)
class Raise(Plan):
    """``base ** exponent`` with an index-free exponent."""

    base: Plan
    exponent: Plan


@dataclass(frozen=True)
class Total(Plan):
    """A sum of terms, each arranged (transposed, broadcast) to ``axes``."""

    terms: tuple[Plan, ...]


@dataclass(frozen=True)
class Product(Plan):
    """A product of ``factors`` summed over ``bound``; ``unused`` are dims of summed indices
    that no factor mentions (each multiplies the result by its size)."""

    factors: tuple[Plan, ...]
    bound: tuple[Index, ...]
    unused: tuple[str, ...] = ()


def plan(term: Term, fast: bool = False) -> Plan:
    """The plan of ``term`` (cached on the immutable term).

    ``fast`` plans for the generated code: with the rewrites that lower the order of the
    work (``_split_exp``, ``_distribute``).  The numeric check evaluates the literal plan, so
    the forward pass it differentiates is the definitions as written, and a rewrite that
    were wrong would show as a failed check of the generated code.
    """
    key = "_fast_plan" if fast else "_plan"
    cached = term.__dict__.get(key)
    if cached is None:
        cached = _plan(term, fast)
        term.__dict__[key] = cached
    return cached


def _split_exp(factor: Term, bound: tuple[Index, ...]) -> tuple[Term, ...]:
    """``exp(a + b + ...)`` as ``exp(a) * exp(b) * ...`` where that lowers the order of the
    work: inside a sum over some of its indices, with the terms on different index sets.

    ``sum_{i,j,k} exp(u_i + A_ij + B_jk)`` would build an S^3 array; as the product
    ``exp(u_i + A_ij) exp(B_jk)`` it is an einsum the contraction order makes O(S^2).  Each
    term joins the first group (widest first) whose indices include its own, so no exp is
    taken over more axes than one of the terms already has.
    """
    if not (isinstance(factor, Func) and factor.name == "exp" and factor.order == 0
            and isinstance(factor.arg, Add) and bound
            and any(i in bound for i in factor.free)):
        return (factor,)
    groups: list[tuple[frozenset, list[Term]]] = []
    for t in sorted(factor.arg.terms, key=lambda t: -len(t.free)):
        free = frozenset(t.free)
        for indices, members in groups:
            if free <= indices:
                members.append(t)
                break
        else:
            groups.append((free, [t]))
    if len(groups) == 1:
        return (factor,)
    return tuple(Func("exp", members[0] if len(members) == 1 else Add(tuple(members)))
                 for _, members in groups)


def _distribute(term: Sum) -> Term | None:
    """``sum_B f (a + b)`` as ``sum_B f a + sum_B f b`` where the terms of ``a + b`` are on
    different indices and it has a summed one; else None.

    Undistributed, ``a + b`` is an array over all its indices, contracted after: for an RBF
    kernel's gradient ``sum_m G_im K_im (Z_mj - X_ij)`` an N x M x D array.  Distributed,
    each part is a contraction of its own (``(G K) Z`` a matrix product, ``X_ij sum_m G_im
    K_im`` a row sum).  A square ``(a + b)^2`` of such a sum is expanded first
    (``sum_d (X_nd - Z_md)^2 = sum_d X_nd^2 + sum_d Z_md^2 - 2 sum_d X_nd Z_md``), as the
    textbook computes squared distances.
    """
    bound = frozenset(term.indices)
    factors = list(term.body.factors if isinstance(term.body, Mul) else (term.body,))
    for k, f in enumerate(factors):
        terms = _spread_terms(f, bound)
        if terms is None:
            continue
        rest = factors[:k] + factors[k + 1:]
        # a factor free of the summed indices multiplies the sum once, not every part
        outside = [g for g in rest if not bound & frozenset(g.free)]
        inside = [g for g in rest if bound & frozenset(g.free)]
        return mul(*outside, add(*(make_sum(term.indices, mul(*inside, t)) for t in terms)))
    return None


#: The most terms a sum may have to be distributed (a square of k terms makes k(k+1)/2).
MAX_SPREAD = 4


def _spread_terms(factor: Term, bound: frozenset) -> tuple[Term, ...] | None:
    """The terms of ``factor`` (a sum, or the square of one) if they are on different
    indices, some summed (so the sum would be an array over all of them), else None."""
    square = (isinstance(factor, Pow) and isinstance(factor.base, Add)
              and factor.exponent == Num(Fraction(2)))
    inner = factor.base if square else factor
    if not isinstance(inner, Add):
        return None
    frees = [t.free for t in inner.terms]
    union = frozenset().union(*frees)
    if not union & bound or all(f == union for f in frees) or len(frees) > MAX_SPREAD:
        return None
    if not square:
        return inner.terms
    ts = inner.terms
    return tuple(mul(t, t) for t in ts) + tuple(
        mul(Num(Fraction(2)), ts[a], ts[b]) for a in range(len(ts)) for b in range(a + 1, len(ts)))


def _hadamard_first(factors: tuple[Plan, ...]) -> tuple[Plan, ...]:
    """Factors on the same axes multiplied first, as one elementwise product.

    In ``sum_m G_nm K_nm Z_md`` the product ``G K`` is a step of any contraction order;
    as a factor of its own it is one array that two contractions of a gradient can share
    (``(G K) Z`` and ``rowsum(G K) X``).  Factors are left alone where they are all on
    the same axes (a plain dot product, which einsum does in one pass).
    """
    groups: dict[frozenset, list[int]] = {}  # positions of the factors on each axis set
    for k, f in enumerate(factors):
        if f.axes:
            groups.setdefault(frozenset(f.axes), []).append(k)
    if len(groups) < 2 or all(len(g) < 2 for g in groups.values()):
        return factors
    out: list[Plan] = []
    for k, f in enumerate(factors):
        group = groups.get(frozenset(f.axes), []) if f.axes else []
        if len(group) < 2:
            out.append(f)
        elif k == group[0]:
            out.append(Product(f.axes, tuple(factors[j] for j in group), ()))
    return tuple(out)


def _reduce_first(factors: tuple[Plan, ...], bound: tuple[Index, ...]
                  ) -> tuple[tuple[Plan, ...], tuple[Index, ...]]:
    """Each summed index that only one factor has, summed out of that factor first.

    ``sum_{j,k} a_ij b_jk`` is ``sum_j a_ij (sum_k b_jk)``: a row sum, then a product with a
    vector, where a contraction of both would carry ``k`` through it (and a gradient that
    needs ``sum_k b_jk`` twice, as a CRF's marginals and its partition function do, gets
    it as one shared array).  The factors and the indices still summed over them.
    """
    if sum(1 for f in factors if f.axes) < 2:
        return factors, bound
    out: list[Plan] = []
    alone: set[Index] = set()
    for k, f in enumerate(factors):
        own = tuple(i for i in f.axes if i in bound and not any(
            i in g.axes for j, g in enumerate(factors) if j != k))
        if own:
            alone.update(own)
            f = Product(tuple(i for i in f.axes if i not in own), (f,), own)
        out.append(f)
    return tuple(out), tuple(i for i in bound if i not in alone)


def _sum_of_the_rest(factors: tuple[Plan, ...], axes: tuple[Index, ...],
                     bound: tuple[Index, ...], unused: tuple[str, ...]
                     ) -> tuple[tuple[Plan, ...], tuple[Index, ...]] | None:
    """``f_i / sum_i f_i`` with the normaliser summed from the array it normalises.

    The marginals of a CRF, ``exp(u_i + A_ij + v_j) beta_j / sum_{i,j} exp(...) beta_j``,
    contract the same factors twice, once keeping ``i, j`` and once summing them; the
    textbook forms the numerator and sums it.  Where a factor (or a power of one) is a
    contraction of exactly the product's other factors, under a renaming of its summed
    indices, the product becomes those factors (one array) times that array's sum.  The
    new factors and what is still summed; None where nothing is shared.
    """
    arrays = tuple(f for f in factors if f.axes)
    if not arrays or len(arrays) > 4:
        return None
    if len(arrays) == 1 and isinstance(arrays[0], Product) and not bound:
        rest = arrays[0]  # the numerator is a contraction of its own
    else:
        rest = Product(axes, arrays, bound, unused)
    for k, f in enumerate(factors):
        inner = f.base if isinstance(f, Raise) and not f.exponent.axes else f
        if (f.axes or not isinstance(inner, Product) or inner.unused != rest.unused
                or not inner.bound):
            continue
        mine, theirs = _summed_alone(inner.factors), _summed_alone(rest.factors)
        if len(mine) != len(theirs):
            continue
        for order in permutations(theirs):
            renaming = _renaming(mine, order)
            if (renaming is not None and len(set(renaming.values())) == len(renaming)
                    and all(renaming.get(i, i) == i for i in inner.axes)):
                break
        else:
            continue
        total = Product(inner.axes, (rest,), tuple(i for i in rest.axes
                                                   if i not in inner.axes))
        f = Raise((), total, f.exponent) if f is not inner else total
        scalars = tuple(g for j, g in enumerate(factors) if not g.axes and j != k)
        return (*scalars, f, rest), ()
    return None


def _summed_alone(factors: tuple[Plan, ...]) -> tuple[Plan, ...]:
    """``factors`` with the sums ``_reduce_first`` took out of them undone: two products of
    the same factors compare equal whichever indices each summed alone."""
    return tuple(f.factors[0] if isinstance(f, Product) and len(f.factors) == 1
                 and f.bound and not f.unused else f for f in factors)


def _renaming(xs, ys, mapping: dict | None = None) -> dict | None:
    """The renaming of indices that turns ``xs`` into ``ys`` (plans, or tuples of them),
    consistent across them, or None if they differ otherwise."""
    mapping = {} if mapping is None else mapping
    if isinstance(xs, Index) and isinstance(ys, Index):
        if xs.dim != ys.dim or mapping.setdefault(xs, ys) != ys:
            return None
        return mapping
    if isinstance(xs, tuple) and isinstance(ys, tuple):
        if len(xs) != len(ys):
            return None
        for x, y in zip(xs, ys):
            if _renaming(x, y, mapping) is None:
                return None
        return mapping
    if isinstance(xs, Plan) and isinstance(ys, Plan):
        if type(xs) is not type(ys):
            return None
        return _renaming(tuple(getattr(xs, f.name) for f in fields(xs)),
                         tuple(getattr(ys, f.name) for f in fields(ys)), mapping)
    return mapping if xs == ys else None


def _select(term: Add, fast: bool) -> Plan | None:
    """``[c] p + [not c] q + rest`` as ``Select(c, p, q) + rest``, else None."""
    terms = list(term.terms)
    for i, t in enumerate(terms):
        test, then = _bracketed(t)
        if test is None:
            continue
        for j in range(i + 1, len(terms)):
            other, otherwise = _bracketed(terms[j])
            if other is None or other != test.negated():
                continue
            parts = [plan(x, fast) for x in (test, then, otherwise)]
            chosen = Select(_widest_first(parts), *parts)
            rest = terms[:i] + terms[i + 1:j] + terms[j + 1:]
            if not rest:
                return chosen
            others = plan(add(*rest), fast)
            return Total(_widest_first([chosen, others]), (chosen, others))
    return None


def _bracketed(term: Term) -> tuple[Bracket | None, Term | None]:
    """A bracket factor of ``term`` and the product of its other factors."""
    factors = term.factors if isinstance(term, Mul) else (term,)
    for k, f in enumerate(factors):
        if isinstance(f, Bracket) and f.op != IN_RANGE:
            return f, mul(*factors[:k], *factors[k + 1:])
    return None, None


def _widest_first(parts) -> tuple[Index, ...]:
    """The axes of a sum of ``parts``: the widest part's order, then the others' new axes."""
    order: list[Index] = []
    for p in sorted(parts, key=lambda p: -len(p.axes)):
        order.extend(i for i in p.axes if i not in order)
    return tuple(order)


def _arange(form, axes: tuple[Index, ...] | None = None) -> Arange:
    coeffs, offset = form
    axes = tuple(coeffs) if axes is None else axes
    return Arange(axes, tuple(coeffs.get(i, 0) for i in axes), offset)


def _extreme(term: Sum) -> Reduce | None:
    """``sum_d [d == argmax_d' e(d')] e(d)`` is ``max_d e``: one reduction in the code."""
    parts = as_extreme(term)
    if parts is None:
        return None
    kind, d, value = parts
    body = plan(value, True)
    return Reduce(tuple(i for i in body.axes if i != d), kind, d, body)


def _gather(name: str, grad: bool, positions) -> Gather:
    plain = tuple(k for k, p in enumerate(positions) if isinstance(p, Index))
    forms = {k: linear(p) for k, p in enumerate(positions) if isinstance(p, Affine)}
    union = tuple(dict.fromkeys(i for k in forms for i in forms[k][0]))
    # each position's values over its own indices, in the order of ``union``
    shifted = tuple((k, _arange(forms[k], tuple(i for i in union if i in forms[k][0])),
                     positions[k].dim) for k in forms)
    raw = tuple(positions[k] for k in plain) + union
    inside = tuple(positions[k].inside for k in forms)
    return Gather(tuple(dict.fromkeys(raw)), name, grad, plain, shifted, raw, inside)


def _plan(term: Term, fast: bool) -> Plan:
    if isinstance(term, Num):
        return Number((), term.value)
    if isinstance(term, DimSize):
        return DimValue((), term.name)
    if isinstance(term, Constant):
        return ConstantValue((), term.name)
    if isinstance(term, (Tensor, Grad)):
        name = term.name if isinstance(term, Tensor) else term.array_name
        if any(isinstance(p, Affine) for p in term.indices):
            return _gather(name, isinstance(term, Grad), term.indices)
        return Read(tuple(dict.fromkeys(term.indices)), name, term.indices, isinstance(term, Grad))
    if isinstance(term, Delta):
        if term.a == term.b:
            return Number((), Fraction(1))
        if term.plain and term.a.dim == term.b.dim:
            return Eye((term.a, term.b), term.a.dim)
        a, b = _arange(linear(term.a)), _arange(linear(term.b))
        return Compare(_widest_first([a, b]), "==", a, b)
    if isinstance(term, IndexValue):
        return _arange(linear(term.value))
    if isinstance(term, MatrixFunc):
        if not all(isinstance(i, Index) for i in term.indices):
            raise TypeError("no plan for inv(A) at shifted positions")
        return MatrixValue(tuple(dict.fromkeys(term.indices)), term.name, term.matrix,
                           term.indices)
    if isinstance(term, Arg):  # [at == argmax_over body]
        body = plan(term.body, fast)
        choice = ArgIndex(tuple(i for i in body.axes if i != term.over), term.kind, term.over, body)
        at = _arange(linear(term.at))
        return Compare(_widest_first([choice, at]), "==", choice, at)
    if fast and isinstance(term, Sum):
        extreme = _extreme(term)
        if extreme is not None:
            return extreme
    if isinstance(term, Func):
        arg = plan(term.arg, fast)
        return Call(arg.axes, term.name, term.order, arg)
    if isinstance(term, Pow):
        base = plan(term.base, fast)
        return Raise(base.axes, base, plan(term.exponent, fast))
    if isinstance(term, Bracket) and term.op == IN_RANGE:  # [0 <= a < b]
        a, b = plan(term.a, fast), plan(term.b, fast)
        upper = Compare(_widest_first([a, b]), "<", a, b)
        if isinstance(a, Arange) and a.nonnegative:
            return upper
        zero = Number((), Fraction(0))
        return Product(upper.axes, (Compare(a.axes, ">=", a, zero), upper), ())
    if isinstance(term, Bracket):
        a, b = plan(term.a, fast), plan(term.b, fast)
        return Compare(_widest_first([a, b]), term.op, a, b)
    if isinstance(term, Add):
        chosen = _select(term, fast)
        if chosen is not None:
            return chosen
        parts = tuple(plan(t, fast) for t in term.terms)
        return Total(_widest_first(parts), parts)
    if fast and isinstance(term, Sum):
        distributed = _distribute(term)
        if distributed is not None:
            return plan(distributed, fast)
    if isinstance(term, Mul):
        test, then = _bracketed(term)
        if test is not None:  # [c] p: p where c holds, else 0 (never p * 0)
            parts = [plan(test, fast), plan(then, fast), Number((), Fraction(0))]
            return Select(_widest_first(parts), *parts)
    if isinstance(term, (Mul, Sum)):
        bound = term.indices if isinstance(term, Sum) else ()
        body = term.body if isinstance(term, Sum) else term
        parts = body.factors if isinstance(body, Mul) else (body,)
        if fast:
            parts = tuple(f for g in parts for f in _split_exp(g, bound))
        factors = tuple(plan(f, fast) for f in parts)
        if fast and bound:
            factors, bound = _reduce_first(_hadamard_first(factors), bound)
        seen = tuple(dict.fromkeys(i for f in factors for i in f.axes))
        axes = tuple(i for i in seen if i not in bound)
        unused = tuple(i.dim for i in bound if i not in seen)
        shared = _sum_of_the_rest(factors, axes, tuple(bound), unused) if fast else None
        if shared is not None:
            return Product(axes, *shared)
        return Product(axes, factors, tuple(bound), unused)
    raise TypeError(f"no plan for {type(term).__name__}")
