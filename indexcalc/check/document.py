"""Checking a worked solution link by link (CONTRACT section 6).

Each chain of the document's display math (``syntax.latex.read_document``) is split into
links; each side is read (``syntax.latex.read_side``) and evaluated numerically in a
world of the context file: the numeric check's sizes and random inputs
(``check.numeric.make_world``, assumptions made true, kinks avoided), an unspecified loss
``L = loss(Y)`` as the linear loss whose gradient is the upstream gradient ``dL/dY``.
A side is a value over named indices (``W_{ij}``: an array with axes i, j) or a whole
matrix (``\\mathbf{W}``, ``(\\partial L/\\partial \\mathbf{Y})^T \\mathbf{X}``).  Derivative
symbols are the true derivatives, by the complex step on the forward definitions (exact to
rounding): ``\\frac{\\partial E}{\\partial V_{ij}}`` perturbs each entry of ``V`` by ``i h``,
recomputes what depends on it, and reads the imaginary part of ``E``; ``V`` may be an input
or a defined tensor (``\\partial L / \\partial Y_{sn}`` holds ``Y``'s entries as the
variables, the backpropagation reading).

The worlds use the check's small distinct sizes (3, 4, 5, ...) whatever sizes ``dims``
gives: a link does not depend on them, and each derivative symbol costs one evaluation
per entry of its variable.  A link holds when both sides agree, entry for entry over their free indices, to the
check's tolerance (relative to the larger side) on ``DRAWS`` worlds; it does not hold with
a counterexample, or with the reason when the two sides have different shapes or the
notation is itself wrong; it is not understood when a side cannot be read or evaluated,
and says what and where.  Vectors in a matrix product are columns, or rows where only that
makes the product well formed (the documents use both); ``\\mathbf{1}`` takes its length
from what it meets.  A condition stated just before a display ("If $i = k$,") restricts the
comparison to the entries where it holds.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from ..functions import builtin
from ..problem import InputError, Location, Problem
from ..syntax import latex as lx
from .claims import Counterexample, difference, world_inputs
from .numeric import COMPARE, COMPLEX_H, Evaluator, World, make_world

#: Random worlds each link is compared on.
DRAWS = 2
#: Largest variable a derivative symbol perturbs entry by entry.
MAX_VARIABLE_ENTRIES = 4096

HOLDS, DOES_NOT_HOLD, NOT_UNDERSTOOD = "holds", "does not hold", "not understood"


@dataclass(frozen=True)
class Link:
    """One link ``left = right`` of a chain, with its verdict."""

    line: int  # the document line of the right side
    column: int
    source: str  # that line of the document
    left: str  # the two sides as read, in the file language ("" when not read)
    right: str
    left_latex: str
    right_latex: str
    relation: str  # "=" or "iff"
    verdict: str
    reason: str = ""
    counterexample: Counterexample | None = None
    context: str = ""  # the context file the link was decided in
    display: tuple[int, int] = (0, 0)  # the span of its display in the document

    def to_json(self) -> dict:
        out = {"line": self.line, "column": self.column, "source": self.source,
               "left": self.left, "right": self.right, "verdict": self.verdict,
               "reason": self.reason, "context": self.context}
        if self.counterexample is not None:
            out["counterexample"] = {**self.counterexample.to_json(),
                                     "left": self.counterexample.derived,
                                     "right": self.counterexample.claimed}
        else:
            out["counterexample"] = None
        return out


@dataclass(frozen=True)
class DocumentReport:
    path: str
    links: tuple[Link, ...]

    @property
    def first_wrong_line(self) -> int | None:
        return next((k.line for k in self.links if k.verdict == DOES_NOT_HOLD), None)

    def count(self, verdict: str) -> int:
        return sum(1 for k in self.links if k.verdict == verdict)

    def to_json(self) -> dict:
        return {"document": self.path, "links": [k.to_json() for k in self.links],
                "first_wrong_line": self.first_wrong_line,
                "summary": {v: self.count(v) for v in (HOLDS, DOES_NOT_HOLD, NOT_UNDERSTOOD)}}


class NotUnderstood(Exception):
    def __init__(self, message: str, offset: int | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset


class Wrong(Exception):
    """The two sides cannot be equal whatever the values (their shapes differ)."""


def check_document(text: str, path: str, problem: Problem, load=None) -> DocumentReport:
    """Every link of the document ``text`` decided in the context of ``problem``; ``load``
    reads the context file a ``<!-- indexcalc: FILE -->`` switch names (a path relative
    to the document)."""
    displays = lx.read_document(text)
    macros = lx.read_macros(text)
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    contexts: dict[str | None, _Context] = {None: _Context(problem, path, macros)}
    links: list[Link] = []
    for display in displays:
        for chain in display.chains:
            context = contexts.get(chain.context)
            if context is None:
                if load is None:
                    raise InputError(f"{path}: a context switch names {chain.context}, "
                                     "which cannot be read here")
                try:
                    problem_here = load(chain.context)
                except InputError as error:
                    if error.path is not None and Path(error.path).name != Path(chain.context).name:
                        raise  # an error inside the context file: its own place
                    line, column = _place(chain.display[0], starts)
                    raise InputError(
                        f"the context file {chain.context} named before this display cannot be "
                        f"read: {error.message}", Location(path, line, column, lines[line - 1]),
                        hint="the path of <!-- indexcalc: FILE --> is relative to the document"
                    ) from None
                context = contexts[chain.context] = _Context(problem_here, chain.context, macros)
            links.extend(context.chain_links(chain, lines, starts))
    return DocumentReport(path, tuple(links))


def _shown(node: lx.Node | None, vocabulary: lx.Vocabulary) -> str:
    return lx.to_text(node, vocabulary.dims) if node is not None else ""


#: Bound indices are renamed apart before evaluation (``k`` of one sum and ``k`` of another,
#: or a free ``k``, may range over different dims): ``k`` becomes ``k~1``.
def _rename_bound(node: lx.Node, mapping: dict[str, str] | None = None,
                  counter: list[int] | None = None) -> lx.Node:
    mapping = mapping or {}
    counter = counter if counter is not None else [0]

    def name(i: str) -> str:
        return mapping.get(i, i)

    def cond(c):
        return None if c is None else lx.Condition(name(c.a), c.op, name(c.b))

    if isinstance(node, lx.Sum):
        inner = dict(mapping)
        for i in node.indices:
            counter[0] += 1
            inner[i] = f"{i}~{counter[0]}"
        body = _rename_bound(node.body, inner, counter)
        c = node.condition
        condition = None if c is None else lx.Condition(
            inner.get(c.a, c.a), c.op, inner.get(c.b, c.b))
        return replace(node, indices=tuple(inner[i] for i in node.indices), body=body,
                       condition=condition)
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, lx.Node):
            changes[f.name] = _rename_bound(value, mapping, counter)
        elif f.name in ("indices",) and value is not None:
            changes[f.name] = tuple(name(i) for i in value)
        elif f.name in ("a", "b") and isinstance(value, str):
            changes[f.name] = name(value)
        elif f.name == "terms":
            changes[f.name] = tuple((sign, _rename_bound(t, mapping, counter))
                                    for sign, t in value)
        elif f.name == "branches":
            changes[f.name] = tuple((_rename_bound(v, mapping, counter), cond(c))
                                    for v, c in value)
    return replace(node, **changes) if changes else node


def _place(offset: int, starts: list[int]) -> tuple[int, int]:
    """The line and column (1-based) of an offset into the document."""
    line = bisect.bisect_right(starts, offset) - 1
    return line + 1, offset - starts[line] + 1


class _Context:
    """One context file's worlds and names."""

    def __init__(self, problem: Problem, name: str, macros: dict[str, str] | None = None):
        self.problem = problem
        self.name = name
        self.macros = macros or {}
        self.worlds = [make_world(problem, seed, small=True) for seed in range(DRAWS)]
        self.vocabulary = lx.Vocabulary(
            frozenset(problem.inputs) | frozenset(problem.definitions),
            frozenset(problem.dims), frozenset(problem.functions),
            {name: problem.reaches(name) for name in problem.definitions})

    def chain_links(self, chain: lx.Chain, lines: list[str], starts: list[int]) -> list[Link]:
        read: list[tuple[lx.Node | None, str]] = []
        shown: list[lx.Node | None] = []
        for piece in chain.pieces:
            try:
                read.append((lx.read_side(piece.text, piece.offset, self.vocabulary,
                                                 self.macros), ""))
                shown.append(read[-1][0])
            except lx.LatexError as error:
                line, column = _place(error.offset, starts)
                kind = "wrong" if error.wrong else "unread"
                read.append((None, f"{kind}:{error.message} (line {line}, column {column})"))
                shown.append(None)
        read = [(_rename_bound(node) if node is not None else None, error)
                for node, error in read]
        head_order: tuple[str, ...] | None = None
        for node, _ in read:
            if node is not None:
                head_order = _free_order(node)
                break
        values: dict[tuple[int, int], Entries | Matrix] = {}  # (piece, world) -> value
        sizes = self._chain_sizes([node for node, _ in read if node is not None])
        out = []
        for k in range(1, len(chain.pieces)):
            piece = chain.pieces[k]
            line, column = _place(piece.offset, starts)
            (a, a_err), (b, b_err) = read[k - 1], read[k]
            left_tex, right_tex = chain.pieces[k - 1].text, piece.text
            base = dict(line=line, column=column, source=lines[line - 1],
                        left=_shown(shown[k - 1], self.vocabulary),
                        right=_shown(shown[k], self.vocabulary),
                        left_latex=left_tex, right_latex=right_tex,
                        relation=piece.relation or "=", context=self.name,
                        display=chain.display)
            errors = [e for e in (a_err, b_err) if e]
            if chain.unread_condition:
                errors.append(f"unread:the condition ${chain.unread_condition}$ before the "
                              "display is not read")
            if errors:
                wrong = [e for e in errors if e.startswith("wrong:")]
                if wrong:
                    out.append(Link(**base, verdict=DOES_NOT_HOLD,
                                    reason="the notation is wrong: " + wrong[0][len("wrong:"):]))
                else:
                    out.append(Link(**base, verdict=NOT_UNDERSTOOD,
                                    reason=errors[0].split(":", 1)[1]))
                continue
            out.append(self._decide(base, a, b, k, values, chain, head_order, starts, sizes))
        return out

    def _chain_sizes(self, nodes: list[lx.Node]) -> list[dict[str, int]]:
        """Per world, the ranges of the indices the whole chain uses (an index takes its
        range from a tensor axis anywhere in the chain: ``delta_ni`` on one line, ``Y_sn``
        on the line before); empty where the chain uses one letter on two ranges."""
        out = []
        for world in self.worlds:
            evaluation = _Evaluation(self.problem, world)
            try:
                for node in nodes:
                    evaluation._index_sizes(node)
            except (NotUnderstood, Wrong):
                out.append({})
                continue
            out.append(evaluation.sizes)
        return out

    def _agrees_with_start(self, values, k, chain, head_order) -> bool:
        """Does piece ``k`` equal the chain's first piece (both evaluated) on every world?"""
        try:
            for seed, world in enumerate(self.worlds):
                first, here = values.get((0, seed)), values.get((k, seed))
                if first is None or here is None:
                    return False
                if _compare(first, here, head_order or (), chain.condition) is not None:
                    return False
        except (Wrong, NotUnderstood):
            return False
        return True

    def _decide(self, base, a, b, k, values, chain, head_order, starts, sizes) -> Link:
        try:
            first_world = None
            for seed, world in enumerate(self.worlds):
                for index, node in ((k - 1, a), (k, b)):
                    if (index, seed) not in values:
                        evaluation = _Evaluation(self.problem, world, sizes=sizes[seed])
                        values[(index, seed)] = evaluation.value(node)
                left, right = values[(k - 1, seed)], values[(k, seed)]
                order = head_order if head_order is not None else _free_order(a)
                differs = _compare_layouts(left, right, order, chain.condition)
                if differs is not None and first_world is None:
                    first_world = (world, differs)
            if first_world is None:
                reason = "equal on random inputs" + (
                    f" where {chain.condition.a} {chain.condition.op} {chain.condition.b}"
                    if chain.condition else "")
                return Link(**base, verdict=HOLDS, reason=reason)
            world, (entry, r, l, axes) = first_world
            where = ", ".join(f"{n}={v}" for n, v in zip(axes, entry)) if axes else \
                f"entry {list(entry)}"
            reason = f"the two sides differ ({where}: left {l:.6g}, right {r:.6g})"
            if k >= 2 and self._agrees_with_start(values, k, chain, head_order):
                reason += ("; the right side equals the chain's first expression, so the "
                           "mistake is in an earlier step")
            return Link(**base, verdict=DOES_NOT_HOLD, reason=reason,
                        counterexample=Counterexample(world_inputs(world), tuple(entry), r, l))
        except Wrong as error:
            return Link(**base, verdict=DOES_NOT_HOLD, reason=str(error))
        except NotUnderstood as error:
            where = ""
            if error.offset is not None:
                line, column = _place(error.offset, starts)
                where = f" (line {line}, column {column})"
            return Link(**base, verdict=NOT_UNDERSTOOD, reason=error.message + where)


