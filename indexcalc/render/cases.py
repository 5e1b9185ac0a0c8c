"""The ``i = k`` / ``i \\ne k`` presentation of a Kronecker delta (``notation: cases = split``).

Seed 001 writes the softmax Jacobian as two cases instead of ``p_i (\\delta_{ik} - p_k)``::

    i = k:     p_i (1 - p_i)
    i \\ne k:   -p_i p_k

``split(term, free)`` finds the one delta between free indices that is not a factor of the
whole term (a factor ``\\delta_{si}`` only says the entry is zero off the diagonal, which
the delta itself says best) and substitutes: ``\\delta = 1`` with ``k`` renamed ``i``, and
``\\delta = 0``.  Both sides are rebuilt with the term model's folding constructors, so
``1 - p_i`` stays and ``0`` factors vanish.  Nothing is derived here: each case is the term
with a value put in for the delta, so it holds wherever the term does.
"""
from __future__ import annotations

from typing import NamedTuple

from ..terms import (
    Add,
    Delta,
    Index,
    Mul,
    Num,
    Pow,
    Sum,
    Term,
    add,
    make_sum,
    map_children,
    mul,
    power,
    rename_indices,
    replace,
)

__all__ = ["Cases", "split"]


class Cases(NamedTuple):
    a: Index  # the index that stays (i)
    b: Index  # the index renamed to it in the equal case (k)
    equal: Term  # the term where a = b
    unequal: Term  # the term where a != b


def split(term: Term, free: frozenset[Index]) -> Cases | None:
    """The two cases of ``term``'s one delta between the ``free`` indices, or None when it
    has no such delta, more than one, or the delta multiplies the whole term."""
    outer = {f for f in (term.factors if isinstance(term, Mul) else (term,))
             if isinstance(f, Delta)}
    pairs = {frozenset((d.a, d.b)) for d in term.walk()
             if isinstance(d, Delta) and d not in outer and d.a != d.b
             and d.a in free and d.b in free}
    if len(pairs) != 1:
        return None
    a, b = sorted(next(iter(pairs)), key=lambda i: i.name)
    if not (isinstance(a, Index) and isinstance(b, Index)):
        return None
    pair = frozenset((a, b))

    def value(delta_value: Term):
        def put(t: Term) -> Term | None:
            if isinstance(t, Delta) and frozenset((t.a, t.b)) == pair:
                return delta_value
            return None
        return put

    equal = _fold(rename_indices(replace(term, value(Num(1))), {b: a}))
    equal = _fold(replace(equal, lambda t: Num(1) if isinstance(t, Delta) and t.a == t.b
                          else None))
    unequal = _fold(replace(term, value(Num(0))))
    return Cases(a, b, equal, unequal)


def _fold(term: Term) -> Term:
    """``term`` rebuilt bottom-up by the folding constructors (zeros, ones, numbers)."""
    term = map_children(term, _fold)
    if isinstance(term, Add):
        return add(*term.terms)
    if isinstance(term, Mul):
        return mul(*term.factors)
    if isinstance(term, Pow):
        return power(term.base, term.exponent)
    if isinstance(term, Sum):
        return make_sum(term.indices, term.body)
    return term
