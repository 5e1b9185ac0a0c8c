"""Matrix claims in NumPy syntax, read without running them (CONTRACT section 5).

``claim dL_dW = dL_dY.T @ X`` states a result in the NumPy syntax of ``matrix.text``.  The
text is parsed with Python's own parser (``ast.parse``, which only reads) and the tree is
checked against a short list of what a matrix form may say: names of the file's tensors,
upstream gradients and dims, numbers, ``+ - * / @ **``, unary minus, ``.T``, ``[:, None]``,
``.sum(axis=k)`` and the NumPy functions in ``CALLS``.  Anything else is refused with its
column.  ``evaluate`` then computes the tree's value with NumPy, node by node: the text is
never handed to ``eval``.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ..functions import FUNCTIONS

#: np.<name>(...) a claim may call, with the NumPy function computing it: the array
#: functions below, and every np.<name> the function registry prints (so that a derived
#: result pasted back as a claim reads: np.sinh, np.log1p, np.logaddexp, ...).
CALLS: dict[str, Callable] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "abs": np.abs,
    "sin": np.sin, "cos": np.cos, "outer": np.outer, "diag": np.diag, "kron": np.kron,
    "trace": np.trace, "transpose": np.transpose, "sum": np.sum, "mean": np.mean,
    "ones": np.ones, "zeros": np.zeros, "eye": np.eye, "maximum": np.maximum,
    "where": np.where, "einsum": np.einsum, "square": np.square,
    **{name: getattr(np, name) for f in FUNCTIONS.values()
       for name in re.findall(r"\bnp\.(\w+)\(", f.numpy) if callable(getattr(np, name, None))},
}
#: np.linalg.<name>(...)
LINALG: dict[str, Callable] = {"inv": np.linalg.inv, "det": np.linalg.det}
#: Methods of an array a claim may call: x.sum(axis=0), x.mean(axis=1), x.reshape(...).
METHODS = ("sum", "mean", "reshape", "transpose")
#: Keyword arguments a call may take.
KEYWORDS = ("axis", "keepdims")

_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
           ast.Div: np.divide, ast.MatMult: np.matmul, ast.Pow: np.power}


_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.MatMult: "@",
              ast.Pow: "**"}


class ShapeError(ValueError):
    """A claim whose operands' shapes do not fit together (``A @ B`` of (3, 4) and (5, 3))."""