# --- values --------------------------------------------------------------------------------

@dataclass
class Entries:
    """A value over named indices: ``array``'s axes are ``axes``."""

    array: np.ndarray
    axes: tuple[str, ...]


@dataclass
class Matrix:
    """A whole matrix (or vector, as a one-column or one-row matrix); ``stretch`` marks the
    axes of a ones vector whose length is not known yet (size 1, broadcast when met)."""

    array: np.ndarray
    stretch: tuple[bool, ...] = field(default=(False, False))
    #: ``\mathbf{1}`` itself: met elementwise (``1 - Y``) it is a whole matrix of ones
    ones: bool = False
    #: the Jacobian of two vectors, in numerator layout (denominator layout: its transpose)
    jacobian_of: bool = False


def _free_order(node: lx.Node) -> tuple[str, ...]:
    """The free indices of an expression in order of first appearance."""
    out: list[str] = []

    def walk(n, bound: frozenset):
        if isinstance(n, lx.Sym) and n.indices:
            out.extend(i for i in n.indices if i not in bound)
        elif isinstance(n, lx.Delta):
            out.extend(i for i in (n.a, n.b) if i not in bound)
        elif isinstance(n, lx.Deriv):
            walk(n.num, bound)
            out.extend(i for i in (n.indices or ()) if i not in bound)
            return
        elif isinstance(n, lx.Entry):
            out.extend(i for i in n.indices if i not in bound)
            return
        elif isinstance(n, lx.Sum):
            walk(n.body, bound | frozenset(n.indices))
            return
        for child in _children(n):
            walk(child, bound)
    walk(node, frozenset())
    return tuple(dict.fromkeys(out))


