"""The rewrite rules: one small function per textbook step, in one ordered table.

A rule looks at one node and returns its replacement, or None when it does not apply.  The
engine applies a rule at every outermost place it fits (one recorded step, as a hand
derivation applies "the derivative of every entry" at once), then starts again from the top
of ``RULES``.  Rules never record themselves.

Differentiation rules act on ``Deriv`` nodes and come first, so a derivative is finished
before the result is simplified.  The simplification rules that follow each state the
identity they apply in their docstring; ``factor`` and ``tidy_sign`` come last and never
undo an earlier rule (they do not pull a delta's sum apart again).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from ..functions import FUNCTIONS
from .matching import fold_in_product, match
from ..problem import Problem, linear_combination
from ..terms import (
    IN_RANGE, ONE, ZERO, Add, Affine, Arg, Bracket, Constant, Delta, DimSize, Deriv, Func, Grad,
    Index, IndexValue, MatrixFunc, Mul, Num, Pow, Sum, Tensor, Term, in_range, linear, position,
    add, base_exp, depends_on, div, factors_of, make_sum, mul, neg, num, power,
    rename_indices, same, split_coeff, sub, canonical, freshen_bound, contains, replace,
    fresh_name,
)


@dataclass(frozen=True)
class Context:
    """What a rule may know besides the node: the problem and the sums around the node."""

    problem: Problem
    bound: frozenset[Index] = frozenset()
    #: In a partial derivative, defined tensors other than the one differentiated are
    #: independent variables (the chain rule over definitions accounts for them).
    partial: bool = True
    #: local derivatives derived in earlier blocks, d Y[s,n] / d W[i,j] -> its result, that
    #: a total derivative may reuse: (target, result) pairs (see ``known_derivative``)
    known: tuple[tuple[Term, Term], ...] = ()

    def inside(self, indices) -> "Context":
        return Context(self.problem, self.bound | frozenset(indices), self.partial, self.known)


@dataclass(frozen=True)
class Rule:
    """A named rewrite.  Its identity, shown as each step's reason, is written once: the
    first paragraph of the rule function's docstring, unless given here."""

    name: str
    apply: Callable[[Term, Context], Term | None]
    identity: str = ""
    phase: str = "simplify"  # "differentiate" | "simplify" | "tidy"
    reads_bound: bool = False  # whether it looks at the sums around the node (ctx.bound)
    #: whether the rule can fire at all in a problem (None: always); a rule that cannot is
    #: not searched for (the search visits every changed node once per rule and step)
    needs: Callable[[Problem], bool] | None = None

    def __post_init__(self):
        if not self.identity:
            first = (self.apply.__doc__ or "").strip().split("\n\n")[0]
            object.__setattr__(self, "identity", " ".join(first.split()).rstrip("."))


# --- differentiation ---------------------------------------------------------------------

def _deriv_parts(term: Term):
    return (term.expr, term.wrt) if isinstance(term, Deriv) else (None, None)


def _dep(term: Term, wrt: Tensor, ctx: Context) -> bool:
    """Does ``term`` depend on ``wrt``?  In a partial derivative only direct mentions
    count; in a total derivative also mentions of tensors defined from ``wrt``."""
    if ctx.partial:
        return depends_on(term, wrt.name)
    return any(name == wrt.name or wrt.name in ctx.problem.reaches(name)
               for name in term.tensor_names)


def linearity(term: Term, ctx: Context) -> Term | None:
    """d(a + b) = da + db;  d(sum_m a) = sum_m da;  d(c a) = c da for c constant."""
    expr, wrt = _deriv_parts(term)
    if expr is None:
        return None
    pushed = _push_linear(expr, wrt, ctx)
    return None if isinstance(pushed, Deriv) and pushed.expr is expr else pushed


def _push_linear(expr: Term, wrt: Tensor, ctx: Context) -> Term:
    """Move ``d/d wrt`` inside sums and past constant factors, as far as it goes."""
    if isinstance(expr, Add):
        return add(*(_push_linear(t, wrt, ctx) if _dep(t, wrt, ctx) else ZERO for t in expr.terms))
    if isinstance(expr, Sum):
        return make_sum(expr.indices, _push_linear(expr.body, wrt, ctx))
    if isinstance(expr, Mul):
        dependent = [f for f in expr.factors if _dep(f, wrt, ctx)]
        if len(dependent) == 1:
            return mul(*(_push_linear(f, wrt, ctx) if _dep(f, wrt, ctx) else f for f in expr.factors))
    return Deriv(expr, wrt)


def product_rule(term: Term, ctx: Context) -> Term | None:
    """d(a b) = da b + a db  (for products without a dependent denominator)."""
    expr, wrt = _deriv_parts(term)
    if not isinstance(expr, Mul):
        return None
    dependent = [k for k, f in enumerate(expr.factors) if _dep(f, wrt, ctx)]
    if len(dependent) < 2:
        return None
    if any(base_exp(expr.factors[k])[1] < 0 for k in dependent):
        return None
    terms = []
    for k in dependent:
        fs = list(expr.factors)
        fs[k] = Deriv(fs[k], wrt)
        terms.append(mul(*fs))
    return add(*terms)


