"""The matrix IR: explicit nodes of a matrix expression, with shapes; nothing here prints.

A node's value is an array in NumPy's sense (a vector is one-dimensional); its ``shape`` is
the mathematical one, in which a vector is a column or a row: ``Shape("S", None)`` is a
column of S entries, ``Shape(None, "D")`` a row of D entries, ``Shape(None, None)`` a
scalar.  The LaTeX printer reads the orientation to write ``a b^T``, ``\\mathbf{1}^T G`` and
``G \\mathbf{1}`` the way the shapes conform; the NumPy printers read the same nodes.

The constructors check that shapes conform and raise ``ShapeMismatch`` where they do not:
a matrix form that cannot be typeset with conforming shapes is never built.  Printers
(``emit.numpy``, ``render.matrix``) dispatch on the node type.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

from ..terms import Term


class ShapeMismatch(Exception):
    """Two operands whose shapes do not conform: a bug in the caller, never shown."""


@dataclass(frozen=True)
class Shape:
    """(rows, cols) by dim name; None where that side has one entry."""

    rows: str | None
    cols: str | None

    @property
    def ndim(self) -> int:
        """The number of NumPy axes: 0 scalar, 1 vector, 2 matrix."""
        return (self.rows is not None) + (self.cols is not None)

    @property
    def dims(self) -> tuple[str, ...]:
        """The NumPy axes' dims, in order."""
        return tuple(d for d in (self.rows, self.cols) if d is not None)

    @property
    def is_column(self) -> bool:
        return self.rows is not None and self.cols is None

    @property
    def is_row(self) -> bool:
        return self.rows is None and self.cols is not None

    def transposed(self) -> "Shape":
        return Shape(self.cols, self.rows)

    def __str__(self) -> str:
        return f"({self.rows or 1} x {self.cols or 1})"


SCALAR = Shape(None, None)


def column(dim: str) -> Shape:
    return Shape(dim, None)


def of_dims(dims: tuple[str, ...]) -> Shape:
    """The shape of a tensor with ``dims``: a vector is a column."""
    if len(dims) > 2:
        raise ShapeMismatch(f"{len(dims)} axes have no matrix shape")
    return Shape(dims[0] if dims else None, dims[1] if len(dims) == 2 else None)


class Node:
    """Base class of the IR's nodes (frozen dataclasses)."""

    __slots__ = ()

    @property
    def shape(self) -> Shape:
        raise TypeError(f"{type(self).__name__} defines no shape")  # pragma: no cover - every node does

    def children(self) -> tuple["Node", ...]:
        return ()


# --- leaves --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ref(Node):
    """A named tensor: an input, a defined tensor, or the upstream gradient ``dL_dY``."""

    name: str
    dims: tuple[str, ...]
    grad: tuple[str, str] | None = None  # (of, wrt) of an upstream gradient

    @cached_property
    def shape(self):
        return of_dims(self.dims)


@dataclass(frozen=True)
class Scalar(Node):
    """An index-free term: a number, a dim such as ``S``, a scalar input, ``sqrt(D)``."""

    term: Term

    @cached_property
    def shape(self):
        return SCALAR


@dataclass(frozen=True)
class Ones(Node):
    """The ones vector ``1`` (a column) of ``dim`` entries."""

    dim: str

    @cached_property
    def shape(self):
        return column(self.dim)


@dataclass(frozen=True)
class Inverse(Node):
    """The inverse ``A^{-1}`` of the square tensor ``name`` (an input or a definition)."""

    name: str
    dim: str

    @cached_property
    def shape(self):
        return Shape(self.dim, self.dim)


@dataclass(frozen=True)
class Identity(Node):
    dim: str

    @cached_property
    def shape(self):
        return Shape(self.dim, self.dim)


# --- structure -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Transpose(Node):
    """``x^T``: a matrix transposed, or a vector turned (a no-op for NumPy)."""

    x: Node

    @cached_property
    def shape(self):
        return self.x.shape.transposed()

    def children(self):
        return (self.x,)