def _children(n: lx.Node):
    if isinstance(n, (lx.Call, lx.Neg, lx.Transpose, lx.Inverse, lx.Trace, lx.Norm)):
        return (n.arg,)
    if isinstance(n, lx.Add):
        return tuple(t for _, t in n.terms)
    if isinstance(n, (lx.Mul, lx.Elementwise)):
        return (n.a, n.b)
    if isinstance(n, lx.Pow):
        return (n.base, n.exponent)
    if isinstance(n, lx.Cases):
        return tuple(v for v, _ in n.branches)
    if isinstance(n, (lx.Sum, )):
        return (n.body,)
    if isinstance(n, lx.Deriv):
        return (n.num,)
    if isinstance(n, lx.Entry):
        return (n.arg,)
    return ()


class _Evaluation:
    """Evaluates read expressions in one world (one set of index sizes for a link)."""

    def __init__(self, problem: Problem, world: World, overrides=None, sizes=None,
                 orientation: str = "column"):
        self.problem = problem
        self.world = world
        self.evaluator = Evaluator(world, overrides=overrides)
        self.sizes: dict[str, int] = dict(sizes or {})
        self.orientation = orientation

    def value(self, node: lx.Node):
        self._index_sizes(node)
        try:
            return self.value_of(node)
        except _Shape as error:
            if self.orientation == "column" and _has_vector(node, self.problem):
                other = _Evaluation(self.problem, self.world, self.evaluator.overrides,
                                    self.sizes, "row")
                try:
                    return other.value_of(node)
                except _Shape:
                    pass
            raise Wrong(f"the shapes do not fit together: {error}") from None

    # sizes of the indices
    def _index_sizes(self, node: lx.Node) -> None:
        def give(index: str, dim: str):
            size = self.world.sizes[dim]
            known = self.sizes.get(index)
            if known is not None and known != size:
                raise Wrong(f"index {index.split('~')[0]} ranges over {known} values in one "
                            f"place and over {size} ({dim}) in another")
            self.sizes[index] = size

        def read(name: str, indices: tuple[str, ...] | None, at: int):
            """``name`` read at ``indices`` (a tensor's entry, or a derivative's variable)."""
            if indices is None or not self._is_tensor(name):
                return
            dims = self.problem.tensor_dims(name)
            if len(dims) != len(indices):
                raise NotUnderstood(f"{name} has {len(dims)} indices, {len(indices)} are "
                                    "written", at)
            for i, d in zip(indices, dims):
                give(i, d)

        def walk(n):
            if isinstance(n, lx.Sym):
                read(n.name, n.indices, n.offset)
            elif isinstance(n, lx.Deriv):
                read(n.var, n.indices, n.offset)
            elif isinstance(n, lx.Sum) and n.upper in self.problem.dims:
                for i in n.indices:
                    if i not in self.sizes:
                        give(i, n.upper)
            for child in _children(n):
                walk(child)
        walk(node)
        # deltas pass sizes along
        changed = True
        while changed:
            changed = False
            for n in _walk(node):
                if isinstance(n, lx.Delta):
                    a, b = self.sizes.get(n.a), self.sizes.get(n.b)
                    if a and not b:
                        self.sizes[n.b] = a
                        changed = True
                    elif b and not a:
                        self.sizes[n.a] = b
                        changed = True

    def _is_tensor(self, name: str) -> bool:
        return name in self.problem.inputs or name in self.problem.definitions

    def _sizes_of(self, indices, at: int) -> dict[str, int]:
        return {i: self.size(i, at) for i in indices}

    def size(self, index: str, at: int) -> int:
        if index not in self.sizes:
            raise NotUnderstood(f"cannot tell the range of index {index.split('~')[0]}", at)
        return self.sizes[index]

    # evaluation
    def value_of(self, n: lx.Node):
        method = getattr(self, "_" + type(n).__name__.lower())
        return method(n)

    def _num(self, n: lx.Num):
        return Entries(np.array(n.value), ())

    def _sym(self, n: lx.Sym):
        name = n.name
        if name in self.problem.dims and n.indices is None:
            return Entries(np.array(float(self.world.sizes[name])), ())
        if not self._is_tensor(name):
            if name in self.problem.dims:
                raise NotUnderstood(f"{name} is a dim; it takes no indices", n.offset)
            raise NotUnderstood(f"{name} is not a name of the context file", n.offset)
        value = self.evaluator.tensor(name)
        if n.indices is None:
            if value.ndim == 0:
                return Entries(value, ())
            return self._matrix(value)
        return _diagonal(value, n.indices)

    def _matrix(self, value: np.ndarray) -> Matrix:
        if value.ndim == 1:
            value = value[:, None] if self.orientation == "column" else value[None, :]
        if value.ndim != 2:
            raise NotUnderstood("a whole tensor of more than two axes is not read as a matrix")
        return Matrix(value, (False, False))

    def _ones(self, n: lx.Ones):
        return Matrix(np.ones((1, 1)), (True, False), ones=True)

    def _delta(self, n: lx.Delta):
        a, b = self.size(n.a, n.offset), self.size(n.b, n.offset)
        if n.a == n.b:
            return Entries(np.ones(a), (n.a,))
        return Entries((np.arange(a)[:, None] == np.arange(b)[None, :]).astype(float), (n.a, n.b))

    def _norm(self, n: lx.Norm):
        arg = self.value_of(n.arg)
        if n.kind == "abs":
            fn = builtin("abs").value
            return (Entries(fn(arg.array), arg.axes) if isinstance(arg, Entries)
                    else Matrix(fn(arg.array), arg.stretch, arg.ones))
        if isinstance(arg, Entries) and arg.axes:
            raise NotUnderstood("the norm of an entry: write |x| for its absolute value",
                                n.offset)
        if isinstance(arg, Matrix) and any(arg.stretch):
            raise NotUnderstood("the norm of a ones vector of unknown length", n.offset)
        # sqrt of the sum of squares (not of |a|^2): analytic, so a complex step goes through
        return Entries(np.sqrt(np.sum(arg.array * arg.array)), ())

    def _call(self, n: lx.Call):
        if n.fn == "diag":
            return self._diag(n)
        arg = self.value_of(n.arg)
        known = builtin(n.fn)
        if n.fn in self.problem.functions:
            fn = self.world.functions[n.fn][n.order]
        elif known is not None and n.order == 0:
            fn = known.value
        elif known is not None:
            raise NotUnderstood(f"{n.fn}' is not read; write its derivative out", n.offset)
        else:
            raise NotUnderstood(f"{n.fn} is not a function of the context file", n.offset)
        if isinstance(arg, Entries):
            return Entries(fn(arg.array), arg.axes)
        return Matrix(fn(arg.array), arg.stretch)

    def _diag(self, n: lx.Call):
        arg = self.value_of(n.arg)
        if not isinstance(arg, Matrix) or any(arg.stretch):
            raise NotUnderstood("diag of a vector or of a square matrix", n.offset)
        a = arg.array
        if 1 in a.shape:
            return Matrix(np.diag(a.reshape(-1)))
        if a.shape[0] == a.shape[1]:
            return self._matrix(np.diag(a).copy())
        raise _Shape(f"diag of a {_shape_text(arg)} matrix")

    def _neg(self, n: lx.Neg):
        return self._neg_value(self.value_of(n.arg))

    def _add(self, n: lx.Add):
        total = None
        for sign, term in n.terms:
            value = self.value_of(term)
            if sign < 0:
                value = self._neg_value(value)
            total = value if total is None else self._combine(total, value, np.add, "+", n)
        return total

    def _neg_value(self, v):
        return replace(v, array=-v.array)  # a matrix keeps its stretch, ones and layout

    def _combine(self, a, b, op, symbol: str, n: lx.Node):
        """An elementwise operation: entries with entries over the union of their indices,
        matrices of one shape (a ones vector's unknown length broadcast), a number with
        either."""
        if isinstance(a, Entries) and isinstance(b, Entries):
            axes = tuple(dict.fromkeys(a.axes + b.axes))
            return Entries(op(_spread(a, axes), _spread(b, axes)), axes)
        if isinstance(a, Entries) or isinstance(b, Entries):
            entries, matrix = (a, b) if isinstance(a, Entries) else (b, a)
            if entries.axes:
                raise NotUnderstood("an entry with free indices meets a whole matrix", n.offset)
            result = op(a.array, b.array)
            return Matrix(result, matrix.stretch)
        for number, other in ((a, b), (b, a)):  # a 1 x 1 product (x^T y) is a number
            if number.array.shape == (1, 1) and not any(number.stretch) and not number.ones:
                result = op(a.array[0, 0], b.array) if number is a else op(a.array, b.array[0, 0])
                return Matrix(result, other.stretch, other.ones)
        shape, stretch = _common_shape(a, b, symbol)
        return Matrix(op(_broadcast(a, shape), _broadcast(b, shape)), stretch)

    def _mul(self, n: lx.Mul):
        a, b = self.value_of(n.a), self.value_of(n.b)
        if isinstance(a, Entries) or isinstance(b, Entries):
            return self._combine(a, b, np.multiply, "*", n)
        return _matmul(a, b)

    def _elementwise(self, n: lx.Elementwise):
        a, b = self.value_of(n.a), self.value_of(n.b)
        if n.op == "kron":
            if isinstance(a, Matrix) and isinstance(b, Matrix):
                return Matrix(np.kron(a.array, b.array), (False, False))
            return self._combine(a, b, np.multiply, "*", n)
        op = np.multiply if n.op == "*" else np.divide
        return self._combine(a, b, op, "*" if n.op == "*" else "/", n)

    def _pow(self, n: lx.Pow):
        base, exponent = self.value_of(n.base), self.value_of(n.exponent)
        if not isinstance(exponent, Entries) or exponent.axes:
            raise NotUnderstood("an exponent is a number", n.offset)
        if isinstance(base, Entries):
            return Entries(base.array ** exponent.array, base.axes)
        return Matrix(base.array ** exponent.array, base.stretch)

    def _transpose(self, n: lx.Transpose):
        arg = self.value_of(n.arg)
        if isinstance(arg, Entries):
            if arg.axes:
                raise NotUnderstood("the transpose of an entry", n.offset)
            return arg
        return Matrix(arg.array.T, arg.stretch[::-1], arg.ones)

    def _inverse(self, n: lx.Inverse):
        arg = self.value_of(n.arg)
        if isinstance(arg, Entries):
            return Entries(1.0 / arg.array, arg.axes)
        if any(arg.stretch) or arg.array.shape[0] != arg.array.shape[1]:
            raise _Shape(f"the inverse of a {_shape_text(arg)} matrix")
        return Matrix(np.linalg.inv(arg.array), (False, False))

    def _trace(self, n: lx.Trace):
        arg = self.value_of(n.arg)
        if not isinstance(arg, Matrix) or arg.array.shape[0] != arg.array.shape[1]:
            raise NotUnderstood("the trace of a square matrix", n.offset)
        return Entries(np.array(np.trace(arg.array)), ())

    def _sum(self, n: lx.Sum):
        body = self.value_of(n.body)
        if isinstance(body, Matrix):
            raise NotUnderstood("a sum over an index of a whole matrix", n.offset)
        axes = tuple(dict.fromkeys(body.axes + n.indices))
        array = _spread(body, axes)
        if n.condition is not None:
            c = n.condition
            mask = _condition_mask(c, axes, self._sizes_of((c.a, c.b), n.offset))
            array = array * mask
        keep = tuple(a for a in axes if a not in n.indices)
        summed = tuple(axes.index(i) for i in n.indices)
        return Entries(array.sum(axis=summed), keep)

    def _cases(self, n: lx.Cases):
        values = [(self.value_of(v), c) for v, c in n.branches]
        if any(isinstance(v, Matrix) for v, _ in values):
            raise NotUnderstood("cases of whole matrices", n.offset)
        axes = tuple(dict.fromkeys(a for v, c in values for a in
                                   v.axes + ((c.a, c.b) if c else ())))
        out = np.full(tuple(self.size(a, n.offset) for a in axes), np.nan, dtype=complex)
        taken = np.zeros(out.shape, dtype=bool)
        for v, c in values:
            mask = (np.ones(out.shape, dtype=bool) if c is None
                    else np.broadcast_to(_condition_mask(
                        c, axes, self._sizes_of((c.a, c.b), n.offset)), out.shape))
            use = mask & ~taken
            out = np.where(use, _spread(v, axes, self), out)
            taken |= use
        return Entries(np.real_if_close(out), axes)

    def _entry(self, n: lx.Entry):
        arg = self.value_of(n.arg)
        if isinstance(arg, Entries):
            if arg.axes:
                raise NotUnderstood("indices on an expression that already has indices",
                                    n.offset)
            raise NotUnderstood("indices on a number", n.offset)
        array = arg.array
        if len(n.indices) == 1:
            if 1 not in array.shape:
                raise _Shape(f"one index on a {_shape_text(arg)} matrix")
            array = array.reshape(-1)
        elif len(n.indices) != array.ndim:
            raise _Shape(f"{len(n.indices)} indices on a {_shape_text(arg)} matrix")
        if any(arg.stretch):
            raise NotUnderstood("an entry of an expression whose size is not known", n.offset)
        for i, size in zip(n.indices, array.shape):
            if self.sizes.get(i, size) != size:
                raise Wrong(f"index {i} ranges over {self.sizes[i]} values elsewhere, "
                            f"but the matrix has {size} along it")
            self.sizes[i] = size
        return _diagonal(array, n.indices)

    def _deriv(self, n: lx.Deriv):
        if any(isinstance(x, lx.Deriv) for x in _walk(n.num)):
            raise NotUnderstood("a derivative of a derivative is not read", n.offset)
        var = n.var
        if not self._is_tensor(var):
            raise NotUnderstood(f"{var} is not a tensor of the context file", n.offset)
        base = np.asarray(self.evaluator.tensor(var), dtype=float)
        if base.size > MAX_VARIABLE_ENTRIES:
            raise NotUnderstood(f"{var} has too many entries to differentiate by", n.offset)
        rows = []
        shape_of_value = None
        vector = False  # d y / d x of two whole vectors: the Jacobian matrix
        for position in np.ndindex(base.shape) if base.ndim else [()]:
            moved = base.astype(complex)
            moved[position] += 1j * COMPLEX_H
            inner = _Evaluation(self.problem, self.world, {**self.evaluator.overrides, var: moved},
                                self.sizes, self.orientation)
            value = inner.value_of(n.num)
            if isinstance(value, Matrix):
                if 1 in value.array.shape and n.indices is None and base.ndim == 1:
                    vector = True
                    value = Entries(value.array.reshape(-1), ("#",))
                elif value.array.shape != (1, 1):
                    raise NotUnderstood("the derivative of a whole matrix is not read", n.offset)
                else:
                    value = Entries(value.array.reshape(()), ())
            shape_of_value = value.axes
            rows.append(np.imag(value.array) / COMPLEX_H)
        jacobian = np.stack(rows, axis=-1).reshape(rows[0].shape + base.shape)
        axes = shape_of_value
        if vector:  # numerator layout, J[i, j] = d y_i / d x_j (the other is its transpose)
            return Matrix(jacobian, jacobian_of=True)
        if n.indices is None:
            if axes:
                raise NotUnderstood("the derivative of entries by a whole tensor is not read",
                                    n.offset)
            return self._matrix(jacobian) if jacobian.ndim else Entries(jacobian, ())
        if len(n.indices) != base.ndim:
            raise NotUnderstood(f"{var} has {base.ndim} indices, {len(n.indices)} are written",
                                n.offset)
        return _diagonal(jacobian, axes + n.indices)


