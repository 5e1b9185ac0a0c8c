"""Hypothesis strategies for derivation files, and the settings profiles of the random tests.

``problems()`` draws a whole derivation file as TEXT (so the parser is exercised too): a fixed
header of dims and inputs, one to three definitions built from every construct of the
language (tensor entries, explicit sums, the Einstein convention, ``+ - * / ^``, the builtin
functions, a declared function and its derivative, deltas, numbers, dims as numbers, scalar
inputs), and a ``grad`` goal.

The expressions are well typed by construction: ``expression(free)`` returns text whose free
indices are exactly ``free`` (a tuple of index names), every index is written on a tensor axis
or joined by a delta to one, and a new summed index is never a name already in scope.
Inputs of ``log`` and ``sqrt``, denominators and negative powers are positive by construction
(``1 + a^2``, ``exp(a)``, ``2 + sin(a)`` ...), so the numbers stay finite.

Profiles (``HYPOTHESIS_PROFILE``, default ``ci``): ``ci`` runs ``EXAMPLES["ci"]`` examples in each
random-expression test, ``long`` runs ``EXAMPLES["long"]``; both without deadline or example
database, so runs do not depend on earlier runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# --- profiles -----------------------------------------------------------------------------

#: Tests in test_properties.py that derive random expressions (each runs the profile's count).
EXPRESSION_TESTS = 2
#: Random expressions per test, by profile: ci derives at least 500 in all, long 20,000.
EXAMPLES = {"ci": 260, "long": 10_000}

for _name, _count in EXAMPLES.items():
    settings.register_profile(
        _name, max_examples=_count, deadline=None, database=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
    )

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in EXAMPLES:
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: choose one of {', '.join(EXAMPLES)}")


def profile(scale: float = 1.0) -> settings:
    """The selected profile, with ``scale`` times its number of examples."""
    base = settings.get_profile(PROFILE)
    return settings(base, max_examples=max(1, int(base.max_examples * scale)))


# --- the fixed part of every file ----------------------------------------------------------

#: Dims and their index names; sizes are small (the check's finite differences are cheap)
#: and distinct (a transposition shows).
DIMS = {"S": 2, "M": 3, "N": 4}
INDEX_NAMES = {dim: (dim.lower(),) + tuple(f"{dim.lower()}{k}" for k in range(1, 8)) for dim in DIMS}
DIM_OF = {name: dim for dim, names in INDEX_NAMES.items() for name in names}

#: Input tensors by their dims; ``lam`` and ``mu`` are scalars.
INPUTS = {"X": ("S", "M"), "W": ("N", "M"), "A": ("M", "M"), "y": ("S",), "v": ("M",),
          "b": ("N",), "lam": (), "mu": ()}

HEADER = (
    "dims " + ", ".join(f"{d}={n}" for d, n in DIMS.items()) + "\n"
    "input " + ", ".join(f"{t}[{','.join(d)}]" if d else t for t, d in INPUTS.items()) + "\n"
    "function h\n"
)

SMOOTH = ("exp", "tanh", "sigmoid", "sin", "cos")
NUMBERS = ("1", "2", "3", "0.5", "1.5", "2.5", "1e-1", "4")


@dataclass
class Scope:
    """What an expression may use: tensors defined so far (name -> dims) and index names
    already taken on the way down (free indices of enclosing nodes and bound ones)."""

    tensors: dict[str, tuple[str, ...]]
    taken: frozenset[str] = frozenset()
    used: set[str] = field(default_factory=set)  # tensors written so far (for wrt)

    def inside(self, *names: str) -> "Scope":
        return Scope(self.tensors, self.taken | frozenset(names), self.used)


def _fresh(draw, scope: Scope, dim: str | None = None) -> str:
    """A new index name (over ``dim``, or a random dim) not taken in ``scope``."""
    dims = [dim] if dim else sorted(INDEX_NAMES)
    choices = [n for d in dims for n in INDEX_NAMES[d] if n not in scope.taken]
    return draw(st.sampled_from(choices))


def _split(draw, free: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Two index tuples whose union is ``free`` (they may overlap: an elementwise product)."""
    left, right = [], []
    for name in free:
        side = draw(st.sampled_from(("left", "right", "both")))
        (left if side != "right" else right).append(name)
        if side == "both":
            right.append(name)
    return tuple(left), tuple(right)


def _subset(draw, free: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name for name in free if draw(st.booleans()))


