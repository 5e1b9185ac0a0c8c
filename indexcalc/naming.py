"""Every name indexcalc generates, spelled in one place.

Gradients and derivatives (``dL_dW``, ``dY_dX``, ``d2f_dx2``), the code names of an
unspecified function's derivatives (``h``, ``h_prime``, ``h_prime2``, ... of any order),
temporaries of generated code (``_t1``), fresh index names from an unbounded supply
(``i, j, k, ...``, then ``i2, j2, ...``), and the spelling of a user's name in generated
code (``code_name``: ``np`` and Python keywords gain an underscore, ``lambda_``).
"""
from __future__ import annotations

import itertools
import keyword
import re
from typing import Iterable, Iterator

#: Index names given to the entries of a result, in order (the documents use i, j).
RESULT_INDEX_NAMES = "ijklpqrtuvwabcdefghmnoxyz"
#: Index names given to the entries of an intermediate tensor in the chain rule.
CONSUMER_INDEX_NAMES = "snmcdkpqrtuvwxyzabefgh"


def gradient(of: str, wrt: str) -> str:
    """The gradient of the scalar ``of`` with respect to ``wrt``: ``dL_dW``; also the name of
    the upstream gradient ``dL_dY`` of an unspecified loss."""
    return f"d{of}_d{wrt}"


def jacobian(of: str, wrt: str) -> str:
    """``dY_dX``: spelled like a gradient (CONTRACT section 4)."""
    return gradient(of, wrt)


def hessian(of: str, wrt: str) -> str:
    """``d2f_dx2``."""
    return f"d2{of}_d{wrt}2"


def result(kind: str, of: str, wrt: str) -> str:
    """The name of a result of ``kind`` (``grad``, ``jacobian``, ``hessian``)."""
    return hessian(of, wrt) if kind == "hessian" else gradient(of, wrt)


def derivative_function(name: str, order: int) -> str:
    """The code name of the ``order``-th derivative of a declared function: ``h``,
    ``h_prime``, ``h_prime2``, ``h_prime3``, ..."""
    if order == 0:
        return name
    return f"{name}_prime" + (str(order) if order > 1 else "")


_DERIVATIVE_NAME = re.compile(r"^(?P<name>.+?)_prime(?P<order>[2-9]|[1-9][0-9]+)?$")


def split_derivative_function(code_name: str) -> tuple[str, int]:
    """The inverse of ``derivative_function``: ``h_prime2`` -> ``("h", 2)``, ``h`` -> ``("h", 0)``."""
    m = _DERIVATIVE_NAME.match(code_name)
    if m is None:
        return code_name, 0
    return m.group("name"), int(m.group("order") or 1)


def temporary(number: int) -> str:
    """A temporary of generated code: ``_t1``, ``_t2``, ..."""
    return f"_t{number}"


def index_names(preferred: str = RESULT_INDEX_NAMES) -> Iterator[str]:
    """Index names without end: the ``preferred`` letters, then each with 2, 3, ..."""
    yield from preferred
    for n in itertools.count(2):
        for letter in preferred:
            yield f"{letter}{n}"


def fresh_index(taken: Iterable[str] | set[str], preferred: str = RESULT_INDEX_NAMES) -> str:
    """The first name of ``index_names(preferred)`` not in ``taken``."""
    taken = taken if isinstance(taken, (set, frozenset)) else set(taken)
    return next(n for n in index_names(preferred) if n not in taken)


def fresh_variant(base: str, taken: set[str] | frozenset[str]) -> str:
    """A new index name near ``base`` (``k`` -> ``k2``, ``k3``, ...) that is not ``taken``."""
    stem = base.rstrip("0123456789") or base
    return next(f"{stem}{n}" for n in itertools.count(2) if f"{stem}{n}" not in taken)


#: Names that are Greek letters in LaTeX (``\\gamma``): the printers write a tensor named
#: ``gamma`` so, and the LaTeX reader reads ``\\gamma`` back as that name.
GREEK_LETTERS = tuple(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu "
    "nu xi pi rho sigma tau upsilon phi varphi chi psi omega "
    "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split())


#: Names generated Python code cannot use for a user's tensor, dim or function: NumPy's
#: module name and Python's keywords (builtins are never called by generated code, so
#: ``float`` or ``sum`` may name an argument).  File names never start with ``_``, so the
#: temporaries ``_t1`` cannot clash either.
PYTHON_RESERVED = frozenset(keyword.kwlist) | {"np"}


def code_name(name: str) -> str:
    """``name`` as generated code spells it: ``np`` -> ``np_``, ``lambda`` -> ``lambda_``,
    ``lambda_`` -> ``lambda__`` (so that no two names meet), anything else unchanged."""
    return f"{name}_" if name.rstrip("_") in PYTHON_RESERVED else name


def user_name(code: str) -> str:
    """The inverse of ``code_name``."""
    if code.endswith("_") and code.rstrip("_") in PYTHON_RESERVED:
        return code[:-1]
    return code