class _Shape(Exception):
    """Shapes that do not fit a matrix operation."""


def _has_vector(node: lx.Node, problem: Problem) -> bool:
    for n in _walk(node):
        name = n.name if isinstance(n, lx.Sym) and n.indices is None else (
            n.var if isinstance(n, lx.Deriv) and n.indices is None else None)
        if name and (name in problem.inputs or name in problem.definitions):
            if len(problem.tensor_dims(name)) == 1:
                return True
    return False


def _walk(node: lx.Node):
    yield node
    for child in _children(node):
        yield from _walk(child)


def _diagonal(value: np.ndarray, indices: tuple[str, ...]) -> Entries:
    """``value`` read with ``indices`` on its axes: a repeated index takes the diagonal."""
    unique = tuple(dict.fromkeys(indices))
    if unique == indices:
        return Entries(value, indices)
    letters = {name: chr(ord("a") + k) for k, name in enumerate(unique)}
    spec = "".join(letters[i] for i in indices) + "->" + "".join(letters[i] for i in unique)
    return Entries(np.einsum(spec, value), unique)


def _spread(v: Entries, axes: tuple[str, ...], evaluation=None) -> np.ndarray:
    """``v``'s array with its axes in the order of ``axes`` (missing ones of size 1)."""
    array = v.array
    if v.axes:
        array = np.transpose(array, [v.axes.index(a) for a in axes if a in v.axes])
    shape = [array.shape[[a for a in axes if a in v.axes].index(a)] if a in v.axes else 1
             for a in axes]
    array = array.reshape(shape)
    if evaluation is not None:
        array = np.broadcast_to(array, tuple(evaluation.sizes[a] for a in axes))
    return array