def quotient_rule(term: Term, ctx: Context) -> Term | None:
    """d(a/b) = (da b - a db) / b^2."""
    expr, wrt = _deriv_parts(term)
    if not isinstance(expr, Mul):
        return None
    numer, denom = [], []
    for f in expr.factors:
        base, exp = base_exp(f)
        if exp < 0:
            denom.append(power(base, Num(-exp)))
        else:
            numer.append(f)
    if not denom or not any(_dep(d, wrt, ctx) for d in denom):
        return None
    if sum(_dep(f, wrt, ctx) for f in expr.factors) < 2:
        return None  # one dependent factor: linearity and the power rule read better
    a, b = mul(*numer), mul(*denom)
    return div(sub(mul(Deriv(a, wrt), b), mul(a, Deriv(b, wrt))), power(b, num(2)))


def power_rule(term: Term, ctx: Context) -> Term | None:
    """d(u^n) = n u^(n-1) du  for a constant exponent n."""
    expr, wrt = _deriv_parts(term)
    if not isinstance(expr, Pow) or _dep(expr.exponent, wrt, ctx):
        return None
    n = expr.exponent
    return mul(n, power(expr.base, add(n, num(-1))), Deriv(expr.base, wrt))


def general_power_rule(term: Term, ctx: Context) -> Term | None:
    """d(u^v) = v u^(v-1) du + u^v log(u) dv  (u > 0), from u^v = exp(v log u)."""
    expr, wrt = _deriv_parts(term)
    if not isinstance(expr, Pow) or not _dep(expr.exponent, wrt, ctx):
        return None
    u, v = expr.base, expr.exponent
    through_exponent = mul(expr, Func("log", u), Deriv(v, wrt))
    if not _dep(u, wrt, ctx):
        return through_exponent
    return add(mul(v, power(u, add(v, num(-1))), Deriv(u, wrt)), through_exponent)


def function_rule(name: str) -> Callable[[Term, Context], Term | None]:
    """The rule d f(u) = f'(u) du for the builtin ``name`` (its identity is the docstring)."""
    known = FUNCTIONS[name]

    def rule(term: Term, ctx: Context) -> Term | None:
        expr, wrt = _deriv_parts(term)
        if not (isinstance(expr, Func) and expr.name == name and expr.order == 0):
            return None
        return mul(known.derivative(expr.arg), Deriv(expr.arg, wrt))

    rule.__name__ = f"derivative_of_{name}"
    rule.__doc__ = known.identity
    return rule


def bracket_rule(term: Term, ctx: Context) -> Term | None:
    """d [a < b] = 0: an Iverson bracket is constant wherever it is differentiable (all but
    a = b), so where(c, p, q) = [c] p + [not c] q differentiates branch by branch, and
    max_d e = sum_d [d = argmax e] e differentiates through the maximising entry."""
    expr, _ = _deriv_parts(term)
    return ZERO if isinstance(expr, (Bracket, Arg)) else None


#: The Matrix Cookbook's derivatives (Petersen & Pedersen, 2012) with respect to an entry
#: A_kl of the matrix, as (identity, local derivative of the entry ``f`` at k, l).
_MATRIX_RULES = {
    "inv": ("d inv(A)_ij / dA_kl = -inv(A)_ik inv(A)_lj (Matrix Cookbook eq. 59)",
            lambda f, inv, k, l: neg(mul(inv(f.indices[0], k), inv(l, f.indices[1])))),
    "det": ("d det(A) / dA_kl = det(A) inv(A)_lk (Matrix Cookbook eq. 49)",
            lambda f, inv, k, l: mul(f, inv(l, k))),
    "logdet": ("d log|det A| / dA_kl = inv(A)_lk (Matrix Cookbook eq. 57)",
               lambda f, inv, k, l: inv(l, k)),
}


def matrix_function_rule(name: str) -> Callable[[Term, Context], Term | None]:
    """The rule d f(A) = sum_kl df/dA_kl dA_kl for the matrix function ``name``: the
    Cookbook's entry derivative, then the chain rule through the entries of A (which gives
    the deltas of dA_kl / dA_ij when A is the variable, and A's definition when it is not)."""
    identity, local = _MATRIX_RULES[name]

    def rule(term: Term, ctx: Context) -> Term | None:
        expr, wrt = _deriv_parts(term)
        if not (isinstance(expr, MatrixFunc) and expr.name == name) or not _dep(expr, wrt, ctx):
            return None
        rows, cols = ctx.problem.tensor_dims(expr.matrix)
        taken = {i.name for i in expr.free | wrt.free}
        k = Index(_unused("k", taken), rows)
        l = Index(_unused("l", taken | {k.name}), cols)

        def inv(a, b):
            return MatrixFunc("inv", expr.matrix, (a, b))

        return make_sum((k, l), mul(local(expr, inv, k, l),
                                    Deriv(Tensor(expr.matrix, (k, l)), wrt)))

    rule.__name__ = f"derivative_of_{name}"
    rule.__doc__ = identity
    return rule


