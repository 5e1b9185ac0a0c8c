"""A parsed derivation file: dims, inputs, functions, definitions, assumptions and goals.

This is what the parser produces and every later stage reads.  It also holds the one error
type for bad input, which carries a source location so the CLI can print
``file:line:column``, the line and a caret.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from .terms import Index, Term
from .notation import DEFAULT as DEFAULT_NOTATION, Notation


@dataclass(frozen=True)
class Location:
    path: str
    line: int  # 1-based
    column: int  # 1-based
    text: str  # the whole source line, without its newline

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class TemplateError(ValueError):
    """A course's template (``indexcalc derive --template DIR``) could not be read or
    filled in: the message starts with its file and line where jinja2 knows them."""


class InputError(Exception):
    """Bad input: a message for the user, pointing at the place in the file."""

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    @property
    def path(self) -> str | None:
        return self.location.path if self.location else None

    @property
    def line(self) -> int | None:
        """1-based, or None when the error has no place in the file."""
        return self.location.line if self.location else None

    @property
    def column(self) -> int | None:
        """1-based, or None when the error has no place in the file."""
        return self.location.column if self.location else None

    def render(self) -> str:
        """The message as the CLI prints it: place, message, the line, a caret, a hint."""
        return _render("error", self.message, self.location, self.hint)


@dataclass(frozen=True)
class InputWarning:
    """A likely mistake in a file that is still valid (an implicit sum over more than it
    seems to cover): printed on standard error with its place; the derivation goes on."""

    message: str
    location: Location | None = None
    hint: str | None = None

    def render(self) -> str:
        return _render("warning", self.message, self.location, self.hint)


def _render(kind: str, message: str, location: Location | None, hint: str | None) -> str:
    if location is None:
        lines = [f"{kind}: {message}"]
    else:
        lines = [f"{location}: {kind}: {message}"]
        shown, column = _excerpt(location.text.expandtabs(1), location.column)
        lines.append(f"    {shown}")
        lines.append("    " + " " * (column - 1) + "^")
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)


#: A source line longer than this is shown as an excerpt around the error's column.
EXCERPT_WIDTH = 100


def _excerpt(text: str, column: int) -> tuple[str, int]:
    """``text`` cut to about EXCERPT_WIDTH characters around ``column`` (1-based), with
    ``...`` where it was cut, and the column of the same character in the excerpt."""
    if len(text) <= EXCERPT_WIDTH:
        return text, column
    start = max(0, min(column - 1 - EXCERPT_WIDTH // 2, len(text) - EXCERPT_WIDTH))
    end = start + EXCERPT_WIDTH
    head = "..." if start > 0 else ""
    tail = "..." if end < len(text) else ""
    return head + text[start:end] + tail, column - start + len(head)


@dataclass(frozen=True)
class InputTensor:
    """A leaf tensor ``X[S,M]``; a scalar input has no dims."""

    name: str
    dims: tuple[str, ...]
    location: Location | None = None
    #: ``input S[N,N] symmetric``: S[i,j] = S[j,i] (the check draws symmetric values; a
    #: gradient with respect to S is still the unconstrained one)
    symmetric: bool = False


@dataclass(frozen=True)
class Definition:
    """``Y[s,n] = body``, or ``L = loss(Y)`` (then ``body`` is None and ``loss_args`` is set)."""

    name: str
    indices: tuple[Index, ...]
    body: Term | None
    location: Location | None = None
    loss_args: tuple[str, ...] = ()

    @property
    def is_opaque_loss(self) -> bool:
        return self.body is None

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(i.dim for i in self.indices)


@dataclass(frozen=True)
class Assumption:
    """``assume lhs = rhs``: an identity the rewriter may use."""

    lhs: Term
    rhs: Term
    text: str
    location: Location | None = None


@dataclass(frozen=True)
class DimFormula:
    """A dim defined from others, ``dims U = T - K + 1``: whole numbers and dims under
    ``+ - *`` and ``//`` (floor division), as a tree of tuples ``("num", 3)``,
    ``("dim", "T")`` and ``(op, left, right)``."""

    tree: tuple
    text: str  # as written, for messages
    location: Location | None = field(default=None, compare=False)

    @property
    def dims(self) -> tuple[str, ...]:
        """The dims it uses, in order of appearance."""
        found: list[str] = []

        def walk(node):
            if node[0] == "dim":
                found.append(node[1])
            elif node[0] != "num":
                walk(node[1])
                walk(node[2])
        walk(self.tree)
        return tuple(dict.fromkeys(found))

    def evaluate(self, sizes: dict[str, int | None]) -> int | None:
        """Its value at ``sizes``; None if a dim it uses has no size."""
        def value(node):
            if node[0] == "num":
                return node[1]
            if node[0] == "dim":
                return sizes.get(node[1])
            a, b = value(node[1]), value(node[2])
            if a is None or b is None:
                return None
            if node[0] == "//":
                return None if b == 0 else a // b
            return {"+": a + b, "-": a - b, "*": a * b}[node[0]]
        return value(self.tree)

    def code(self, spell) -> str:
        """Python code for it, each dim spelled by ``spell`` (``X.shape[0]``)."""
        def text(node, outer: int) -> str:
            if node[0] == "num":
                return str(node[1])
            if node[0] == "dim":
                return spell(node[1])
            level = 1 if node[0] in "+-" else 2
            left = text(node[1], level)
            right = text(node[2], level + 1)  # a - (b - c), a // (b * c) keep brackets
            out = f"{left} {node[0]} {right}"
            return f"({out})" if level < outer else out
        return text(self.tree, 0)


def linear_combination(parts) -> tuple[dict[str, Fraction], Fraction]:
    """``sum_k c_k f_k`` for (c_k, f_k) pairs, each f a linear form in dims: ({dim: coefficient},
    constant), zero coefficients dropped."""
    lin: dict[str, Fraction] = {}
    const = Fraction(0)
    for c, (form, offset) in parts:
        for d, v in form.items():
            lin[d] = lin.get(d, 0) + c * v
        const += c * offset
    return {d: v for d, v in lin.items() if v}, const


@dataclass(frozen=True)
class Claim:
    """``claim dL_dW = dL_dY.T @ X`` (a matrix claim: ``tree`` is the parsed NumPy text) or
    ``claim dL_db[i] = sum_s dL_dY[s,i]`` (an index claim: ``indices`` and ``term``), about
    the result ``goal`` (CONTRACT section 5)."""

    name: str  # the result's JSON name, dL_dW
    goal: "Goal"
    text: str  # the right side as written
    location: Location | None = None
    tree: object = None  # matrix claim: syntax.numpy_text.Node
    indices: tuple[Index, ...] = ()  # index claim: the left side's indices
    term: Term | None = None  # index claim: the right side
    #: an index claim whose left side has another number of indices than the result
    rank_mismatch: str = ""

    @property
    def kind(self) -> str:
        return "matrix" if self.term is None else "index"


@dataclass(frozen=True)
class Goal:
    """``grad L wrt W``, ``jacobian Y wrt X`` or ``hessian f wrt x`` (one goal per wrt)."""

    kind: str  # "grad" | "jacobian" | "hessian"
    of: str
    wrt: str
    location: Location | None = None

    def describe(self) -> str:
        """``grad L wrt W``, as the goal statement says it."""
        return f"{self.kind} {self.of} wrt {self.wrt}"


@dataclass
class Problem:
    title: str | None = None
    dims: dict[str, int | None] = field(default_factory=dict)
    inputs: dict[str, InputTensor] = field(default_factory=dict)
    functions: dict[str, Location | None] = field(default_factory=dict)
    definitions: dict[str, Definition] = field(default_factory=dict)
    assumptions: list[Assumption] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    #: ``claim`` statements, in file order
    claims: list[Claim] = field(default_factory=list)
    path: str = "<input>"
    #: likely mistakes found while reading the file, in file order
    warnings: list[InputWarning] = field(default_factory=list)
    #: dims defined from others (``dims U = T - K + 1``); their ``dims`` entry is the size
    #: when the dims they use have sizes, else None
    dim_formulas: dict[str, DimFormula] = field(default_factory=dict)
    #: how results are written (``notation:`` statements; the command line may add more)
    notation: Notation = DEFAULT_NOTATION
    _reach: dict = field(default_factory=dict, repr=False, compare=False)
    _mentions: dict = field(default_factory=dict, repr=False, compare=False)

    def tensor_dims(self, name: str) -> tuple[str, ...]:
        if name in self.inputs:
            return self.inputs[name].dims
        return self.definitions[name].dims

    def is_defined(self, name: str) -> bool:
        return name in self.definitions

    def uses(self, name: str) -> frozenset[str]:
        """Tensors the definition of ``name`` mentions directly (none for an input)."""
        d = self.definitions.get(name)
        if d is None:
            return frozenset()
        return frozenset(d.loss_args) if d.is_opaque_loss else d.body.tensor_names

    def definitions_mentioning(self, names) -> list[Definition]:
        """Definitions (with a body) whose body mentions only tensors among ``names``, in
        file order: the candidates for folding a term that mentions ``names``."""
        if not self._mentions:
            for d in self.definitions.values():
                if d.body is not None:
                    for used in d.body.tensor_names:
                        self._mentions.setdefault(used, []).append(d)
        seen: dict[str, Definition] = {}
        for name in names:
            for d in self._mentions.get(name, ()):
                if d.body.tensor_names <= names:
                    seen[d.name] = d
        order = list(self.definitions)
        return sorted(seen.values(), key=lambda d: order.index(d.name))

    def linear_dim(self, name: str) -> tuple[dict[str, Fraction], Fraction] | None:
        """The dim ``name`` as a linear combination of undefined dims plus a constant
        (``U = T - K + 1`` as ({T: 1, K: -1}, 1)); None where a formula is not linear
        (``//``, a product of dims)."""
        formula = self.dim_formulas.get(name)
        if formula is None:
            return {name: Fraction(1)}, Fraction(0)

        def value(node):
            if node[0] == "num":
                return {}, Fraction(node[1])
            if node[0] == "dim":
                return self.linear_dim(node[1])
            a, b = value(node[1]), value(node[2])
            if a is None or b is None or node[0] == "//":
                return None
            if node[0] == "*":
                if a[0] and b[0]:
                    return None
                number, form = (a, b) if not a[0] else (b, a)
                return linear_combination([(number[1], form)])
            return linear_combination([(1, a), (1 if node[0] == "+" else -1, b)])
        return value(formula.tree)

    def reaches(self, name: str) -> frozenset[str]:
        """Every tensor ``name`` depends on, through any chain of definitions."""
        if name not in self._reach:
            self._reach[name] = frozenset()  # a cycle (rejected by the parser) stops here
            out = set(self.uses(name))
            for used in self.uses(name):
                out |= self.reaches(used)
            self._reach[name] = frozenset(out)
        return self._reach[name]