def _condition_mask(c: lx.Condition, axes, sizes: dict[str, int]) -> np.ndarray:
    """Where ``c`` holds, over ``axes`` (the two indices' aranges, broadcast)."""
    a = np.arange(sizes[c.a]).reshape([-1 if x == c.a else 1 for x in axes])
    b = np.arange(sizes[c.b]).reshape([-1 if x == c.b else 1 for x in axes])
    return COMPARE[c.op](a, b)


def _shape_text(m: Matrix) -> str:
    return " x ".join("?" if s else str(n) for n, s in zip(m.array.shape, m.stretch))


def _common_shape(a: Matrix, b: Matrix, symbol: str):
    a, b = (Matrix(m.array, (True, True)) if m.ones else m for m in (a, b))
    if a.array.ndim != b.array.ndim:
        raise _Shape(f"{symbol} of a {_shape_text(a)} and a {_shape_text(b)} value")
    shape, stretch = [], []
    for n, s, m, t in zip(a.array.shape, a.stretch, b.array.shape, b.stretch):
        if s and t:
            shape.append(1)
            stretch.append(True)
        elif s:
            shape.append(m)
            stretch.append(False)
        elif t or n == m:
            shape.append(n)
            stretch.append(False)
        else:
            raise _Shape(f"{symbol} of a {_shape_text(a)} and a {_shape_text(b)} matrix")
    return tuple(shape), tuple(stretch)