def declared_function_rule(term: Term, ctx: Context) -> Term | None:
    """d h(u) = h'(u) du for a function declared with ``function h`` (and h'' for h')."""
    expr, wrt = _deriv_parts(term)
    if not isinstance(expr, Func) or (expr.name in FUNCTIONS and expr.order == 0):
        return None
    return mul(Func(expr.name, expr.arg, expr.order + 1), Deriv(expr.arg, wrt))


def entry_rule(term: Term, ctx: Context) -> Term | None:
    """dW_nm / dW_ij = delta_ni delta_mj;  the entry of another tensor gives 0."""
    expr, wrt = _deriv_parts(term)
    if expr is None:
        return None
    if isinstance(expr, Tensor):
        if expr.name == wrt.name:
            return mul(*(Delta(a, b) for a, b in zip(expr.indices, wrt.indices)))
        if ctx.partial or not _dep(expr, wrt, ctx):
            return ZERO
        return None  # a total derivative expands the definition instead
    if not _dep(expr, wrt, ctx):
        return ZERO
    return None


def expand_definition_rule(term: Term, ctx: Context) -> Term | None:
    """dY_sn / dW = d(body of Y at s, n) / dW  (total derivatives only)."""
    expr, wrt = _deriv_parts(term)
    if ctx.partial or not isinstance(expr, Tensor) or not ctx.problem.is_defined(expr.name):
        return None
    if expr.name == wrt.name or not _dep(expr_body(ctx.problem, expr), wrt, ctx):
        return None
    return Deriv(instantiate(ctx.problem, expr, avoid=wrt.free), wrt)


def expr_body(problem: Problem, entry: Tensor) -> Term:
    return problem.definitions[entry.name].body


def instantiate(problem: Problem, entry: Tensor, avoid=frozenset()) -> Term:
    """The body of the definition of ``entry.name`` at the indices of ``entry``.

    Bound indices of the body are renamed away from ``avoid`` and from the entry's indices,
    so that differentiating with respect to ``W_ij`` never captures a summation index.
    """
    definition = problem.definitions[entry.name]
    body = freshen_bound(definition.body, {i.name for i in avoid} | {i.name for i in entry.indices})
    return rename_indices(body, dict(zip(definition.indices, entry.indices)))


# --- simplification ----------------------------------------------------------------------

def contract_delta(term: Term, ctx: Context) -> Term | None:
    """sum_m a_m delta_mj = a_j  (a delta against the sum that binds one of its indices);
    sum_u a_u delta(u+k, l) = [0 <= l-k < U] a_{l-k}: a shifted delta puts the solved index
    in, and the bracket keeps the range of the index it replaced where that can clip."""
    if not isinstance(term, Sum):
        return None
    bound = list(term.indices)
    body = term.body
    changed = False
    while True:
        factors = list(factors_of(body))
        for k, f in enumerate(factors):
            others = factors[:k] + factors[k + 1:]
            solved = _solve(f, bound) if isinstance(f, Delta) else None
            inner = None if solved is not None else _solve_inner(f, bound)
            if solved is not None:
                (gone, value), rest = solved, mul(*others)
            elif inner is not None:
                # sum_u a_u sum_k b_k delta(u+2k, l) = sum_k b_k a_{l-2k}: the delta binds
                # the outer index (coefficient +-1) and the value takes the inner one along
                gone, value, delta = inner
                rest = mul(*others, *(g for g in factors_of(f.body) if g is not delta))
            else:
                continue
            body = rename_indices(rest, {gone: value})
            if isinstance(value, Affine) and not within(ctx.problem, value, gone.dim):
                body = mul(in_range(value, gone.dim), body)
            if inner is not None:
                body = make_sum(f.indices, body)
            bound.remove(gone)
            changed = True
            break
        else:
            break
    return make_sum(bound, body) if changed else None


def _solve_inner(f: Term, bound: list[Index]):
    """(index, value, delta) where ``f`` is a sum whose body has a delta that the inner
    sum cannot contract (``sum_k w_k delta(u+2k, l)``: k has coefficient 2) but an index of
    ``bound`` solves; None otherwise."""
    if not isinstance(f, Sum) or any(i in bound for i in f.indices):
        return None
    for g in factors_of(f.body):
        if isinstance(g, Delta) and _solve(g, list(f.indices)) is None:
            solved = _solve(g, bound)
            if solved is not None:
                return (*solved, g)
    return None


