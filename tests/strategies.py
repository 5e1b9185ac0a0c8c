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

``large_and_deep_problems()`` draws files of large and small magnitudes (factors and offsets
from 1e-8 to 1e8, ``exp(30 v)``) and deep compositions (depth 3-6, chains of up to five
definitions), with hessian and square jacobian goals too (see its section below).

Profiles (``HYPOTHESIS_PROFILE``, default ``ci``): ``ci`` runs ``EXAMPLES["ci"]`` examples in each
random-expression test, ``long`` runs ``EXAMPLES["long"]`` (``DEEP_EXAMPLES`` for the tests on
``large_and_deep_problems``); both without deadline or example database, and derandomized, so
runs do not depend on earlier runs and draw the same files every time.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

# --- profiles -----------------------------------------------------------------------------

#: Tests in test_properties.py that derive random expressions (each runs the profile's count).
EXPRESSION_TESTS = 2
#: Random expressions per test, by profile: ci derives at least 500 in all, long 20,000.
EXAMPLES = {"ci": 260, "long": 10_000}

for _name, _count in EXAMPLES.items():
    settings.register_profile(
        _name, max_examples=_count, deadline=None, database=None, print_blob=True,
        derandomize=True,
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


def deep_profile(scale: float = 1.0) -> settings:
    """The selected profile with ``DEEP_EXAMPLES`` examples (times ``scale``), for the tests
    on ``large_and_deep_problems`` (each example derives several goals and checks)."""
    base = settings.get_profile(PROFILE)
    # No explain phase: it reruns a failing example under a tracer, which costs a minute here;
    # and in ci no shrinking, which can take minutes (each example derives several goals): a
    # failure shows the file as drawn (small already), the long profile shrinks it.
    skip = {Phase.explain} | ({Phase.shrink} if PROFILE == "ci" else set())
    return settings(base, max_examples=max(1, int(DEEP_EXAMPLES[PROFILE] * scale)),
                    phases=[phase for phase in Phase if phase not in skip])


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


# --- large and small magnitudes, deep compositions, chains of definitions -------------------
#
# ``large_and_deep_problems()`` draws files whose numbers span 1e-8 to 1e8 and whose bodies
# nest elementwise functions deeply: constant factors and offsets (``f = 1e-7 * ...``,
# ``f = 1e8 + ...``), fast exponentials (``sum_m exp(30 v[m])``), compositions of depth 3 to
# 6 of exp, log, tanh, sigmoid, sin, cos and sqrt, and chains ``Y0 = g(...)``,
# ``Y1 = g(Y0)``, ... of up to five definitions; zero terms written as differences
# (``sin(v)^2 + cos(v)^2``, IDENTITIES) and large linear tilts (``1e8 * sum_m v[m] + ...``:
# a gradient far larger than the Hessian).  Goals are ``grad``, mostly with a ``hessian`` wrt
# a small variable, and for a chain over ``m`` now and then a square ``jacobian``.
#
# Domains stay valid and values finite by construction: each layer of a composition knows a
# bound of its argument's size and gives one of its value; ``log`` and ``sqrt`` only ever
# see ``2 + sin(u)``, ``1 + u^2``, ``1 + exp(u)``, ``0.5 + sigmoid(u)`` or ``1.5 + tanh(u)``,
# and ``exp`` only a bounded argument (or ``-u^2``).

#: Counts of the large-and-deep property tests (each), by profile.
DEEP_EXAMPLES = {"ci": 45, "long": 3_000}

#: Constant factors and offsets from 1e-8 to 1e8.
MAGNITUDES = ("1e-8", "1e-7", "3e-6", "1e-4", "0.01", "100", "1e4", "2.5e5", "1e7", "1e8")
#: Factors of fast exponentials: exp(30 v) is about 1e13 at v = 1.
RATES = ("10", "20", "30")
#: Bound of every input's entries at the check's random values (drawn in [-1, 1] or [0.5, 1.5]).
INPUT_BOUND = 1.5
#: The largest argument ``exp`` is given in a composition (values stay below e^5 ~ 150 there).
EXP_ARGUMENT_LIMIT = 5.0

#: Layers of a composition: (template with ``{}`` for the argument, bound of the value from
#: the bound ``b`` of the argument, the largest bound of the argument it takes).
LAYERS = (
    ("tanh({})", lambda b: 1.0, math.inf),
    ("sigmoid({})", lambda b: 1.0, math.inf),
    ("sin({})", lambda b: 1.0, math.inf),
    ("cos({})", lambda b: 1.0, math.inf),
    ("exp({})", lambda b: math.exp(b), EXP_ARGUMENT_LIMIT),
    ("exp(-({})^2)", lambda b: 1.0, math.inf),
    ("log(2 + sin({}))", lambda b: math.log(3.0), math.inf),
    ("log(1 + ({})^2)", lambda b: math.log1p(b * b), math.inf),
    ("log(1 + exp({}))", lambda b: b + 1.0, 30.0),
    ("log(1.5 + tanh({}))", lambda b: 1.0, math.inf),
    ("sqrt(1 + ({})^2)", lambda b: math.sqrt(1 + b * b), math.inf),
    ("sqrt(2 + cos({}))", lambda b: math.sqrt(3.0), math.inf),
    ("sqrt(0.5 + sigmoid({}))", lambda b: math.sqrt(1.5), math.inf),
    ("({}) + 1.5", lambda b: b + 1.5, math.inf),
    ("2 * ({})", lambda b: 2 * b, math.inf),
)


def composition(draw, bound: float, depth: int) -> tuple[list[str], float]:
    """``depth`` layers of LAYERS, innermost first, for an argument whose values are at most
    ``bound`` in size, and a bound of the composition's value."""
    layers = []
    for _ in range(depth):
        fits = [layer for layer in LAYERS if bound <= layer[2]]
        template, value_bound, _ = draw(st.sampled_from(fits))
        layers.append(template)
        bound = value_bound(bound)
    return layers, bound


def compose(layers: list[str], argument: str) -> str:
    """The text of ``layers`` (innermost first) applied to ``argument``."""
    for template in layers:
        argument = template.format(argument)
    return argument


#: Links of a chain: (shape of the previous definition, shape of the next, the argument of
#: the link's composition with ``{y}`` for the previous name, the factor by which it may
#: exceed the previous bound (None: it adds INPUT_BOUND), and what is done with the
#: composition's value ``{}``).  Shapes are left-side indices; M has 3 entries, S 2.
LINKS = (
    (("m",), ("m",), "{y}[m]", 1.0, "{}"),
    (("m",), ("m",), "A[m,m1] * {y}[m1]", 3 * INPUT_BOUND, "{}"),
    (("m",), ("m",), "{y}[m] + v[m]", None, "{}"),
    (("m",), ("m",), "{y}[m]", 1.0, "({}) * v[m]"),
    (("m",), ("m",), "{y}[m]", 1.0, "{y}[m] * {}"),
    (("m",), ("s", "m"), "X[s,m] * {y}[m]", INPUT_BOUND, "{}"),
    (("m",), ("s", "m"), "X[s,m] + {y}[m]", None, "{}"),
    (("s", "m"), ("m",), "sum_s {y}[s,m]", 2.0, "{}"),
    (("s", "m"), ("m",), "y[s] * {y}[s,m]", 2 * INPUT_BOUND, "{}"),
    (("s", "m"), ("s", "m"), "{y}[s,m]", 1.0, "{}"),
)

#: The first definition of a chain, from inputs: (shape, argument, bound of the argument).
STARTS = (
    (("m",), "v[m]", INPUT_BOUND),
    (("m",), "A[m,m1] * v[m1]", 3 * INPUT_BOUND ** 2),
    (("m",), "A[m,m]", INPUT_BOUND),
    (("m",), "lam * v[m]", INPUT_BOUND ** 2),
    (("s", "m"), "X[s,m]", INPUT_BOUND),
    (("s", "m"), "y[s] * v[m]", INPUT_BOUND ** 2),
)

#: Sums whose value is 0 (or a constant) for every input, written so that they are not:
#: their gradients are zero, computed as differences of nearly equal terms.
IDENTITIES = (
    "sum_m ((v[m] + lam)^2 - v[m]^2 - 2 * lam * v[m] - lam^2)",
    "sum_m (sin(v[m])^2 + cos(v[m])^2)",
    "sum_m (log(exp(v[m])) - v[m])",
    "sum_m (exp(v[m] + lam) - exp(v[m]) * exp(lam))",
    "sum_{s,m} (X[s,m] * y[s] - y[s] * X[s,m])",
    "sum_m ((1 + exp(v[m]))^-1 - sigmoid(-v[m]))",
)

#: Variables whose Hessian (wrt.shape twice) the check compares entry by entry (at most 100).
SMALL_WRT = ("v", "y", "b", "lam", "mu")


def _inputs_in(text: str) -> list[str]:
    """The inputs ``text`` reads, in a fixed order."""
    return [n for n in ("v", "A", "X", "y", "b", "W", "lam", "mu")
            if re.search(rf"\b{n}\b", text)]


def _total(name: str, shape: tuple[str, ...]) -> str:
    """The sum of every entry of ``name``."""
    if not shape:
        return name
    head = f"sum_{shape[0]}" if len(shape) == 1 else f"sum_{{{','.join(shape)}}}"
    return f"{head} {name}[{','.join(shape)}]"


def _input_total(name: str) -> str:
    """The sum of every entry of the input ``name`` (``sum_{m,m1} A[m,m1]``)."""
    indices: list[str] = []
    for dim in INPUTS[name]:
        indices.append(next(i for i in INDEX_NAMES[dim] if i not in indices))
    return _total(name, tuple(indices))


def _magnify(draw, body: str, wrts: list[str] = ()) -> str:
    """``body`` under a constant factor, an offset, both, or neither; or tilted by a large
    linear term in one of the inputs ``wrts`` (a gradient far larger than the Hessian)."""
    inputs = [n for n in wrts if n in INPUTS]
    kinds = ("factor", "offset", "both", "none") + (("tilt",) if inputs else ())
    kind = draw(st.sampled_from(kinds))
    factor, offset = draw(st.sampled_from(MAGNITUDES)), draw(st.sampled_from(MAGNITUDES))
    if kind == "factor":
        return f"{factor} * ({body})"
    if kind == "offset":
        return f"{offset} + ({body})"
    if kind == "both":
        return f"{factor} * ({body}) + {offset}"
    if kind == "tilt":
        return f"{factor} * ({_input_total(draw(st.sampled_from(inputs)))}) + ({body})"
    return body


def _goals(draw, wrts: list[str], of: str = "f") -> list[str]:
    """``grad of wrt`` one or two of ``wrts``, and mostly a hessian wrt a small one too."""
    chosen = draw(st.lists(st.sampled_from(sorted(set(wrts))), min_size=1, max_size=2,
                           unique=True))
    lines = [f"grad {of} wrt {', '.join(chosen)}"]
    small = sorted(set(wrts) & set(SMALL_WRT))
    if small and draw(st.integers(0, 2)) > 0:
        lines.append(f"hessian {of} wrt {draw(st.sampled_from(small))}")
    return lines


@st.composite
def magnitude_problems(draw) -> DrawnProblem:
    """One scalar ``f`` whose value or gradient is anywhere from 1e-8 to 1e21 in size."""
    kind = draw(st.sampled_from(("expression", "squares", "exponential", "composition",
                                 "identity")))
    if kind == "identity":  # a term that is zero (or constant) written as a difference
        identity = draw(st.sampled_from(IDENTITIES))
        body = f"{draw(st.sampled_from(MAGNITUDES))} * ({identity}) + 1e-8 * sum_n b[n]^2"
        wrts = _inputs_in(identity) + ["b"]
    elif kind == "expression":  # a random body of the general strategy, magnified
        scope = Scope(dict(INPUTS))
        body = expression(draw, (), scope, draw(st.integers(1, 2)))
        wrts = sorted(n for n in scope.used if n in INPUTS) or ["v"]
    elif kind == "squares":
        name = draw(st.sampled_from(("v", "y", "b")))
        index = INDEX_NAMES[INPUTS[name][0]][0]
        body = f"sum_{index} {name}[{index}]^{draw(st.sampled_from(('2', '3', '4')))}"
        wrts = [name]
    elif kind == "exponential":
        body, wrts = f"sum_m exp({draw(st.sampled_from(RATES))} * v[m])", ["v"]
        if draw(st.booleans()):
            body, wrts = f"{body} + lam * sum_n b[n]^2", ["v", "b", "lam"]
    else:
        layers, _ = composition(draw, INPUT_BOUND, draw(st.integers(1, 3)))
        body, wrts = f"sum_m {compose(layers, 'v[m]')}", ["v"]
    lines = [f"f = {_magnify(draw, body, wrts)}"] + _goals(draw, wrts)
    return DrawnProblem(HEADER + "\n".join(lines) + "\n", ("f",), wrts[0])


@st.composite
def composition_problems(draw) -> DrawnProblem:
    """A composition of depth 3 to 6 in one definition, or a chain of up to five definitions
    ``Y0 = g(...)``, ``Y1 = g(Y0 ...)``, ... summed into ``f``."""
    shape, argument, bound = draw(st.sampled_from(STARTS))
    wrts = _inputs_in(argument)
    if draw(st.booleans()):
        layers, _ = composition(draw, bound, draw(st.integers(3, 6)))
        head = f"sum_{shape[0]}" if len(shape) == 1 else f"sum_{{{','.join(shape)}}}"
        lines = [f"f = {_magnify(draw, f'{head} {compose(layers, argument)}', wrts)}"]
        lines += _goals(draw, wrts)
        return DrawnProblem(HEADER + "\n".join(lines) + "\n", ("f",), wrts[0])
    layers, bound = composition(draw, bound, draw(st.integers(1, 3)))
    lines, names = [f"Y0[{','.join(shape)}] = {compose(layers, argument)}"], ["Y0"]
    for k in range(1, draw(st.integers(1, 5))):
        links = [link for link in LINKS if link[0] == shape]
        _, shape, argument, factor, outer = draw(st.sampled_from(links))
        previous = bound
        bound = bound + INPUT_BOUND if factor is None else bound * factor
        layers, bound = composition(draw, bound, draw(st.integers(1, 3)))
        if outer != "{}":  # times v[m] or times the previous definition
            bound *= INPUT_BOUND if "v[m]" in outer else previous
        text = outer.replace("{}", compose(layers, argument)).replace("{y}", names[-1])
        names.append(f"Y{k}")
        lines.append(f"Y{k}[{','.join(shape)}] = {text}")
        wrts += [n for n in _inputs_in(text) if n not in wrts]
    if draw(st.integers(0, 3)) == 0:  # a defined tensor as the variable
        wrts.append(draw(st.sampled_from(names)))
    lines.append(f"f = {_magnify(draw, _total(names[-1], shape), wrts)}")
    lines += _goals(draw, wrts)
    if shape == ("m",) and draw(st.integers(0, 2)) == 0:  # a square (3 x 3) jacobian
        lines.append(f"jacobian {names[-1]} wrt {draw(st.sampled_from(('v', 'A')))}")
    return DrawnProblem(HEADER + "\n".join(lines) + "\n", tuple(names) + ("f",), wrts[0])


def large_and_deep_problems() -> st.SearchStrategy[DrawnProblem]:
    """Either kind of file above."""
    return st.one_of(magnitude_problems(), composition_problems())