def _broadcast(m: Matrix, shape) -> np.ndarray:
    return np.broadcast_to(m.array, shape)


def _matmul(a: Matrix, b: Matrix) -> Matrix:
    x, y = a.array, b.array
    if x.shape == (1, 1) and not any(a.stretch) and x.shape[1] != y.shape[0]:
        return Matrix(x[0, 0] * y, b.stretch)  # a 1 x 1 product (x^T y) is a number
    if y.shape == (1, 1) and not any(b.stretch) and x.shape[1] != y.shape[0]:
        return Matrix(x * y[0, 0], a.stretch)
    if a.stretch[1] and b.stretch[0]:
        raise NotUnderstood("a product of two ones vectors of unknown length")
    if a.stretch[1]:
        x = np.broadcast_to(x, (x.shape[0], y.shape[0]))
    elif b.stretch[0]:
        y = np.broadcast_to(y, (x.shape[1], y.shape[1]))
    if x.shape[1] != y.shape[0]:
        raise _Shape(f"a product of a {_shape_text(a)} and a {_shape_text(b)} matrix")
    return Matrix(x @ y, (a.stretch[0], b.stretch[1]))


def _compare(left, right, order: tuple[str, ...], condition):
    """None when the two sides agree; else (entry, right value, left value, axes)."""
    if isinstance(left, Entries) and isinstance(right, Entries):
        axes = tuple(dict.fromkeys(tuple(a for a in order if a in left.axes + right.axes)
                                   + left.axes + right.axes))
        sizes = {}
        for v in (left, right):
            for a, n in zip(v.axes, v.array.shape):
                sizes[a] = n
        shape = tuple(sizes[a] for a in axes)
        l = np.broadcast_to(_spread(left, axes), shape)
        r = np.broadcast_to(_spread(right, axes), shape)
        mask = np.ones(shape, dtype=bool)
        if condition is not None and condition.a in axes and condition.b in axes:
            mask = np.broadcast_to(_condition_mask(condition, axes, sizes), shape)
        return _differ(l, r, mask, axes)
    if isinstance(left, Matrix) and isinstance(right, Matrix):
        l, r = _matrices(left, right)
        return _differ(l, r, np.ones(l.shape, dtype=bool), ())
    entries, matrix = (left, right) if isinstance(left, Entries) else (right, left)
    axes = tuple(a for a in order if a in entries.axes) + tuple(
        a for a in entries.axes if a not in order)
    e = _spread(entries, axes) if axes else entries.array
    m = matrix.array
    if len(axes) <= 1:
        if any(matrix.stretch) and e.ndim == 1:
            m = np.broadcast_to(m.reshape(-1), e.shape)
        if 1 not in m.shape and len(axes) == 1:
            raise Wrong(f"one side has entries over one index ({e.shape[0]}), the other is a "
                        f"{m.shape[0]} x {m.shape[1]} matrix")
        m = m.reshape(-1)
        e = e.reshape(-1)
    else:
        stretch_shape = tuple(e.shape[k] if s else n for k, (n, s) in
                              enumerate(zip(m.shape, matrix.stretch)))
        m = np.broadcast_to(m, stretch_shape)
    if m.shape != e.shape:
        raise Wrong(f"one side is {_shape_name(e.shape, axes)}, the other a "
                    f"{' x '.join(map(str, matrix.array.shape))} matrix")
    l, r = (e, m) if isinstance(left, Entries) else (m, e)
    return _differ(np.asarray(l), np.asarray(r), np.ones(l.shape, dtype=bool), axes)