def _solve(delta: Delta, bound: list[Index]) -> tuple[Index, Index | Affine] | None:
    """A bound index of ``delta`` and its value where the delta holds: ``(m, j)`` for
    delta(m, j); ``(u, l-k)`` for delta(u+k, l) (the first bound index with coefficient
    +-1, in the order written)."""
    if delta.a == delta.b:
        return None
    if delta.plain and delta.a.dim == delta.b.dim:
        if delta.a in bound:
            return delta.a, delta.b
        if delta.b in bound:
            return delta.b, delta.a
        return None
    a, a_off = linear(delta.a)
    b, b_off = linear(delta.b)
    diff = dict(a)
    for i, c in b.items():
        diff[i] = diff.get(i, 0) - c
    order = list(a) + [i for i in b if i not in a]
    for v in order:
        c = diff.get(v, 0)
        if v in bound and c in (1, -1):
            # c v + rest + (a_off - b_off) = 0  gives  v = -(rest + offset) / c
            rest = {i: -d * c for i, d in diff.items() if i != v and d}
            return v, position(rest, -(a_off - b_off) * c, v.dim)
    return None


def within(problem: Problem, value: Affine, dim: str) -> bool:
    """Is 0 <= value < dim for every value of its indices?  Decided on the dims as linear
    expressions (``u + k < T`` for u < U = T - K + 1 and k < K); False where unknown."""
    coeffs, offset = linear(value)
    spans = {i: problem.linear_dim(i.dim) for i in coeffs}  # i's largest value: span - 1
    size = problem.linear_dim(dim)
    if size is None or None in spans.values():
        return False
    one = ({}, Fraction(1))
    start = ({}, Fraction(offset))
    # min(value) >= 0 and max(value) - (dim - 1) <= 0, for every size of the dims
    low = linear_combination([(1, start)] + [(c, spans[i]) for i, c in coeffs.items() if c < 0]
                             + [(-c, one) for c in coeffs.values() if c < 0])
    top = linear_combination([(1, start), (-1, size), (1, one)]
                             + [(c, spans[i]) for i, c in coeffs.items() if c > 0]
                             + [(-c, one) for c in coeffs.values() if c > 0])
    return not low[0] and low[1] >= 0 and not top[0] and top[1] <= 0


def change_summation_index(term: Term, ctx: Context) -> Term | None:
    """sum_u a_u b_{l-u} = sum_k [0 <= l-k < U] a_{l-k} b_k  (k = l - u): a sum over the
    positions of a long axis becomes one over a short one (a kernel's), which is the order
    of the work a convolution's code should take."""
    if not isinstance(term, Sum) or contains(term, Deriv):
        return None
    for u in term.indices:
        for f in factors_of(term.body):
            if not isinstance(f, (Tensor, Grad)):
                continue
            for p in f.indices:
                if not isinstance(p, Affine):
                    continue
                coeffs, offset = linear(p)
                c = coeffs.get(u, 0)
                if c not in (1, -1) or not _shorter(ctx.problem, p.dim, u.dim):
                    continue
                taken = term.all_index_names() | {i.name for i in term.free}
                k = Index(_unused(_letter_of(p.dim), taken), p.dim)
                # p = c u + rest = k  gives  u = c (k - rest)
                rest = {i: -d * c for i, d in coeffs.items() if i != u}
                rest[k] = c
                value = position(rest, -offset * c, u.dim)
                body = rename_indices(term.body, {u: value})
                if not within(ctx.problem, value, u.dim):
                    body = mul(in_range(value, u.dim), body)
                others = tuple(i for i in term.indices if i != u)
                return make_sum(others + (k,), body)
    return None


def _unused(name: str, taken: set[str]) -> str:
    """``name``, or a fresh variant of it (``k2``) where it is taken."""
    return name if name not in taken else fresh_name(name, taken)


def _letter_of(dim: str) -> str:
    """The index a dim's name suggests: ``k`` for ``K``."""
    letter = dim[:1].lower()
    return letter if letter.isalpha() else "i"


def _shorter(problem: Problem, dim: str, than: str) -> bool:
    """Is ``dim`` the shorter axis?  By the sizes given; else by the dims as linear
    expressions (T is not shorter than U = T - K + 1, as U - T = 1 - K <= 0); else a dim
    that ``than``'s formula subtracts is the shorter (K, the kernel, beside the
    T - K + 1 positions of a sliding window)."""
    if dim == than:
        return False
    a, b = problem.dims.get(dim), problem.dims.get(than)
    if a is not None and b is not None:
        return a < b
    lin_a, lin_b = problem.linear_dim(dim), problem.linear_dim(than)
    if lin_a is None or lin_b is None:
        return False
    diff, const = linear_combination([(1, lin_b), (-1, lin_a)])
    # every dim is at least 1: the sign of ``than - dim`` where the coefficients agree
    if all(v >= 0 for v in diff.values()) and sum(diff.values()) + const > 0:
        return True
    if all(v <= 0 for v in diff.values()) and sum(diff.values()) + const <= 0:
        return False
    return lin_b[0].get(dim, 0) < 0