@dataclass(frozen=True)
class MatMul(Node):
    """``a b``: the shapes conform as ``a``'s columns and ``b``'s rows (vectors are read as
    the row or column that conforms, as NumPy's ``@`` reads a 1-D operand)."""

    a: Node
    b: Node

    def __post_init__(self):
        left, right = _as_left(self.a.shape), _as_right(self.b.shape)
        if left.cols != right.rows or left.cols is None:
            raise ShapeMismatch(f"product of {self.a.shape} and {self.b.shape}")

    @cached_property
    def shape(self):
        return Shape(_as_left(self.a.shape).rows, _as_right(self.b.shape).cols)

    def children(self):
        return (self.a, self.b)


def _as_left(s: Shape) -> Shape:
    """A vector on the left of a product is a row."""
    return Shape(None, s.rows) if s.is_column else s


def _as_right(s: Shape) -> Shape:
    """A vector on the right of a product is a column."""
    return Shape(s.cols, None) if s.is_row else s


@dataclass(frozen=True)
class Outer(Node):
    """``a b^T`` for two vectors (each read as a column)."""

    a: Node
    b: Node

    def __post_init__(self):
        if self.a.shape.ndim != 1 or self.b.shape.ndim != 1:
            raise ShapeMismatch(f"outer product of {self.a.shape} and {self.b.shape}")

    @cached_property
    def shape(self):
        return Shape(self.a.shape.dims[0], self.b.shape.dims[0])

    def children(self):
        return (self.a, self.b)


@dataclass(frozen=True)
class SumAxis(Node):
    """The sum over one axis: ``1^T X`` (axis 0, a row), ``X 1`` (axis 1, a column), or
    ``1^T x`` for a vector (a scalar)."""

    x: Node
    axis: int

    def __post_init__(self):
        if self.axis >= self.x.shape.ndim:
            raise ShapeMismatch(f"no axis {self.axis} in {self.x.shape}")

    @cached_property
    def shape(self):
        s = self.x.shape
        if s.ndim == 1:
            return SCALAR
        return Shape(None, s.cols) if self.axis == 0 else Shape(s.rows, None)

    @property
    def summed_dim(self) -> str:
        return self.x.shape.dims[self.axis]

    def children(self):
        return (self.x,)


@dataclass(frozen=True)
class Broadcast(Node):
    """A vector or scalar repeated to ``shape``: ``v 1^T`` (``along`` 1: ``v`` runs down the
    rows), ``1 v^T`` (``along`` 0: ``v`` runs along the columns), ``c 1`` or ``c 1 1^T``."""

    x: Node
    to: Shape
    along: int = 1

    def __post_init__(self):
        s = self.x.shape
        if s.ndim == 1:
            kept = self.to.rows if self.along == 1 else self.to.cols
            if self.to.ndim != 2 or s.dims[0] != kept:
                raise ShapeMismatch(f"cannot broadcast {s} to {self.to}")
        elif s.ndim != 0:
            raise ShapeMismatch(f"cannot broadcast {s} to {self.to}")

    @cached_property
    def shape(self):
        return self.to

    def children(self):
        return (self.x,)


@dataclass(frozen=True)
class Diag(Node):
    """The diagonal matrix with the vector ``v`` on its diagonal."""

    v: Node

    def __post_init__(self):
        if self.v.shape.ndim != 1:
            raise ShapeMismatch(f"diag of {self.v.shape}")

    @cached_property
    def shape(self):
        d = self.v.shape.dims[0]
        return Shape(d, d)

    def children(self):
        return (self.v,)


@dataclass(frozen=True)
class Trace(Node):
    """The trace of a square matrix, ``tr(X) = sum_j X_jj`` (a scalar)."""

    x: Node

    def __post_init__(self):
        s = self.x.shape
        if s.ndim != 2 or s.dims[0] != s.dims[1]:
            raise ShapeMismatch(f"trace of {s}")

    @cached_property
    def shape(self):
        return SCALAR

    def children(self):
        return (self.x,)


# --- elementwise -----------------------------------------------------------------------------