class NumpyTextError(Exception):
    """What is wrong with a claim's text, and where (0-based offset into it)."""

    def __init__(self, message: str, offset: int, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.hint = hint


@dataclass(frozen=True)
class MatrixText:
    """A parsed matrix claim: the checked tree, the text, and the names it reads."""

    text: str
    tree: ast.expr
    names: frozenset[str]

    def normal(self) -> str:
        """The tree without positions: two texts that parse alike (spaces, redundant
        parentheses) give the same string."""
        return ast.dump(self.tree, annotate_fields=False, include_attributes=False)


def parse(text: str, known: Callable[[str], bool],
          function: Callable[[str], bool] = lambda name: False) -> MatrixText:
    """Parse ``text``; ``known`` says whether a bare name is one the claim may read,
    ``function`` whether a name is a declared function (``h(X)``, ``h_prime(X)``)."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    if not stripped:
        raise NumpyTextError("the claim has no right side", lead,
                             hint="write  claim dL_dW = dL_dY.T @ X")
    try:
        tree = ast.parse(stripped, mode="eval").body
    except SyntaxError as error:
        offset = (error.offset or 1) - 1
        raise NumpyTextError(f"not a NumPy expression: {error.msg}", lead + offset,
                             hint="matrix claims use NumPy syntax: dL_dY.T @ X, "
                                  "np.ones(N) @ dL_dY, G.sum(axis=0)") from None
    names: set[str] = set()
    _Checker(known, function, names, lead).visit(tree)
    return MatrixText(stripped, tree, frozenset(names))


class _Checker(ast.NodeVisitor):
    def __init__(self, known, function, names: set[str], lead: int):
        self.known = known
        self.function = function
        self.names = names
        self.lead = lead

    def refuse(self, node: ast.AST, message: str, hint: str | None = None):
        raise NumpyTextError(message, self.lead + getattr(node, "col_offset", 0), hint)

    def generic_visit(self, node: ast.AST):
        self.refuse(node, f"a matrix claim cannot say {type(node).__name__}",
                    hint="names, numbers, + - * / @ **, .T, [:, None], .sum(axis=k) and "
                         "np.exp, np.log, np.ones, np.eye, np.outer, np.diag, ...")

    def visit_Name(self, node: ast.Name):
        if node.id == "np":
            self.refuse(node, "np alone is not a value", hint="call a function: np.ones(N)")
        if not self.known(node.id):
            self.refuse(node, f"unknown name {node.id}",
                        hint="a claim names the file's inputs, definitions, dims and "
                             "upstream gradients (dL_dY)")
        self.names.add(node.id)

    def visit_Constant(self, node: ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            self.refuse(node, f"a matrix claim cannot hold {node.value!r}")

    def visit_BinOp(self, node: ast.BinOp):
        if type(node.op) not in _BINARY:
            self.refuse(node, f"operator {type(node.op).__name__} is not a matrix operation")
        self.visit(node.left)
        self.visit(node.right)

    def visit_UnaryOp(self, node: ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            self.refuse(node, "only unary minus and plus")
        self.visit(node.operand)

    def visit_Tuple(self, node: ast.Tuple):  # np.ones((N, 1))
        for element in node.elts:
            self.visit(element)

    def visit_Attribute(self, node: ast.Attribute):
        if node.attr != "T":
            self.refuse(node, f".{node.attr} is not read here", hint="write .T for a transpose")
        self.visit(node.value)

    def visit_Subscript(self, node: ast.Subscript):
        self.visit(node.value)
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        for part in parts:
            whole = isinstance(part, ast.Slice) and not (part.lower or part.upper or part.step)
            new_axis = isinstance(part, ast.Constant) and part.value is None
            if not (whole or new_axis):
                self.refuse(part, "only [:, None] style indexing (new axes) is read",
                            hint="write x[:, None] for a column, x[None, :] for a row")

    def visit_Call(self, node: ast.Call):
        function = node.func
        if isinstance(function, ast.Attribute) and _is_np(function.value):
            if function.attr not in CALLS:
                self.refuse(function, f"np.{function.attr} is not read in a claim",
                            hint=f"functions: {', '.join('np.' + n for n in CALLS)}")
        elif (isinstance(function, ast.Attribute) and isinstance(function.value, ast.Attribute)
              and _is_np(function.value.value) and function.value.attr == "linalg"):
            if function.attr not in LINALG:
                self.refuse(function, f"np.linalg.{function.attr} is not read in a claim")
        elif isinstance(function, ast.Attribute) and function.attr in METHODS:
            self.visit(function.value)
        elif isinstance(function, ast.Name) and self.function(function.id):
            self.names.add(function.id)
            if len(node.args) != 1 or node.keywords:
                self.refuse(node, f"{function.id} takes one argument")
        else:
            self.refuse(node, "only NumPy functions (np.exp, ...) and .sum(axis=k) are called")
        if getattr(function, "attr", None) == "einsum":
            if not (node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                self.refuse(node, "np.einsum takes its subscripts as a string first")
            arguments = node.args[1:]
        else:
            arguments = node.args
        for argument in arguments:
            self.visit(argument)
        for keyword in node.keywords:
            if keyword.arg not in KEYWORDS:
                self.refuse(keyword.value, f"keyword {keyword.arg} is not read here")
            self.visit(keyword.value)


def _is_np(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "np"


def evaluate(parsed: MatrixText, values: Mapping[str, object]) -> np.ndarray:
    """The claim's value with ``values`` for its names (arrays, dims as ints)."""
    return np.asarray(_value(parsed.tree, values))


def _value(node: ast.AST, values):
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, values), _value(node.right, values)
        try:
            return _BINARY[type(node.op)](left, right)
        except ValueError:
            raise ShapeError(f"{_OPERATORS[type(node.op)]} of shapes {np.shape(left)} and "
                             f"{np.shape(right)} (column {node.col_offset + 1} of the "
                             "claim)") from None
    if isinstance(node, ast.UnaryOp):
        value = _value(node.operand, values)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Tuple):
        return tuple(int(_value(e, values)) for e in node.elts)
    if isinstance(node, ast.Attribute):  # .T
        return np.asarray(_value(node.value, values)).T
    if isinstance(node, ast.Subscript):
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        key = tuple(None if isinstance(p, ast.Constant) else slice(None) for p in parts)
        return np.asarray(_value(node.value, values))[key]
    if isinstance(node, ast.Call):
        function = node.func
        keywords = {k.arg: _value(k.value, values) for k in node.keywords}
        if isinstance(function, ast.Name):  # a declared function or its derivative
            return values[function.id](_value(node.args[0], values))
        if function.attr == "einsum":
            return np.einsum(node.args[0].value, *(_value(a, values) for a in node.args[1:]))
        arguments = [_value(a, values) for a in node.args]
        if _is_np(function.value):
            if function.attr in ("ones", "zeros", "eye"):
                arguments = [int(a) if not isinstance(a, tuple) else a for a in arguments]
            return CALLS[function.attr](*arguments, **keywords)
        if isinstance(function.value, ast.Attribute) and _is_np(function.value.value):
            return LINALG[function.attr](*arguments, **keywords)
        target = np.asarray(_value(function.value, values))
        return getattr(target, function.attr)(*arguments, **keywords)
    raise TypeError(f"unchecked node {type(node).__name__}")