def leaf(draw, free: tuple[str, ...], scope: Scope) -> str:
    """A leaf with exactly the free indices ``free``: a number, a dim, a scalar or a tensor
    entry; a product of entries when no single tensor has the right dims."""
    if not free:
        kind = draw(st.sampled_from(("entry", "defined", "scalar", "trace", "number", "dim")))
        defined = sorted(t for t in scope.tensors if t not in INPUTS)
        if kind == "defined" and defined:  # a definition made earlier, summed over all axes
            name = draw(st.sampled_from(defined))
            scope.used.add(name)
            dims = scope.tensors[name]
            if not dims:
                return name
            indices: list[str] = []
            for dim in dims:
                indices.append(_fresh(draw, scope.inside(*indices), dim))
            return f"sum_{{{','.join(indices)}}} {name}[{','.join(indices)}]"
        if kind == "number":
            return draw(st.sampled_from(NUMBERS))
        if kind == "dim":
            return draw(st.sampled_from(sorted(DIMS)))
        scalars = sorted(t for t, d in scope.tensors.items() if not d)
        if kind == "scalar" and scalars:
            name = draw(st.sampled_from(scalars))
            scope.used.add(name)
            return name
        if kind == "trace" and scope.tensors.get("A") == ("M", "M"):
            index = _fresh(draw, scope, "M")
            scope.used.add("A")
            return f"A[{index},{index}]"  # Einstein: a trace inside one entry
        # A full contraction of a vector: v[m] v[m] or y[s] ...
        vectors = sorted(t for t, d in scope.tensors.items() if len(d) == 1)
        name = draw(st.sampled_from(vectors))
        index = _fresh(draw, scope, scope.tensors[name][0])
        scope.used.add(name)
        return f"{name}[{index}] * {name}[{index}]"
    dims = sorted(DIM_OF[i] for i in free)
    fits = sorted(t for t, d in scope.tensors.items() if sorted(d) == dims)
    if fits and not (len(free) == 1 and DIM_OF[free[0]] == "M" and draw(st.integers(0, 4)) == 3):
        name = draw(st.sampled_from(fits))
        remaining = list(free)
        indices = []
        for dim in scope.tensors[name]:
            choices = [i for i in remaining if DIM_OF[i] == dim]
            index = draw(st.sampled_from(choices))
            remaining.remove(index)
            indices.append(index)
        scope.used.add(name)
        return f"{name}[{','.join(indices)}]"
    if len(free) == 1 and scope.tensors.get("A") == ("M", "M") and DIM_OF[free[0]] == "M":
        scope.used.add("A")
        return f"A[{free[0]},{free[0]}]"  # a diagonal
    if len(free) == 1:  # no vector over this dim (cannot happen with INPUTS, but be safe)
        raise AssertionError(f"no tensor over {DIM_OF[free[0]]}")
    first, rest = free[:1], free[1:]
    return f"{leaf(draw, first, scope)} * {leaf(draw, rest, scope)}"


def expression(draw, free: tuple[str, ...], scope: Scope, depth: int) -> str:
    """Text of an expression whose free indices are exactly ``free``."""
    scope = scope.inside(*free)
    if depth <= 0:
        return leaf(draw, free, scope)
    kind = draw(st.sampled_from((
        "leaf", "add", "sub", "product", "juxtapose", "divide", "neg", "power", "function",
        "positive_function", "declared", "sum", "einstein", "delta",
    )))
    sub = depth - 1
    if kind == "leaf":
        return leaf(draw, free, scope)
    if kind in ("add", "sub"):
        count = draw(st.integers(2, 3))
        parts = []
        for k in range(count):
            # Broadcasting: a term may lack some indices as long as one term has them all.
            own = free if k == 0 else draw(st.sampled_from((free, _subset(draw, free))))
            parts.append(expression(draw, own, scope, sub))
        ops = [draw(st.sampled_from(("+", "-"))) if kind == "sub" else "+" for _ in parts[1:]]
        text = f"({parts[0]})"
        for op, part in zip(ops, parts[1:]):
            text += f" {op} ({part})"
        return text
    if kind in ("product", "juxtapose"):
        left, right = _split(draw, free)
        sep = " * " if kind == "product" else " "
        return f"({expression(draw, left, scope, sub)}){sep}({expression(draw, right, scope, sub)})"
    if kind == "divide":
        return f"({expression(draw, free, scope, sub)}) / {positive(draw, _subset(draw, free), scope, sub)}"
    if kind == "neg":
        return f"-({expression(draw, free, scope, sub)})"
    if kind == "power":
        if draw(st.booleans()):
            exponent = draw(st.sampled_from(("2", "3")))
            return f"({expression(draw, free, scope, sub)})^{exponent}"
        exponent = draw(st.sampled_from(("-1", "-2", "0.5", "(-1)")))
        return f"{positive(draw, free, scope, sub)}^{exponent}"
    if kind == "function":
        name = draw(st.sampled_from(SMOOTH))
        return f"{name}({expression(draw, free, scope, sub)})"
    if kind == "positive_function":
        name = draw(st.sampled_from(("log", "sqrt")))
        return f"{name}{positive(draw, free, scope, sub)}"
    if kind == "declared":
        name = draw(st.sampled_from(("h", "h'")))
        return f"{name}({expression(draw, free, scope, sub)})"
    if kind == "sum":
        count = draw(st.integers(1, 2))
        bound: list[str] = []
        for _ in range(count):
            bound.append(_fresh(draw, scope.inside(*bound)))
        inner = expression(draw, free + tuple(bound), scope, sub)
        head = f"sum_{bound[0]}" if count == 1 else f"sum_{{{','.join(bound)}}}"
        return f"{head} ({inner})"
    if kind == "einstein":  # a repeated index in one product: summed implicitly
        index = _fresh(draw, scope)
        left, right = _split(draw, free)
        inner = scope.inside(index)
        return (f"({expression(draw, left + (index,), inner, sub)}) * "
                f"({expression(draw, right + (index,), inner, sub)})")
    assert kind == "delta"
    if not free:
        return expression(draw, free, scope, sub)
    # delta(i,j) B[..j..], j summed by the Einstein convention: B at j instead of i.
    i = draw(st.sampled_from(free))
    j = _fresh(draw, scope, DIM_OF[i])
    rest = tuple(j if name == i else name for name in free)
    a, b = (i, j) if draw(st.booleans()) else (j, i)
    return f"delta({a},{b}) * ({expression(draw, rest, scope.inside(j), sub)})"