def zero_padding(term: Term, ctx: Context) -> Term | None:
    """[0 <= e < D] x_e = x_e: a read outside a tensor's range is 0 (zero padding), so the
    bracket beside a read of x at e (an axis of size D) says nothing more; nor beside
    [e == argmax_d ...] with d over D."""
    if not isinstance(term, Mul):
        return None
    reads = set()
    for f in term.factors:
        if isinstance(f, (Tensor, Grad)):
            reads.update(_read_key(p) for p in f.indices if isinstance(p, Affine))
        elif isinstance(f, Arg) and isinstance(f.at, Affine):  # [e == argmax_k ...]: e < K
            reads.add(_read_key(Affine(f.at.terms, f.at.offset, f.over.dim)))
    if not reads:
        return None
    kept = [f for f in term.factors if not (_range_bracket(f) in reads)]
    return mul(*kept) if len(kept) < len(term.factors) else None


def index_in_range(term: Term, ctx: Context) -> Term | None:
    """[0 <= e < D] = 1 where the ranges of e's indices keep it there (u + k < T for
    u < T - K + 1 and k < K)."""
    if isinstance(term, Bracket) and term.op == IN_RANGE and isinstance(term.a, IndexValue):
        if within(ctx.problem, term.a.value, term.b.name):
            return ONE
    return None


def _read_key(p: Affine):
    coeffs, offset = linear(p)
    return frozenset(coeffs.items()), offset, p.dim


def _range_bracket(f: Term):
    """The read key a bracket [0 <= e < D] is absorbed by (a read of an axis of D at e)."""
    if isinstance(f, Bracket) and f.op == IN_RANGE and isinstance(f.a, IndexValue):
        return _read_key(Affine(f.a.value.terms, f.a.value.offset, f.b.name))
    return None


def delta_identities(term: Term, ctx: Context) -> Term | None:
    """delta_ii = 1  and  delta_ab delta_ab = delta_ab;  delta(t+1, t) = 0."""
    if isinstance(term, Delta) and term.a == term.b:
        return ONE
    if isinstance(term, Delta) and not term.plain:
        (a, a_off), (b, b_off) = linear(term.a), linear(term.b)
        if a == b:
            return ONE if a_off == b_off else ZERO
    if isinstance(term, Pow) and isinstance(term.base, Delta):
        base, exp = base_exp(term)
        if exp > 0 and exp.denominator == 1:
            return term.base
    if isinstance(term, Mul):
        seen: list[Delta] = []
        out = []
        for f in term.factors:
            if isinstance(f, Delta):
                if any({f.a, f.b} == {g.a, g.b} for g in seen):
                    continue
                seen.append(f)
            out.append(f)
        if len(out) < len(term.factors):
            return mul(*out)
    return None


def cancel(term: Term, ctx: Context) -> Term | None:
    """x^a x^b = x^(a+b);  in particular  T_sc / Y_sc * Y_sc = T_sc."""
    if not isinstance(term, Mul):
        return None
    groups: list[list] = []  # [base, exponent, first position]
    for f in term.factors:
        base, exp = base_exp(f)
        for g in groups:
            if same(g[0], base):
                g[1] += exp
                break
        else:
            groups.append([base, exp])
    if len(groups) == len(term.factors):
        return None
    return mul(*(power(b, Num(e)) for b, e in groups if e != 0 or isinstance(b, Num)))


def _delta_with(term: Term, indices) -> bool:
    return any(isinstance(f, Delta) and f.free & frozenset(indices) for f in factors_of(term))


def pull_out_constant(term: Term, ctx: Context) -> Term | None:
    """sum_c a b_c = a sum_c b_c  when a does not depend on c."""
    if not isinstance(term, Sum) or not isinstance(term.body, Mul):
        return None
    bound = frozenset(term.indices)
    inside = [f for f in term.body.factors if f.free & bound]
    outside = [f for f in term.body.factors if not (f.free & bound)]
    if not outside or not inside:
        return None
    return mul(*outside, make_sum(term.indices, mul(*inside)))


def distribute(term: Term, ctx: Context) -> Term | None:
    """sum_c a (b_c + delta_cj) = sum_c (a b_c + a delta_cj): expand a product so that a
    delta meets the sum that binds its index, or a factor meets its reciprocal."""
    if isinstance(term, Sum) and isinstance(term.body, Mul):
        bound = frozenset(term.indices)
        expanded = _distribute_if(term.body, lambda add_: any(_delta_with(t, bound)
                                                              for t in add_.terms))
        if expanded is not None:
            return make_sum(term.indices, expanded)
    if isinstance(term, Mul):
        def cancels(add_: Add) -> bool:
            outside = [base_exp(f) for f in term.factors if f is not add_]
            return any(any(e * e2 < 0 and same(b, b2) for b, e in outside)
                       for t in add_.terms for b2, e2 in map(base_exp, factors_of(t)))
        return _distribute_if(term, cancels)
    return None