def _elementwise_shape(*operands: Node) -> Shape:
    """The common shape of elementwise operands; a scalar goes with anything, and vectors of
    one dim agree whatever their orientation (the first one's is kept)."""
    shape = SCALAR
    for x in operands:
        s = x.shape
        if s.ndim == 0:
            continue
        if shape.ndim == 0:
            shape = s
        elif s.dims != shape.dims:
            raise ShapeMismatch(f"elementwise operation on {shape} and {s}")
    return shape


@dataclass(frozen=True)
class _Elementwise(Node):
    """A binary elementwise operation on operands of one shape."""

    a: Node
    b: Node

    def __post_init__(self):
        _elementwise_shape(self.a, self.b)

    @cached_property
    def shape(self):
        return _elementwise_shape(self.a, self.b)

    def children(self):
        return (self.a, self.b)


@dataclass(frozen=True)
class Hadamard(_Elementwise):
    """``a ⊙ b``."""


@dataclass(frozen=True)
class HadamardDiv(_Elementwise):
    """``a ⊘ b``."""


@dataclass(frozen=True)
class Scale(Node):
    """A scalar times an array: ``c X`` (``1/S`` printed as a division, as the documents do)."""

    c: Node
    x: Node

    def __post_init__(self):
        if self.c.shape.ndim != 0:
            raise ShapeMismatch(f"scaling by {self.c.shape}")

    @cached_property
    def shape(self):
        return self.x.shape

    def children(self):
        return (self.c, self.x)


@dataclass(frozen=True)
class Apply(Node):
    """An elementwise function: a builtin of the registry, or ``h``, ``h'``, ... (``order``)."""

    fn: str
    x: Node
    order: int = 0

    @cached_property
    def shape(self):
        return self.x.shape

    def children(self):
        return (self.x,)


@dataclass(frozen=True)
class Power(Node):
    """``x^{∘n}``: an elementwise power with a numeric exponent."""

    x: Node
    n: Fraction

    @cached_property
    def shape(self):
        return self.x.shape

    def children(self):
        return (self.x,)


@dataclass(frozen=True)
class Sum(Node):
    """``a + b - c``: terms with signs (+1 or -1), all of one shape."""

    terms: tuple[tuple[int, Node], ...]

    def __post_init__(self):
        _elementwise_shape(*(t for _, t in self.terms))

    @cached_property
    def shape(self):
        return _elementwise_shape(*(t for _, t in self.terms))

    def children(self):
        return tuple(t for _, t in self.terms)


def map_children(node: Node, fn) -> Node:
    """``node`` with ``fn`` applied to each child node (the same node if none changed)."""
    changes, changed = {}, False
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            changes[f.name] = new = fn(value)
            changed |= new is not value
        elif f.name == "terms" and isinstance(node, Sum):
            changes[f.name] = tuple((sign, fn(t)) for sign, t in value)
            changed |= any(new is not old for (_, new), (_, old) in zip(changes[f.name], value))
    return dataclasses.replace(node, **changes) if changed else node


def walk(node: Node):
    """Every node, pre-order."""
    yield node
    for child in node.children():
        yield from walk(child)


def refs(node: Node) -> list[Ref]:
    """The named tensors ``node`` mentions, in order of first appearance."""
    seen: dict[str, Ref] = {}
    for n in walk(node):
        if isinstance(n, Ref) and n.name not in seen:
            seen[n.name] = n
    return list(seen.values())


def _cache_hashes(base: type) -> None:
    """Give every node type a hash computed once per node: nodes are immutable, and the
    printers key dictionaries by whole subtrees (without this, hashing a deep expression
    repeats itself at every level)."""
    for cls in base.__subclasses__():
        generated = cls.__dict__.get("__hash__")
        if generated is not None:
            def cached(self, _generated=generated):
                try:
                    return self.__dict__["_hash"]
                except KeyError:
                    value = self.__dict__["_hash"] = _generated(self)
                    return value
            cls.__hash__ = cached
        _cache_hashes(cls)


_cache_hashes(Node)
