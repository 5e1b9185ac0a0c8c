"""Constant subexpressions a file writes, evaluated when the file is read.

A subexpression without tensors or free indices (``0^(-1)``, ``log(1 - 1)``, ``sqrt(N - 5)``
with ``dims N=3``) has one value for every input.  When that value is undefined or not a
finite float64 the file is wrong, whatever the inputs: the parser reports it at its place
instead of letting it surface as a numeric check that is "not finite" at every draw.

``value`` returns the float value of such a term, None for a term that depends on inputs
(or on a dim without a size) or whose float value underflowed (``log(exp(-1000))`` is
-1000, not log(0)), and raises ``Undefined`` with the reason otherwise.
``check`` raises ``Undefined`` only for a term undefined whatever sizes its dims without a
given size take (``1/(S - S)``, ``sqrt(D - D - 1)``; not ``sqrt(D - 5)``).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..functions import CONSTANTS, builtin
from ..terms import Add, Constant, DimSize, Func, Mul, Num, Pow, Term


class Undefined(ValueError):
    """A constant subexpression without a finite real value; the message says why."""


#: A sum of constants within this many ulps (relative to its terms) of zero is zero: its
#: terms are float64 values of functions, equal to rounding (exact numbers cancel exactly).
CANCELLATION = 4 * 2.0**-52

#: Sizes tried for dims without a given size: small distinct ones, then large ones.
TRIAL_SIZES = ((3, 4, 5, 2, 6, 7, 8, 9, 10, 11), (1009, 1013, 1019, 1021, 1031, 1033))


def check(term: Term, sizes: Mapping[str, int | None]) -> float | None:
    """The value of the constant ``term``, when it has one value whatever the sizes of its
    unsized dims (``S - S``); None if it depends on an input or on those sizes.  Raises
    ``Undefined`` where it has no finite real value for any sizes tried."""
    unsized = sorted({t.name for t in _dim_sizes(term) if sizes.get(t.name) is None})
    if not unsized:
        return value(term, sizes)
    results: list[float | None | Undefined] = []
    for trial in TRIAL_SIZES:
        given = dict(sizes)
        given.update({dim: trial[k % len(trial)] + k // len(trial)
                      for k, dim in enumerate(unsized)})
        try:
            results.append(value(term, given))
        except Undefined as exc:
            results.append(exc)
    if all(isinstance(r, Undefined) for r in results):
        raise Undefined(f"{results[0]}, whatever the size of {', '.join(unsized)}")
    values = set(results)  # one value for every trial (none undefined): a constant
    return values.pop() if len(values) == 1 else None


def _dim_sizes(term: Term):
    if isinstance(term, DimSize):
        yield term
    for child in term.children():
        yield from _dim_sizes(child)


def value(term: Term, sizes: Mapping[str, int | None]) -> float | None:
    """The value of ``term`` if it is a constant (``sizes``: the dims' given sizes)."""
    if term.free:
        return None
    if isinstance(term, Num):
        return _finite(lambda: float(term.value), "this number")
    if isinstance(term, Constant):
        return CONSTANTS[term.name].value
    if isinstance(term, DimSize):
        size = sizes.get(term.name)
        return None if size is None else float(size)
    if isinstance(term, (Add, Mul)):
        parts = term.terms if isinstance(term, Add) else term.factors
        values = [value(part, sizes) for part in parts]
        if any(v is None for v in values):
            return None
        total = math.fsum(values) if isinstance(term, Add) else math.prod(values)
        if isinstance(term, Mul) and total == 0 and all(values):
            return None  # underflowed: its true value is not known here
        if isinstance(term, Add) and abs(total) <= CANCELLATION * math.fsum(map(abs, values)):
            return 0.0  # sqrt(2)^2 - 2: zero to within the rounding of its terms
        return _finite(lambda: total, "this expression")
    if isinstance(term, Pow):
        base, exponent = value(term.base, sizes), value(term.exponent, sizes)
        if base is None or exponent is None:
            return None
        return power(base, exponent)
    if isinstance(term, Func):
        arg = value(term.arg, sizes)
        if arg is None:
            return None
        return function(term.name, arg)
    return None


def power(base: float, exponent: float) -> float | None:
    """``base ^ exponent`` for constants, or why it is undefined."""
    if base == 0 and exponent < 0:
        raise Undefined(f"0 to the power {exponent:g} is undefined (a division by zero)")
    if base < 0 and not float(exponent).is_integer():
        raise Undefined(f"{base:g} to the power {exponent:g} is not a real number "
                        "(a negative number to a fractional power)")
    result = _finite(lambda: math.pow(base, exponent), f"{base:g}^{exponent:g}")
    return None if result == 0 and base != 0 else result  # None: underflowed


def function(name: str, arg: float) -> float | None:
    """A builtin function at the constant ``arg``, or why it is undefined there; None for a
    declared function (its values are not known) and where float64 lost the value on the
    way (``exp(-1000)`` underflows to 0; ``sigmoid(-800)`` overflows inside, to 0)."""
    entry = builtin(name)
    if entry is None:
        return None
    flags: set[str] = set()
    with np.errstate(all="call", call=lambda kind, flag: flags.add(kind)):
        result = float(entry.numeric(np.float64(arg)))
    if math.isnan(result) or "divide by zero" in flags or (math.isinf(result) and name == "log"):
        raise Undefined(f"{name}({arg:g}) is undefined{_domain_hint(name)}")
    if math.isinf(result):
        raise Undefined(f"{name}({arg:g}) is too large for float64")
    if flags & {"underflow", "overflow"}:
        return None
    return result


def _domain_hint(name: str) -> str:
    return {"log": " (log needs a positive argument)",
            "sqrt": " (sqrt needs an argument of at least 0)"}.get(name, "")


def _finite(compute, what: str) -> float:
    try:
        result = compute()
    except OverflowError:
        raise Undefined(f"{what} is too large for float64") from None
    if not math.isfinite(result):
        raise Undefined(f"{what} is too large for float64")
    return result