def _distribute_if(product: Mul, wanted) -> Term | None:
    for k, f in enumerate(product.factors):
        if isinstance(f, Add) and wanted(f):
            before, after = product.factors[:k], product.factors[k + 1:]
            return add(*(mul(*before, t, *after) for t in f.terms))
    return None


def split_sum(term: Term, ctx: Context) -> Term | None:
    """sum_c (a_c + b_c) = sum_c a_c + sum_c b_c  where a delta can then be contracted or
    a term does not depend on c (sum_d mu_s = D mu_s)."""
    if not isinstance(term, Sum) or not isinstance(term.body, Add):
        return None
    bound = frozenset(term.indices)
    if not any(_delta_with(t, bound) or not (t.free & bound) for t in term.body.terms):
        return None
    return add(*(_sum_of(term.indices, t) for t in term.body.terms))


def _sum_of(indices, term: Term) -> Term:
    """sum_c (k a_c) = k sum_c a_c for a number k (so a minus sign stays outside)."""
    coeff, rest = split_coeff(term)
    return mul(Num(coeff), make_sum(indices, mul(*rest)))


def fold_definitions(term: Term, ctx: Context) -> Term | None:
    """exp(X_sc) / sum_k exp(X_sk) = Y_sc  when Y is defined so: write the defined tensor."""
    if isinstance(term, (Add, Num, Tensor, Delta, DimSize, Constant, Grad, Deriv)):
        return None
    for definition in ctx.problem.definitions_mentioning(term.tensor_names):
        body = definition.body
        if body is None or isinstance(body, (Tensor, Add, Num)) or body.free != frozenset(definition.indices):
            continue
        if not body.tensor_names <= term.tensor_names:
            continue  # cheap test first: the body's tensors must all appear

        def entry(binding, d=definition):
            return Tensor(d.name, tuple(binding[i] for i in d.indices))

        folded = fold_in_product(body, term, entry)
        if folded is not None:
            return cancel(folded, ctx) or folded
    return None


def _one_plus_exp(term: Term) -> Term | None:
    """``u`` when ``term`` is ``exp(u) + 1``."""
    if isinstance(term, Add) and len(term.terms) == 2 and ONE in term.terms:
        other = term.terms[0] if term.terms[1] == ONE else term.terms[1]
        if isinstance(other, Func) and other.name == "exp" and other.order == 0:
            return other.arg
    return None


def symmetric_input(term: Term, ctx: Context) -> Term | None:
    """S_ki = S_ik  for an input declared symmetric (and inv(S)_ki = inv(S)_ik): the summed
    index written second.

    So ``sum_k S_ki x_k`` reads ``sum_k S_ik x_k`` (``S x``, not ``S^T x``) and collects with
    a term that has it so (``(S + S^T) x`` is ``2 S x``).  Never inside a derivative still
    to be taken: a gradient with respect to S is the unconstrained one, entry by entry.
    """
    if not isinstance(term, Sum) or contains(term, Deriv):
        return None
    symmetric = {n for n, t in ctx.problem.inputs.items() if t.symmetric}
    if not symmetric:
        return None
    bound, free = frozenset(term.indices), term.free

    def swapped(t: Term) -> Term | None:
        if isinstance(t, Tensor) and t.name in symmetric:
            a, b = t.indices
            if a in bound and b in free:
                return Tensor(t.name, (b, a))
        if isinstance(t, MatrixFunc) and t.name == "inv" and t.matrix in symmetric:
            a, b = t.indices  # the inverse of a symmetric matrix is symmetric
            if a in bound and b in free:
                return MatrixFunc("inv", t.matrix, (b, a))
        return None

    body = replace(term.body, swapped)
    return None if body == term.body else make_sum(term.indices, body)


def sigmoid_identity(term: Term, ctx: Context) -> Term | None:
    """exp(u) / (1 + exp(u)) = sigmoid(u)  and  1 / (1 + exp(-u)) = sigmoid(u)."""
    if not isinstance(term, (Mul, Pow)):
        return None
    factors = list(factors_of(term))
    for k, f in enumerate(factors):
        base, exp = base_exp(f)
        u = _one_plus_exp(base)
        if exp != -1 or u is None:
            continue
        rest = factors[:k] + factors[k + 1:]
        for n, g in enumerate(rest):
            if isinstance(g, Func) and g.name == "exp" and g.order == 0 and same(g.arg, u):
                return mul(*rest[:n], Func("sigmoid", u), *rest[n + 1:])
        return mul(*rest, Func("sigmoid", neg(u)))
    return None


def apply_assumptions(term: Term, ctx: Context) -> Term | None:
    """An identity the file assumes, e.g. one-hot rows: sum_c T_sc = 1; also inside a sum
    over several indices, whose factors free of the assumption's summed index stand
    outside it: sum_{n,k} Y_kn f_n = sum_n f_n sum_k Y_kn = sum_n f_n."""
    found = _assumed(term, ctx)
    if found is not None:
        return found
    if isinstance(term, Sum) and len(term.indices) > 1 and ctx.problem.assumptions:
        return _assumption_in_multiple_sum(term, ctx)
    return None


