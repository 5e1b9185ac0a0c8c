"""Matching an index-expression pattern against a term.

Used to fold a definition's body back into its tensor (``exp(X_sc) / sum_k exp(X_sk)`` is
``Y_sc``) and to apply assumptions (``sum_c T_sc = 1``).  A pattern's free indices are its
variables: each binds to one index of the same dim in the target.  Indices bound by a sum in
the pattern match the target's bound indices in order.  Products and sums match up to the
order of their factors and terms.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterator

from ..terms import (
    Add, Affine, Bracket, Delta, Func, Grad, Index, IndexValue, Mul, Num, Pow, Sum, Tensor,
    Term, base_exp, mul, power, split_coeff,
)

Binding = dict[Index, Index]


def match(pattern: Term, target: Term, binding: Binding | None = None) -> Binding | None:
    """The first binding of pattern indices that makes ``pattern`` equal ``target``."""
    return next(_match(pattern, target, dict(binding or {})), None)


def _bind(binding: Binding, p: Index, t: Index) -> Binding | None:
    if p.dim != t.dim:
        return None
    if p in binding:
        return binding if binding[p] == t else None
    if t in binding.values():
        return None  # two pattern indices may not name the same target index
    out = dict(binding)
    out[p] = t
    return out


def _bind_position(binding: Binding, p, t) -> Binding | None:
    """An index or an affine position (``u+k``, ``i-1``) against the target's: affine ones
    match term by term, with equal coefficients and offsets."""
    if isinstance(p, Index) and isinstance(t, Index):
        return _bind(binding, p, t)
    if not (isinstance(p, Affine) and isinstance(t, Affine)):
        return None
    if (p.offset, p.dim, len(p.terms)) != (t.offset, t.dim, len(t.terms)):
        return None
    for (pc, pi), (tc, ti) in zip(p.terms, t.terms):
        binding = _bind(binding, pi, ti) if pc == tc else None
        if binding is None:
            return None
    return binding


def _bind_all(binding: Binding, ps, ts) -> Binding | None:
    if len(ps) != len(ts):
        return None
    for p, t in zip(ps, ts):
        binding = _bind_position(binding, p, t)
        if binding is None:
            return None
    return binding


def _match(p: Term, t: Term, b: Binding) -> Iterator[Binding]:
    if type(p) is not type(t):
        return
    if isinstance(p, Tensor):
        if p.name == t.name:
            r = _bind_all(b, p.indices, t.indices)
            if r is not None:
                yield r
    elif isinstance(p, Grad):
        if (p.of, p.wrt) == (t.of, t.wrt):
            r = _bind_all(b, p.indices, t.indices)
            if r is not None:
                yield r
    elif isinstance(p, Delta):
        for ta, tb in ((t.a, t.b), (t.b, t.a)):
            r = _bind_all(b, (p.a, p.b), (ta, tb))
            if r is not None:
                yield r
    elif isinstance(p, Sum):
        r = _bind_all(b, p.indices, t.indices)
        if r is not None:
            for inner in _match(p.body, t.body, r):
                yield {k: v for k, v in inner.items() if k not in p.indices}
    elif isinstance(p, (Mul, Add)):
        yield from _match_unordered(list(p.children()), list(t.children()), b)
    elif isinstance(p, Func):
        if (p.name, p.order) == (t.name, t.order):
            yield from _match(p.arg, t.arg, b)
    elif isinstance(p, Pow):
        for r in _match(p.exponent, t.exponent, b):
            yield from _match(p.base, t.base, r)
    elif isinstance(p, Bracket):  # [u <= t]: a causal mask in a definition
        if p.op == t.op:
            for r in _match(p.a, t.a, b):
                yield from _match(p.b, t.b, r)
    elif isinstance(p, IndexValue):
        r = _bind_position(b, p.value, t.value)
        if r is not None:
            yield r
    elif p == t:
        yield b


def _match_unordered(ps: list[Term], ts: list[Term], b: Binding) -> Iterator[Binding]:
    if len(ps) != len(ts):
        return
    if not ps:
        yield b
        return
    first, rest = ps[0], ps[1:]
    for k, t in enumerate(ts):
        for r in _match(first, t, b):
            yield from _match_unordered(rest, ts[:k] + ts[k + 1:], r)


def fold_in_product(pattern: Term, target: Term, replacement_for) -> Term | None:
    """Replace the factors of ``target`` that form ``pattern`` by ``replacement_for(binding)``.

    ``pattern`` is a product (or a single factor) whose factors may carry powers; a target
    factor ``x^e`` supplies a pattern factor ``x^p`` when ``e`` and ``p`` have the same sign
    and ``|e| >= |p|``.  Repeats until no further occurrence is found.  None if none at all.
    """
    p_coeff, p_all = split_coeff(pattern)
    # Constant factors of the pattern (numbers, dims: the 1/D of a mean) need not appear in
    # the target: Sum_d X_sd is D mu_s when mu_s = 1/D Sum_d X_sd.
    constants = [f for f in p_all if not f.free and not f.tensor_names]
    p_factors = [f for f in p_all if f.free or f.tensor_names]
    if not p_factors or (len(p_factors) == 1 and isinstance(p_factors[0], Tensor)):
        return None  # a scaled copy of a tensor is not worth writing as another tensor
    compensation = [Num(1 / p_coeff)] + [power(c, Num(-1)) for c in constants]
    changed = False
    current = target
    while True:
        t_coeff, t_factors = split_coeff(current)
        found = _find_subproduct([base_exp(f) for f in p_factors],
                                 [base_exp(f) for f in t_factors], {})
        if found is None:
            break
        binding, used = found  # used: {target position: exponent taken}
        new_factors: list[Term] = []
        inserted = False
        for pos, f in enumerate(t_factors):
            if pos in used:
                base, exp = base_exp(f)
                if not inserted:
                    new_factors.extend(compensation)
                    new_factors.append(replacement_for(binding))
                    inserted = True
                left = exp - used[pos]
                if left:
                    new_factors.append(power(base, Num(left)))
            else:
                new_factors.append(f)
        current = mul(Num(t_coeff), *new_factors)
        changed = True
    return current if changed else None


def _find_subproduct(ps, ts, b, used=None):
    used = used or {}
    if not ps:
        return b, used
    (p_base, p_exp), rest = ps[0], ps[1:]
    for pos, (t_base, t_exp) in enumerate(ts):
        available = t_exp - used.get(pos, Fraction(0))
        if available == 0 or (available > 0) != (p_exp > 0) or abs(available) < abs(p_exp):
            continue
        for r in _match(p_base, t_base, b):
            new_used = dict(used)
            new_used[pos] = new_used.get(pos, Fraction(0)) + p_exp
            found = _find_subproduct(rest, ts, r, new_used)
            if found is not None:
                return found
    return None