def positive(draw, free: tuple[str, ...], scope: Scope, depth: int) -> str:
    """A parenthesised expression with free indices ``free`` whose values are positive and
    bounded away from zero."""
    kind = draw(st.sampled_from(("square", "exp", "sin", "sigmoid", "constant")))
    if kind == "constant" and not free:
        return draw(st.sampled_from(("(2)", "(S)", "(0.5)", "(lam^2 + 1)")))
    inner = expression(draw, free, scope, max(depth - 1, 0))
    if kind == "exp":
        return f"(exp({inner}))"
    if kind == "sin":
        return f"(2 + sin({inner}))"
    if kind == "sigmoid":
        return f"(0.5 + sigmoid({inner}))"
    return f"(1 + ({inner})^2)"


@dataclass(frozen=True)
class DrawnProblem:
    """A drawn derivation file and what it asks for."""

    text: str
    definitions: tuple[str, ...]  # names, in order
    wrt: str

    def __str__(self) -> str:  # hypothesis prints this for a failing example
        return self.text


@st.composite
def problems(draw, max_depth: int = 3, with_loss: bool | None = None) -> DrawnProblem:
    """A derivation file with one to three definitions and ``grad <scalar> wrt <tensor>``.

    The last definition is a scalar ``f = ...`` or an opaque ``L = loss(Z)``; earlier ones
    define tensors that later ones use like inputs.  The ``wrt`` tensor is one the scalar
    depends on, and now and then any input (which may give a zero gradient)."""
    tensors = dict(INPUTS)
    lines: list[str] = []
    uses: dict[str, set[str]] = {}  # definition -> tensors its body writes

    def define(name: str, indices: tuple[str, ...], min_depth: int) -> None:
        scope = Scope(tensors)
        body = expression(draw, indices, scope, draw(st.integers(min_depth, max_depth)))
        lines.append(f"{name}[{','.join(indices)}] = {body}" if indices else f"{name} = {body}")
        uses[name] = scope.used
        tensors[name] = tuple(DIM_OF[i] for i in indices)

    for k in range(draw(st.integers(0, 2))):
        define(f"Y{k}", draw(st.sampled_from(SHAPES)), 0)
    loss = draw(st.booleans()) if with_loss is None else with_loss
    if loss:
        define("Z", draw(st.sampled_from(SHAPES)), 1)
        lines.append("L = loss(Z)")
        uses["L"] = {"Z"}
        of = "L"
    else:
        define("f", (), 1)
        of = "f"
    reach, todo = set(), [of]
    while todo:
        for used in uses.get(todo.pop(), ()):
            if used not in reach:
                reach.add(used)
                todo.append(used)
    candidates = sorted(reach)
    if not candidates or draw(st.integers(0, 9)) == 7:  # now and then one that may be unused
        candidates = sorted(INPUTS)
    wrt = draw(st.sampled_from(candidates))
    lines.append(f"grad {of} wrt {wrt}")
    return DrawnProblem(HEADER + "\n".join(lines) + "\n", tuple(uses), wrt)


#: Left sides of the tensor definitions.
SHAPES = (("s", "m"), ("s",), ("m",), (), ("n", "m"), ("m", "m1"), ("s", "n"))