def _assumed(term: Term, ctx: Context) -> Term | None:
    """The right side of the first assumption whose left side ``term`` matches."""
    for assumption in ctx.problem.assumptions:
        binding = match(assumption.lhs, term)
        if binding is not None:
            return rename_indices(assumption.rhs, binding)
    return None


def _assumption_in_multiple_sum(term: Sum, ctx: Context) -> Term | None:
    factors = factors_of(term.body)
    for k in term.indices:
        inner = [f for f in factors if k in f.free]
        outer = [f for f in factors if k not in f.free]
        if not inner or not outer:
            continue
        found = _assumed(make_sum((k,), mul(*inner)), ctx)
        if found is not None:
            rest = tuple(i for i in term.indices if i != k)
            return make_sum(rest, mul(*outer, found))
    return None


def collect_terms(term: Term, ctx: Context) -> Term | None:
    """a x + b x = (a + b) x  for numbers a, b."""
    if not isinstance(term, Add):
        return None
    order: list = []
    coeffs: dict = {}
    for t in term.terms:
        c, rest = split_coeff(t)
        key = canonical(mul(*rest))
        if key in coeffs:
            coeffs[key][0] += c
        else:
            coeffs[key] = [c, rest]
            order.append(key)
    if len(order) == len(term.terms):
        return None
    return add(*(mul(Num(coeffs[k][0]), *coeffs[k][1]) for k in order))


#: Expanding a sum of products into more terms than this is not worth trying.
MAX_EXPANDED_TERMS = 32


def expand_and_collect(term: Term, ctx: Context) -> Term | None:
    """(1 - t) p + t (p - 1) = p - t: multiply out and collect, when that is shorter."""
    if not isinstance(term, Add) or not any(isinstance(f, Add) for t in term.terms
                                            for f in factors_of(t)):
        return None
    expanded = _expand(term)
    if expanded is None:
        return None
    collected = collect_terms(expanded, ctx) or expanded
    return collected if collected.size < term.size else None


def _expand(term: Term) -> Term | None:
    if isinstance(term, Add):
        parts = [_expand(t) for t in term.terms]
        return None if any(p is None for p in parts) else add(*parts)
    if isinstance(term, Mul):
        products: list[list[Term]] = [[]]
        for f in term.factors:
            options = f.terms if isinstance(f, Add) else (f,)
            products = [p + [o] for p in products for o in options]
            if len(products) > MAX_EXPANDED_TERMS:
                return None
        return add(*(mul(*p) for p in products))
    return term


def factor(term: Term, ctx: Context) -> Term | None:
    """a b + a c = a (b + c)."""
    if not isinstance(term, Add):
        return None
    if any(_delta_with(t, ctx.bound) for t in term.terms):
        return None  # the sum around would pull it apart again
    first = [base_exp(f) for f in split_coeff(term.terms[0])[1]]
    common = []
    for base, exp in first:
        exps = []
        for t in term.terms[1:]:
            hit = [e for b, e in map(base_exp, split_coeff(t)[1]) if same(b, base)]
            if not hit or (hit[0] > 0) != (exp > 0):
                break
            exps.append(hit[0])
        else:
            e = min([exp] + exps, key=abs)
            common.append((base, e))
    coeffs = [split_coeff(t)[0] for t in term.terms]
    magnitude = abs(coeffs[0]) if all(abs(c) == abs(coeffs[0]) for c in coeffs) else Fraction(1)
    if not common and magnitude == 1:
        return None
    rests = []
    for t in term.terms:
        c, fs = split_coeff(t)
        fs = list(fs)
        for base, e in common:
            for k, f in enumerate(fs):
                b, fe = base_exp(f)
                if same(b, base):
                    fs[k] = power(b, Num(fe - e))
                    break
        rests.append(mul(Num(c / magnitude), *fs))
    inner = add(*rests)
    return mul(Num(magnitude), *(power(b, Num(e)) for b, e in common), inner)


def tidy_sign(term: Term, ctx: Context) -> Term | None:
    """-c (a - b) = c (b - a), and a sum is written with a positive term first."""
    if isinstance(term, Mul):
        c, fs = split_coeff(term)
        adds = [f for f in fs if isinstance(f, Add)]
        if c < 0 and len(adds) == 1 and any(split_coeff(t)[0] < 0 for t in adds[0].terms):
            flipped = add(*(neg(t) for t in adds[0].terms))
            flipped = _positive_first(flipped) or flipped
            return mul(Num(-c), *(flipped if f is adds[0] else f for f in fs))
    return _positive_first(term)


def _positive_first(term: Term) -> Term | None:
    if isinstance(term, Add) and split_coeff(term.terms[0])[0] < 0:
        positive = [t for t in term.terms if split_coeff(t)[0] > 0]
        if positive:
            rest = [t for t in term.terms if t is not positive[0]]
            return Add((positive[0], *rest))
    return None