def _compare_layouts(left, right, order, condition):
    """``_compare``; a Jacobian of two vectors on either side is read in numerator layout,
    and, where that does not agree, in denominator layout (documents use both)."""
    try:
        differs = _compare(left, right, order, condition)
    except Wrong:
        differs = Wrong
    if differs is None:
        return None
    for k, side in enumerate((left, right)):
        if isinstance(side, Matrix) and side.jacobian_of:
            other = Matrix(side.array.T)
            pair = (other, right) if k == 0 else (left, other)
            try:
                if _compare(*pair, order, condition) is None:
                    return None
            except Wrong:
                pass
    if differs is Wrong:
        return _compare(left, right, order, condition)  # raises the first reason
    return differs


def _shape_name(shape, axes) -> str:
    if not axes:
        return "a number"
    return "entries over " + ", ".join(f"{a} ({n})" for a, n in zip(axes, shape))


def _matrices(a: Matrix, b: Matrix):
    x, y = a.array, b.array
    if x.shape != y.shape and 1 in x.shape and 1 in y.shape and x.size == y.size:
        return x.reshape(-1), y.reshape(-1)  # a row and a column: orientation is notation
    try:
        shape, _ = _common_shape(a, b, "=")
    except _Shape:
        raise Wrong(f"the two sides have different shapes: {_shape_text(a)} and "
                    f"{_shape_text(b)}") from None
    return _broadcast(a, shape), _broadcast(b, shape)


def _differ(l: np.ndarray, r: np.ndarray, mask: np.ndarray, axes):
    """``claims.difference`` of the right side against the left, with the axes' names."""
    found = difference(r, l, mask)
    return None if found is None else (*found, axes)


def load_context(document: str):
    """A loader for the context files a document's switches name (relative to it)."""
    from ..syntax.idx import parse_file

    folder = Path(document).resolve().parent if document != "-" else Path.cwd()

    def load(name: str) -> Problem:
        return parse_file(str(folder / name))
    return load