def _planned(term: Term, ctx: Context) -> Term | None:
    """Steps the engine plans itself (it decides what to derive); never applied by search."""
    return None


#: Steps the engine takes as it plans a derivation, recorded like any rule's step.
CHAIN_RULE = Rule("chain rule", _planned,
                  "dL/dW_ij = sum_c dL/dC_c dC_c/dW_ij over every tensor C that uses W",
                  "differentiate")
SUBSTITUTE = Rule("substitute", _planned, "put derivatives derived in their own blocks in",
                  "differentiate")
NO_DEPENDENCE = Rule("no dependence", _planned, "dY/dW = 0 where Y does not depend on W",
                     "differentiate")
EXPAND_DEFINITION = Rule("expand definition", expand_definition_rule, phase="differentiate")


def known_derivative(term: Term, ctx: Context) -> Term | None:
    """dY[t,m] / dW[k,l] = the derivative dY[s,n] / dW[i,j] found in an earlier block, with
    s, n, i, j renamed t, m, k, l (total derivatives only: the earlier block is reused
    only where the partial derivative it computed is the total one, ``Engine``)."""
    if ctx.partial or not ctx.known or not isinstance(term, Deriv):
        return None
    expr, wrt = term.expr, term.wrt
    if not (isinstance(expr, Tensor) and isinstance(wrt, Tensor)):
        return None
    for target, result in ctx.known:
        if (target.expr.name, target.wrt.name) != (expr.name, wrt.name):
            continue
        old = target.expr.indices + target.wrt.indices
        new = expr.indices + wrt.indices
        if not all(isinstance(i, Index) for i in old + new) or len(set(new)) != len(new):
            continue
        return rename_indices(result, dict(zip(old, new)))
    return None


KNOWN_DERIVATIVE = Rule("derivative derived above", known_derivative, phase="differentiate")

def _bodies(problem: Problem):
    return [d.body for d in problem.definitions.values() if d.body is not None]


def _has(problem: Problem, *classes) -> bool:
    """Does any definition hold a node of one of ``classes`` (or a shifted read)?"""
    for body in _bodies(problem):
        for t in body.walk():
            if isinstance(t, classes):
                return True
            if isinstance(t, (Tensor, Grad)) and any(isinstance(i, Affine) for i in t.indices):
                return True
    return False


def _functions(problem: Problem) -> set[str]:
    return {t.name for body in _bodies(problem) for t in body.walk() if isinstance(t, Func)}


RULES: tuple[Rule, ...] = (
    KNOWN_DERIVATIVE,
    EXPAND_DEFINITION,
    Rule("linearity", linearity, phase="differentiate"),
    Rule("quotient rule", quotient_rule, phase="differentiate"),
    Rule("product rule", product_rule, phase="differentiate"),
    Rule("power rule", power_rule, phase="differentiate"),
    Rule("power rule, variable exponent", general_power_rule, phase="differentiate"),
    *(Rule(f"derivative of {name}", function_rule(name), phase="differentiate")
      for name in FUNCTIONS),
    Rule("derivative of a declared function", declared_function_rule, phase="differentiate"),
    Rule("derivative of a bracket", bracket_rule, phase="differentiate"),
    Rule("derivative of an inverse", matrix_function_rule("inv"), phase="differentiate"),
    Rule("derivative of a determinant", matrix_function_rule("det"), phase="differentiate"),
    Rule("derivative of a log-determinant", matrix_function_rule("logdet"),
         phase="differentiate"),
    Rule("derivative of an entry", entry_rule, phase="differentiate"),
    Rule("contract deltas", contract_delta),
    Rule("delta identities", delta_identities),
    Rule("zero padding", zero_padding, needs=lambda p: _has(p, Bracket, Affine, Arg, IndexValue)),
    Rule("change of summation index", change_summation_index),
    Rule("index in range", index_in_range,
         needs=lambda p: _has(p, Bracket, Affine, Arg, IndexValue)),
    Rule("cancel", cancel),
    Rule("fold definition", fold_definitions),
    Rule("sigmoid", sigmoid_identity,  # exp(u) / (1 + exp(u)) needs an exp, or a derivative's
         needs=lambda p: _functions(p) & {"exp", "erf", "expm1"} != set()),
    Rule("symmetric input", symmetric_input,
         needs=lambda p: any(i.symmetric for i in p.inputs.values())),
    Rule("pull constant out of sum", pull_out_constant),
    Rule("expand product", distribute),
    Rule("split sum", split_sum),
    Rule("assumption", apply_assumptions, needs=lambda p: bool(p.assumptions)),
    Rule("collect terms", collect_terms),
    Rule("expand and collect", expand_and_collect),
    Rule("factor", factor, phase="tidy", reads_bound=True),
    Rule("tidy signs", tidy_sign, phase="tidy"),
)
