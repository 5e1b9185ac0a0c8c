"""The NumPy backend: the matrix IR and index forms printed as NumPy code.

One printer of the matrix IR (``NumpyPrinter``) serves both what is shown and what runs:

* display (``matrix.text``): the documents' notation in NumPy, with dims by name, written
  as a textbook writes NumPy (``dL_dY.sum(axis=0)`` for ``1^T dL/dY``, ``r[:, None]``
  beside a full-shape operand, ``np.ones`` only where a broadcast has nothing to lean on;
  docs/matrix-forms.md);
* code (the lambda's body): the same value computed without materialising ones
  (``dL_dY.sum(axis=0)``, ``r[:, None]``), with a subexpression that occurs twice named
  once (``_t1 := ...``) and dims read off the arguments (``X.shape[0]``).

Index forms without a matrix form go through ``np.einsum`` with ``optimize=True``
(``from_index``).  Every spelling of NumPy in indexcalc is in this module or in the
function registry's ``numpy`` field.
"""
from __future__ import annotations

import ast

import re
import string
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from typing import Callable

from .. import naming
from ..functions import CONSTANTS, builtin
from ..matrix import ir
from .plan import (
    Arange, ArgIndex, Call, Compare, ConstantValue, DimValue, Eye, Gather, MatrixValue, Number,
    Plan, Product, Raise, Read, Reduce, Select, Total, plan as make_plan,
)
from ..calculus.rules import within
from ..problem import Problem
from ..terms import (
    ONE, ZERO, Add, Affine, Delta, Grad, Index, Mul, Num, Pow, Tensor, Term, base_exp, mul,
    rename_indices, replace as replace_term, split_coeff,
)


@dataclass
class Names:
    """Which arguments and defined tensors a piece of generated code refers to, and how it
    spells a dim (by name, or read off an argument's shape)."""

    problem: Problem | None
    spell_dim: Callable[[str], str] = naming.code_name
    #: Integers as ``2`` rather than ``2.0`` (the displayed form).
    plain_numbers: bool = False
    #: Code without in-place writes or copies, for translation to a framework (JAX arrays
    #: are immutable): a diagonal is a product with an identity, a broadcast stays a view.
    pure: bool = False
    grads: list[str] = field(default_factory=list)
    inputs: set[str] = field(default_factory=set)
    defined: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)  # "h", "h_prime", ...
    dims: set[str] = field(default_factory=set)
    temps: int = 0
    #: Shared array subexpressions of the einsum path (``_shared``): how often each one is
    #: printed (counted by a first printing), which ones repeat (told to the second), and
    #: the temporary each is bound to; across one lambda, definitions and body.
    counts: dict = field(default_factory=dict)
    repeated: frozenset = frozenset()
    memo: dict = field(default_factory=dict)
    counting: bool = False  # the first printing, whose text is thrown away

    def next_temp(self) -> str:
        self.temps += 1
        return naming.temporary(self.temps)

    def tensor(self, name: str) -> str:
        if self.problem is not None and name in self.problem.definitions:
            self.defined.add(name)
        else:
            self.inputs.add(name)
        return naming.code_name(name)

    def grad(self, array_name: str) -> str:
        if self.problem is not None and array_name in self.problem.definitions:
            return self.tensor(array_name)  # a gradient derived on the way (an intermediate)
        if array_name not in self.grads:
            self.grads.append(array_name)
        return naming.code_name(array_name)

    def dim(self, dim: str) -> str:
        self.dims.add(dim)
        return self.spell_dim(dim)


# --- scalars and functions -----------------------------------------------------------------

def number(value: Fraction, plain: bool = False) -> str:
    """A number as Python: ``2.0`` in code (float arithmetic from the start), ``2`` when
    ``plain`` (the displayed form, which reads like the documents)."""
    if plain and value.denominator == 1 and abs(value.numerator) < 10**15:
        return str(value.numerator)
    if value.denominator == 1:
        return f"{value.numerator}.0" if abs(value.numerator) < 10**15 else repr(float(value))
    return repr(float(value)) if _exact_float(value) else f"({value.numerator} / {value.denominator})"


def exponent(value: Fraction) -> str:
    """An exponent after ``**``, bracketed unless it is an integer (``x ** (2 / 3)``)."""
    if value.denominator == 1:
        return f"({value.numerator})" if value < 0 else str(value.numerator)
    return f"({value.numerator} / {value.denominator})"  # exact, as the documents write it


def _exact_float(value: Fraction) -> bool:
    return Fraction(float(value)) == value


def apply_function(name: str, order: int, arg: str, names: Names) -> str:
    """``name`` (a builtin of the registry, or a declared function's ``order``-th
    derivative, an argument of the code) applied to the code ``arg``."""
    known = builtin(name)
    if known is not None and not order:
        code = known.numpy_code(arg)
        return code if code.startswith("np.") else f"({code})"
    fn = naming.derivative_function(name, order)
    names.functions.add(fn)
    return f"{naming.code_name(fn)}({arg})"


# --- the matrix IR ----------------------------------------------------------------------------

#: Python's precedence levels as the printer uses them (``*``, ``/`` and ``@`` share one
#: level in Python; elementwise products print one below so that a product on their left
#: is bracketed for the reader).
ATOM, POWER, TRANSPOSED, MATMUL, ELEMENTWISE, SUM = 100, 80, 90, 50, 40, 30


def _wrap(code: str, prec: int, outer: int) -> str:
    return f"({code})" if prec < outer else code


def _left_level(child: ir.Node) -> int:
    """Bracket a product on the left of an elementwise operation unless it is itself
    elementwise (``a * b * c`` reads fine)."""
    return ELEMENTWISE if isinstance(child, (ir.Hadamard, ir.HadamardDiv)) else MATMUL + 1


def repeated_subexpressions(m: ir.Node) -> set[ir.Node]:
    counts: dict[ir.Node, int] = {}

    def visit(node: ir.Node):
        if isinstance(node, (ir.Ref, ir.Scalar, ir.Ones, ir.Identity, ir.Transpose,
                             ir.Broadcast)):
            for child in node.children():
                visit(child)
            return
        counts[node] = counts.get(node, 0) + 1
        if counts[node] == 1:
            for child in node.children():
                visit(child)

    visit(m)
    return {node for node, n in counts.items() if n > 1}


class NumpyPrinter:
    """NumPy code for IR nodes, dispatched on the node type.

    ``display=True`` prints ``matrix.text``: dims by name, sums over an axis as ``.sum``,
    no temporaries (docs/matrix-forms.md).  ``display=False`` prints code: the same
    values, broadcasting instead of materialising, shared subexpressions named once.
    """

    def __init__(self, names: Names, display: bool):
        self.names = names
        self.display = display
        self.shared: set[ir.Node] = set()
        self.named: dict[ir.Node, str] = {}
        #: printing an operand of an elementwise operation beside a full-shape operand:
        #: a broadcast may print as ``r[:, None]`` (NumPy broadcasts it), even for display
        self.compact = not display

    def print(self, m: ir.Node) -> str:
        if not self.display:
            self.shared = repeated_subexpressions(m)
        return self.code(m, 0)

    def code(self, m: ir.Node, outer: int) -> str:
        if m in self.named:
            return self.named[m]
        method = getattr(self, "_" + type(m).__name__.lower())
        saved = self.compact
        if self.display:
            if isinstance(m, (ir.Hadamard, ir.HadamardDiv, ir.Sum)):
                self.compact = any(not broadcasts(c) for c in m.children())
            elif not isinstance(m, (ir.Scale, ir.Apply, ir.Power, ir.Broadcast)):
                self.compact = False
        try:
            code, prec = method(m)
        finally:
            self.compact = saved
        if m in self.shared:
            name = self.names.next_temp()
            self.named[m] = name
            return f"({name} := {code})"
        return _wrap(code, prec, outer)

    # leaves
    def _ref(self, m: ir.Ref):
        return (self.names.grad(m.name) if m.grad else self.names.tensor(m.name)), ATOM

    def _scalar(self, m: ir.Scalar):
        code = scalar_code(m.term, self.names)
        simple = code.replace(".", "").replace("_", "").isalnum()
        return code, ATOM if simple else 20

    def _ones(self, m: ir.Ones):
        return f"np.ones({self.names.dim(m.dim)})", ATOM

    def _inverse(self, m: ir.Inverse):
        return f"np.linalg.inv({self.names.tensor(m.name)})", ATOM

    def _identity(self, m: ir.Identity):
        return f"np.eye({self.names.dim(m.dim)})", ATOM

    # structure
    def _transpose(self, m: ir.Transpose):
        if m.x.shape.ndim < 2:  # a vector turned is the same NumPy array
            return self.code(m.x, 0), ATOM if _is_atom(m.x) else 20
        return f"{self.code(m.x, ATOM)}.T", TRANSPOSED

    def _matmul(self, m: ir.MatMul):
        c = self.code
        if isinstance(m.a, ir.Diag) and m.b.shape.ndim == 1:  # diag(v) w = v * w
            return f"{c(m.a.v, ELEMENTWISE)} * {c(m.b, MATMUL + 1)}", ELEMENTWISE
        if isinstance(m.b, ir.Diag) and m.a.shape.ndim == 1:  # w^T diag(v) = w * v
            return f"{c(m.a, ELEMENTWISE)} * {c(m.b.v, MATMUL + 1)}", ELEMENTWISE
        if isinstance(m.a, ir.Diag) and m.b.shape.ndim == 2:  # diag(v) M scales the rows
            return f"{c(m.a.v, TRANSPOSED)}[:, None] * {c(m.b, MATMUL + 1)}", ELEMENTWISE
        if isinstance(m.b, ir.Diag) and m.a.shape.ndim == 2:  # M diag(v) scales the columns
            if self.display:  # NumPy broadcasts v along the rows as it is
                return f"{c(m.a, ELEMENTWISE)} * {c(m.b.v, MATMUL + 1)}", ELEMENTWISE
            return f"{c(m.a, ELEMENTWISE)} * {c(m.b.v, ATOM)}[None, :]", ELEMENTWISE
        solved = None if self.display else self._solve(m)  # displayed: A^{-1} b, as written
        if solved is not None:
            return solved, ATOM
        return f"{c(m.a, MATMUL)} @ {c(m.b, MATMUL + 1)}", MATMUL

    def _solve(self, m: ir.MatMul) -> str | None:
        """S^-1 B as ``np.linalg.solve(S, B)`` and a^T S^-1 as ``solve(S.T, a)``: a
        factorisation instead of an explicit inverse, where the inverse is not shared."""
        def inverse(x):
            if isinstance(x, ir.Inverse) and x not in self.shared:
                return self.names.tensor(x.name), False
            if (isinstance(x, ir.Transpose) and isinstance(x.x, ir.Inverse)
                    and x not in self.shared and x.x not in self.shared):
                return self.names.tensor(x.x.name), True
            return None
        left = inverse(m.a)
        if left is not None:
            name, transposed = left
            return f"np.linalg.solve({name}{'.T' if transposed else ''}, {self.code(m.b, 0)})"
        right = inverse(m.b)
        if right is not None and m.a.shape.ndim == 1:
            name, transposed = right
            return f"np.linalg.solve({name}{'' if transposed else '.T'}, {self.code(m.a, 0)})"
        return None

    def _outer(self, m: ir.Outer):
        fn = "np.outer" if self.display else "np.multiply.outer"
        return f"{fn}({self.code(m.a, 0)}, {self.code(m.b, 0)})", ATOM

    def _sumaxis(self, m: ir.SumAxis):
        c = self.code
        if self.display and m.x.shape.ndim == 2:  # 1^T X in LaTeX, X.sum(axis=0) here
            return f"{c(m.x, ATOM)}.sum(axis={m.axis})", TRANSPOSED
        if self.display and m.x.shape.ndim == 1:  # sum of a product of two vectors: a @ b
            pair = _dot_pair(m.x)
            if pair is not None:
                return f"{c(pair[0], MATMUL)} @ {c(pair[1], MATMUL + 1)}", MATMUL
        if m.x.shape.ndim == 1:
            return f"{c(m.x, ATOM)}.sum()", TRANSPOSED
        return f"{c(m.x, ATOM)}.sum(axis={0 if m.axis == 0 else -1})", TRANSPOSED

    def _broadcast(self, m: ir.Broadcast):
        c = self.code
        if m.x.shape.ndim == 0:
            if self.compact:
                return c(m.x, 0), ATOM if _is_atom(m.x) else 20
            shape = ", ".join(self.names.dim(d) for d in m.to.dims)
            shape = f"({shape})" if m.to.ndim == 2 else shape
            if isinstance(m.x, ir.Scalar) and m.x.term in (ONE, ZERO):
                return f"np.{'ones' if m.x.term == ONE else 'zeros'}({shape})", ATOM
            return f"{c(m.x, ELEMENTWISE)} * np.ones({shape})", ELEMENTWISE
        if self.compact and self.display and m.along == 0:  # along the rows: as it is
            return c(m.x, MATMUL + 1), MATMUL + 1
        if self.compact:
            return f"{c(m.x, TRANSPOSED)}[{':, None' if m.along == 1 else 'None, :'}]", TRANSPOSED
        if m.along == 1:
            return f"np.outer({c(m.x, 0)}, np.ones({self.names.dim(m.to.cols)}))", ATOM
        return f"np.outer(np.ones({self.names.dim(m.to.rows)}), {c(m.x, 0)})", ATOM

    def _diag(self, m: ir.Diag):
        return f"np.diag({self.code(m.v, 0)})", ATOM

    def _trace(self, m: ir.Trace):
        return f"np.trace({self.code(m.x, 0)})", ATOM

    # elementwise
    def _hadamard(self, m: ir.Hadamard):
        left = self.code(m.a, _left_level(m.a))
        if self.display and _is_reciprocal(m.b):  # a * (1 / b) is a / b
            return f"{left} / {self.code(m.b.b, MATMUL + 1)}", ELEMENTWISE
        right = self.code(m.b, MATMUL + 1)
        if self.display:  # a * sigmoid(u), printed 1 / (1 + exp(-u)), is a / (1 + exp(-u))
            inner = _reciprocal_code(right)
            if inner is not None:
                return f"{left} / {inner}", ELEMENTWISE
        return f"{left} * {right}", ELEMENTWISE

    def _hadamarddiv(self, m: ir.HadamardDiv):
        return f"{self.code(m.a, _left_level(m.a))} / {self.code(m.b, MATMUL + 1)}", ELEMENTWISE

    def _scale(self, m: ir.Scale):
        c = self.code
        if isinstance(m.c, ir.Scalar):
            numer, denom = _fraction(m.c.term, self.names)
            code = c(m.x, MATMUL + 1)
            if numer in ("-1.0", "-1"):
                code = f"-{code}"
            elif numer not in ("1.0", "1"):
                code = f"{numer} * {code}"
            return (f"{code} / {denom}", ELEMENTWISE) if denom else (code, ELEMENTWISE)
        return f"{c(m.c, ELEMENTWISE)} * {c(m.x, MATMUL + 1)}", ELEMENTWISE

    def _apply(self, m: ir.Apply):
        return apply_function(m.fn, m.order, self.code(m.x, 0), self.names), ATOM

    def _power(self, m: ir.Power):
        return f"{self.code(m.x, POWER + 1)} ** {exponent(m.n)}", POWER

    def _sum(self, m: ir.Sum):
        parts = []
        for k, (sign, t) in enumerate(m.terms):
            if k == 0:
                # -a * b and a - b / c read as they compute: only a sum needs brackets
                parts.append(self.code(t, SUM + 1) if sign > 0 else f"-{self.code(t, SUM + 1)}")
            else:
                parts.append(f" + {self.code(t, SUM + 1)}" if sign > 0
                             else f" - {self.code(t, SUM + 1)}")
        return "".join(parts), SUM


def _dot_pair(m: ir.Node) -> tuple[ir.Node, ir.Node] | None:
    """``(a, b)`` where the vector ``m`` is ``a ⊙ b`` of two vectors or ``a^2``: its sum is
    the dot product ``a @ b`` (``x @ x``, not ``(x ** 2).sum()``)."""
    if isinstance(m, ir.Hadamard) and m.a.shape.ndim == 1 and m.b.shape.ndim == 1:
        return m.a, m.b
    if isinstance(m, ir.Power) and m.n == 2:
        return m.x, m.x
    return None


def _reciprocal_code(code: str) -> str | None:
    """``b`` where ``code`` is ``(1 / b)`` with ``b`` bracketed (a function printed as a
    reciprocal, the sigmoid); else None."""
    if not (code.startswith("(1 / (") and code.endswith("))")):
        return None
    inner = code[len("(1 / "):-1]
    depth = 0
    for k, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and k < len(inner) - 1:
            return None  # "(1 / (a) * (b))": not one bracket
    return inner


def _is_reciprocal(m: ir.Node) -> bool:
    return (isinstance(m, ir.HadamardDiv) and isinstance(m.a, ir.Scalar)
            and m.a.term == ONE)


def _is_atom(m: ir.Node) -> bool:
    return isinstance(m, (ir.Ref, ir.Ones, ir.Identity))


def display_text(m: ir.Node, names: Names) -> str:
    """``matrix.text``: NumPy of ``m`` in the documents' notation, dims by name."""
    return _without_double_negation(NumpyPrinter(names, display=True).print(m))


class _DoubleNegation(ast.NodeTransformer):
    def visit_UnaryOp(self, node: ast.UnaryOp):
        self.generic_visit(node)
        if (isinstance(node.op, ast.USub) and isinstance(node.operand, ast.UnaryOp)
                and isinstance(node.operand.op, ast.USub)):
            return node.operand.operand
        return node


def _without_double_negation(code: str) -> str:
    """``-(-u)`` as ``u`` (the sigmoid of a negated argument prints ``np.exp(-(-u))``);
    the code is the printer's own, parsed and printed back only where it has one."""
    if "-(-" not in code:
        return code
    return ast.unparse(_DoubleNegation().visit(ast.parse(code, mode="eval")))


def numpy_text(m: ir.Node, problem: Problem | None = None) -> str:
    """``matrix.text`` of ``m`` on its own (dims by name)."""
    return display_text(m, Names(problem, plain_numbers=True))


def from_matrix(m: ir.Node, names: Names) -> str:
    """NumPy code for ``m`` (broadcast vectors left unexpanded: see ``broadcasts``)."""
    return NumpyPrinter(names, display=False).print(m)


def broadcasts(m: ir.Node) -> bool:
    """True when the code of ``m`` has fewer axes than ``m`` (``r[:, None]``, a scalar)."""
    if isinstance(m, ir.Broadcast):
        return True
    if isinstance(m, ir.Scalar):
        return True
    if isinstance(m, (ir.Hadamard, ir.HadamardDiv)):
        return broadcasts(m.a) and broadcasts(m.b)
    if isinstance(m, ir.Scale):
        return broadcasts(m.x)
    if isinstance(m, (ir.Apply, ir.Power)):
        return broadcasts(m.x)
    if isinstance(m, ir.Sum):
        return all(broadcasts(t) for _, t in m.terms)
    return False


# --- scalar (index-free) terms -----------------------------------------------------------------

def scalar_code(term: Term, names: Names) -> str:
    """An index-free term as NumPy: a sum with its signs, a product as a fraction
    (``1 - 1 / (lam + 2)``, not ``1 + (-1) * (lam + 2) ** (-1)``)."""
    if isinstance(term, Add):
        out = ""
        for k, t in enumerate(term.terms):
            coeff, rest = split_coeff(t)
            code = scalar_code(mul(Num(abs(coeff)), *rest), names)
            if coeff < 0:
                code = _operand(code) if " + " in code or " - " in code else code
                out += f"-{code}" if k == 0 else f" - {code}"
            else:
                out += code if k == 0 else f" + {code}"
        return out
    numer, denom = _fraction(term, names)
    return f"{numer} / {denom}" if denom else numer


def _scalar_factor(term: Term, names: Names) -> str:
    """An index-free factor as an operand of ``*``, ``/`` or ``**``."""
    if isinstance(term, Pow) and isinstance(term.exponent, Num):
        return f"{_operand(_scalar_factor(term.base, names))} ** {exponent(term.exponent.value)}"
    if isinstance(term, (Add, Mul)):
        return _operand(scalar_code(term, names))
    return _operand(_emit(term, names, {})[0])


def _fraction(term: Term, names: Names) -> tuple[str, str]:
    """An index-free term as (numerator code, denominator code or '')."""
    coeff, factors = split_coeff(term)
    num_parts, den_parts = [], []
    for f in factors:
        base, exp = base_exp(f)
        if exp < 0:
            code = _scalar_factor(base, names)
            den_parts.append(code if exp == -1 else f"{_operand(code)} ** {exponent(-exp)}")
        else:
            num_parts.append(_scalar_factor(f, names))
    if coeff.denominator != 1:
        den_parts.insert(0, number(Fraction(coeff.denominator), names.plain_numbers))
        coeff = Fraction(coeff.numerator)
    if coeff != 1 or not num_parts:
        num_parts.insert(0, number(coeff, names.plain_numbers))
    numer = " * ".join(num_parts)  # a product reads left to right: no brackets needed
    denom = " * ".join(den_parts)
    if len(den_parts) > 1:
        denom = f"({denom})"
    return numer, denom


_SIMPLE_OPERAND = re.compile(r"[A-Za-z_][\w.]*(\[\d+\])?|\d+(\.\d*)?")


def _operand(code: str) -> str:
    """``code`` bracketed unless it is one name, number, ``X.shape[0]`` or call: safe as an
    operand of any operator (``(f ** 3.0) ** (2 / 3)``, not ``f ** 3.0 ** (2 / 3)``)."""
    if _SIMPLE_OPERAND.fullmatch(code):
        return code
    head = code.split("(", 1)[0]
    call = "(" in code and (head == "" or _SIMPLE_OPERAND.fullmatch(head) is not None)
    if call and _closing(code, len(head)) == len(code) - 1:
        return code
    return f"({code})"


def _closing(code: str, start: int) -> int:
    """The position of the bracket that closes the one at ``start``."""
    depth = 0
    for k in range(start, len(code)):
        depth += {"(": 1, ")": -1}.get(code[k], 0)
        if depth == 0:
            return k
    return -1


# --- from an index expression: einsum --------------------------------------------------------

def from_index(term: Term, out: tuple[Index, ...], names: Names) -> str:
    """Code for ``term`` as an array with axes ``out`` (broadcast to the full shape)."""
    diagonal = _output_delta(term, out)
    if diagonal is not None:
        return _on_diagonal(*diagonal, out, names)
    letters: dict[Index, str] = {}
    code, idx = _emit(term, names, letters, out)
    code = _arrange(code, idx, out, letters)
    if set(idx) != set(out):
        shape = ", ".join(names.dim(i.dim) for i in out)
        code = f"np.broadcast_to({code}, ({shape},))" + ("" if names.pure else ".copy()")
    return code


def _output_delta(term: Term, out: tuple[Index, ...]) -> tuple[Delta, Term] | None:
    """A factor delta_ab between two output axes, and the rest of the product."""
    factors = term.factors if isinstance(term, Mul) else (term,)
    for k, f in enumerate(factors):
        if isinstance(f, Delta) and f.a != f.b and f.a in out and f.b in out:
            return f, mul(*factors[:k], *factors[k + 1:])
    return None


def _on_diagonal(delta: Delta, rest: Term, out: tuple[Index, ...], names: Names) -> str:
    """delta_ab R: zeros, with R written on the diagonal a = b (a view, no dense eye)."""
    inner_out = tuple(i for i in out if i != delta.b)
    inner = from_index(rename_indices(rest, {delta.b: delta.a}), inner_out, names)
    letters: dict[Index, str] = {}
    src = "".join(_letter(delta.a if i == delta.b else i, letters) for i in out)
    dst = "".join(_letter(i, letters) for i in inner_out)
    shape = ", ".join(names.dim(i.dim) for i in out)
    if names.pure:
        a, b = _letter(delta.a, letters), _letter(delta.b, letters)
        out_letters = "".join(_letter(i, letters) for i in out)
        return (f"np.einsum('{dst},{a}{b}->{out_letters}', {inner}, "
                f"np.eye({names.dim(delta.a.dim)}))")
    t = names.next_temp()
    return (f"(({t} := np.zeros(({shape},))), "
            f"np.copyto(np.einsum('{src}->{dst}', {t}), {inner}), {t})[-1]")


def _matmul(operands: list[tuple[str, tuple[Index, ...]]], p: Product,
            letters) -> str | None:
    """``A @ B`` for a product of two operands of rank <= 2 summed over the one index they
    share (matrix, matrix-vector and dot products), else None (einsum).

    ``np.einsum(..., optimize=True)`` does such a product with BLAS too, but returns it in
    Fortran order (a transposed view of ``tensordot``'s result); the elementwise operations
    that follow then walk memory against the grain (the RBF kernel's squared distances took
    twice as long as the textbook's).  ``@`` returns C order, in every framework.
    """
    if len(operands) != 2 or len(p.bound) != 1 or len(p.axes) > 2:
        return None
    (a, a_idx), (b, b_idx) = operands
    (k,) = p.bound
    if k not in a_idx or k not in b_idx or len(a_idx) > 2 or len(b_idx) > 2:
        return None
    a_free = tuple(i for i in a_idx if i != k)
    b_free = tuple(i for i in b_idx if i != k)
    if set(a_free) & set(b_free) or set(a_free) | set(b_free) != set(p.axes):
        return None
    if p.axes and p.axes[0] not in a_free:  # the output's first axis comes from the left
        (a, a_idx, a_free), (b, b_idx, b_free) = (b, b_idx, b_free), (a, a_idx, a_free)
    left = _arrange(a, a_idx, (*a_free, k), letters)
    right = _arrange(b, b_idx, (k, *b_free), letters)
    # a product with an inverse is a solve: S^-1 b = solve(S, b), a^T S^-1 = solve(S^T, a)
    inverse = _INVERSE.fullmatch(left)
    if inverse:
        matrix = inverse[1] + (".T" if inverse[2] else "")
        return f"np.linalg.solve({matrix}, {right})"
    inverse = _INVERSE.fullmatch(right)
    if inverse and len(a_idx) == 1:
        matrix = inverse[1] + ("" if inverse[2] else ".T")
        return f"np.linalg.solve({matrix}, {left})"
    return f"({_operand(left)} @ {_operand(right)})"


#: ``np.linalg.inv(S)`` or its transpose, as the plan prints an inverse used once.
_INVERSE = re.compile(r"np\.linalg\.inv\(([A-Za-z_][A-Za-z0-9_]*)\)(\.T)?")


def _letter(i: Index, letters: dict[Index, str]) -> str:
    if i not in letters:
        letters[i] = string.ascii_letters[len(letters)]
    return letters[i]


def _arrange(code: str, idx: tuple[Index, ...], order: tuple[Index, ...], letters) -> str:
    """Permute ``code``'s axes to ``order`` and insert new axes for indices it lacks."""
    present = tuple(i for i in order if i in idx)
    if len(idx) == 2 and present == idx[::-1]:
        code = f"{_operand(code)}.T"
    elif present != idx:
        src = "".join(_letter(i, letters) for i in idx)
        dst = "".join(_letter(i, letters) for i in present)
        code = f"np.einsum('{src}->{dst}', {code})"
    if len(present) != len(order) and present:
        slots = ", ".join(":" if i in idx else "None" for i in order)
        code = f"({code})[{slots}]"
    return code


def _emit(term: Term, names: Names, letters,
          order: tuple[Index, ...] = ()) -> tuple[str, tuple[Index, ...]]:
    """Code for ``term`` and the axes it has, printed from the contraction plan (in
    ``order``'s order where it can be computed so)."""
    if names.problem is not None:
        term = _proven_reads(term, names.problem)
    p = _in_order(make_plan(term, fast=True), order)  # the generated code's plan
    return _code(p, names, letters), p.axes


def _proven_reads(term: Term, problem: Problem) -> Term:
    """``term`` with each shifted read that the dims prove in range marked ``inside``
    (``x[u+k]`` of a valid convolution, ``u + k < T`` for ``U = T - K + 1``): its code reads
    it directly, without the clip and the mask of zero padding."""
    def mark(t: Term) -> Term | None:
        if not isinstance(t, (Tensor, Grad)):
            return None
        marked = tuple(
            Affine(p.terms, p.offset, p.dim, inside=True)
            if isinstance(p, Affine) and not p.inside and within(problem, p, p.dim) else p
            for p in t.indices)
        if marked == t.indices:
            return t
        return Tensor(t.name, marked) if isinstance(t, Tensor) else Grad(t.of, t.wrt, marked)
    return replace_term(term, mark)


def _in_order(p: Plan, order: tuple[Index, ...]) -> Plan:
    """``p`` with a contraction's result in the order its user reads it (``order``'s, for
    the axes ``p`` has), rather than a transposed view of it in Fortran order."""
    wanted = tuple(i for i in order if i in p.axes)
    if isinstance(p, Product) and p.bound and wanted != p.axes and len(wanted) == len(p.axes):
        return replace(p, axes=wanted)
    return p


def _code(p: Plan, names: Names, letters) -> str:
    if isinstance(p, Number):
        return number(p.value, names.plain_numbers)
    if isinstance(p, DimValue):
        return names.dim(p.dim)
    if isinstance(p, ConstantValue):
        return CONSTANTS[p.name].numpy
    if isinstance(p, Read):
        name = names.grad(p.name) if p.grad else names.tensor(p.name)
        if not p.diagonal:
            return name
        src = "".join(_letter(i, letters) for i in p.indices)
        dst = "".join(_letter(i, letters) for i in p.axes)
        return f"np.einsum('{src}->{dst}', {name})"
    if isinstance(p, Eye):
        return f"np.eye({names.dim(p.dim)})"
    if isinstance(p, Arange):
        return _shared(p, names, lambda: _arange(p, names))
    if isinstance(p, Gather):
        return _gather(p, names, letters)
    if isinstance(p, MatrixValue):
        return _shared(p, names, lambda: _matrix_value(p, names, letters))
    if isinstance(p, (ArgIndex, Reduce)):
        fn = ("arg" if isinstance(p, ArgIndex) else "") + p.kind
        body = _code(p.body, names, letters)
        return f"np.{fn}({body}, axis={p.body.axes.index(p.over)})"
    if isinstance(p, Call):
        return _shared(p, names, lambda: apply_function(p.fn, p.order,
                                                        _code(p.arg, names, letters), names))
    if isinstance(p, Compare):
        return f"np.where({_test(p, p.axes, names, letters)}, 1.0, 0.0)"
    if isinstance(p, Select):
        test = _test(p.test, p.axes, names, letters)
        then, otherwise = (_arrange(_operand(_code(x, names, letters)), x.axes, p.axes, letters)
                           for x in (p.then, p.otherwise))
        return f"np.where({test}, {then}, {otherwise})"
    if isinstance(p, Raise):
        base = _operand(_code(p.base, names, letters))
        if isinstance(p.exponent, Number):
            return f"{base} ** {exponent(p.exponent.value)}"
        return f"{base} ** {_operand(_code(p.exponent, names, letters))}"
    if isinstance(p, Total):
        def total() -> str:
            terms = [_in_order(t, p.axes) for t in p.terms]
            codes = [_arrange(_code(t, names, letters), t.axes, p.axes, letters)
                     for t in terms]
            return "(" + " + ".join(codes) + ")"
        return _shared(p, names, total) if p.axes else total()
    if isinstance(p, Product):
        elementwise = sum(1 for f in p.factors if f.axes) > 1
        return _shared(p, names, lambda: _product(p, names, letters)) \
            if p.bound or elementwise else _product(p, names, letters)
    raise TypeError(f"no NumPy for {type(p).__name__}")  # pragma: no cover


def _matrix_value(p: MatrixValue, names: Names, letters) -> str:
    a = names.tensor(p.matrix)
    if p.fn == "det":
        return f"np.linalg.det({a})"
    if p.fn == "logdet":
        return f"np.linalg.slogdet({a})[1]"
    code = f"np.linalg.inv({a})"
    if len(p.axes) != len(p.indices):
        src = "".join(_letter(i, letters) for i in p.indices)
        dst = "".join(_letter(i, letters) for i in p.axes)
        code = f"np.einsum('{src}->{dst}', {code})"
    return code


def _arange(p: Arange, names: Names) -> str:
    """``np.arange(U)[:, None] + np.arange(K) - 1``: each index on its own axis."""
    n = len(p.axes)
    parts = []
    for m, (i, c) in enumerate(zip(p.axes, p.coefficients)):
        if not c:
            continue
        code = f"np.arange({names.dim(i.dim)})"
        if m < n - 1:
            code += "[:" + ", None" * (n - m - 1) + "]"
        scale = "" if abs(c) == 1 else f"{abs(c)} * "
        parts.append((c < 0, scale + code))
    text = ""
    for negative, code in parts:
        text += (" - " if negative else " + ") + code if text else ("-" if negative else "") + code
    if p.offset or not text:
        text += (f" + {p.offset}" if p.offset > 0 else f" - {-p.offset}") if text else str(p.offset)
    return f"({text})" if len(parts) > 1 or p.offset else text


def _gather(p: Gather, names: Names, letters) -> str:
    """The entries at shifted positions, 0 outside the tensor's range (zero padding), with
    whole arrays.  Positions on their own indices are read one axis at a time with
    ``np.take``, which keeps the result in C order (an index array in a subscript puts its
    axes first in memory, which slows the contraction that follows it several times over):
    ``np.take(np.pad(x, ((0, 0), (0, 1))), np.where(in range, t - k, T), axis=1)`` reads
    the one zero appended wherever t - k is outside, so the padding costs a copy of the
    (small) array read, not a mask over the (large) array gathered.  Positions sharing an
    index are one subscript of clipped positions, times a mask.  A position the dims prove
    in range (``Gather.inside``) is read as it is."""
    code = names.grad(p.name) if p.grad else names.tensor(p.name)
    if p.order != tuple(range(len(p.order))):
        code = f"np.transpose({code}, {p.order})"
    if p.separate:
        values = [a for _, a, _ in p.shifted]
    else:  # positions sharing an index: one subscript, index arrays broadcast together
        values = [a.widened(p.union) for _, a, _ in p.shifted]
    tests, picks, axis, rank = [], [], len(p.plain), p.rank
    for values_j, (_, _, dim), inside in zip(values, p.shifted, p.inside):
        size = names.dim(dim)
        where = _code(values_j, names, letters)
        test = (f"({where} < {size})" if values_j.nonnegative
                else f"(({where} >= 0) & ({where} < {size}))")
        if p.separate:
            if not inside:
                widths = ", ".join("(0, 1)" if k == axis else "(0, 0)" for k in range(rank))
                code, where = f"np.pad({code}, ({widths},))", f"np.where({test}, {where}, {size})"
            code = f"np.take({code}, {where}, axis={axis})"
            axis += len(values_j.axes)
            rank += len(values_j.axes) - 1  # the take put the position's axes for its one
        elif inside:
            picks.append(where)
        else:
            picks.append(f"np.clip({where}, 0, {size} - 1)")
            tests.append(test)
    if picks:
        code = f"{code}[{', '.join([':'] * len(p.plain) + picks)}]"
    if tests:
        code = f"{code} * " + (tests[0] if len(tests) == 1 else "(" + " & ".join(tests) + ")")
    if len(p.raw) != len(p.axes):
        src = "".join(_letter(i, letters) for i in p.raw)
        dst = "".join(_letter(i, letters) for i in p.axes)
        code = f"np.einsum('{src}->{dst}', {code})"
    return code


def _test(p: Compare, axes, names: Names, letters) -> str:
    """``a op b`` with both sides arranged to ``axes``."""
    a, b = (_arrange(_operand(_code(x, names, letters)), x.axes, axes, letters)
            for x in (p.a, p.b))
    return f"{a} {p.op} {b}"


def _shared(p: Plan, names: Names, code: Callable[[], str]) -> str:
    """``code()``, computed once where the same array occurs again in the expression.

    Two function applications, contractions or sums that are the same up to the names of
    their indices are the same array (the exp of a CRF's pair potentials in numerator and
    denominator, an RBF kernel's squared distances in the kernel and in its gradient with
    respect to the length scale): the first is bound to a temporary,
    ``(_t2 := np.exp(...))``, the others use it.  Python evaluates operands left to right, so the first printed is the first
    evaluated.  The first printing of a lambda counts (an array met again is not looked
    into again, so what is inside it counts once); the second binds.
    """
    key = _shape_key(p)
    names.counts[key] = names.counts.get(key, 0) + 1
    if key in names.memo:
        return names.memo[key]
    text = code()
    if names.counting:
        names.memo[key] = text
    if key not in names.repeated:
        return text
    temp = names.next_temp()
    names.memo[key] = temp
    return f"({temp} := {text})"


def _shape_key(p: Plan) -> tuple:
    """``p`` with its indices numbered by first appearance (their dims kept)."""
    numbering: dict[Index, int] = {}

    def key(x):
        if isinstance(x, Index):
            return ("index", x.dim, numbering.setdefault(x, len(numbering)))
        if isinstance(x, tuple):
            return tuple(key(y) for y in x)
        if isinstance(x, Plan):
            return (type(x).__name__,) + tuple(key(getattr(x, f.name)) for f in fields(x))
        return x
    return key(p)


def _product(p: Product, names: Names, letters) -> str:
    # The text is printed in the order Python evaluates it (scalars, arrays, divisors): a
    # shared subexpression is bound where it is first printed, which must be where it is
    # first evaluated.
    over = [f for f in p.factors if not f.axes and _reciprocal(f)]
    if len(over) == len(p.factors) and not p.unused:
        over = []  # a reciprocal alone stays a power
    scalars = [_code(f, names, letters) for f in p.factors if not f.axes and f not in over]
    arrays = [f for f in p.factors if f.axes]
    # a broadcast product divides by its factors x^-1 (one pass, not a reciprocal and a
    # product), after the others; in a contraction x^-1 is an operand like any other
    divide = not p.bound and any(not _reciprocal(f) for f in arrays)
    if divide:
        arrays.sort(key=_reciprocal)
    operands: list[tuple[str, tuple[Index, ...]]] = []
    for f in arrays:
        if not _reciprocal(f):
            operands.append((_code(f, names, letters), f.axes))
        elif divide:
            operands.append((_code(f.base, names, letters), f.axes))
        else:
            operands.append((f"(1.0 / {_code(f.base, names, letters)})", f.axes))
    scalars += [names.dim(dim) for dim in p.unused]
    if not operands:
        code = "1.0"
    elif len(operands) == 1 and not p.bound and operands[0][1] == p.axes:
        code = operands[0][0]
    elif len(operands) == 1 and set(p.bound) <= set(operands[0][1]):
        # a sum over axes of one array
        code, idx = operands[0]
        axes = [k for k, i in enumerate(idx) if i in p.bound]
        axis = str(axes[0]) if len(axes) == 1 else "(" + ", ".join(map(str, axes)) + ")"
        kept = tuple(i for i in idx if i not in p.bound)
        summed = f"{_operand(code)}.sum(axis={axis})" if kept else f"{_operand(code)}.sum()"
        code = _arrange(summed, kept, p.axes, letters)
    elif not p.bound:
        # nothing is summed: a broadcast product (einsum would loop over the whole output
        # for every operand, and a delta between output axes would cost a dense eye)
        parts = [_arrange(_operand(c), idx, p.axes, letters) for c, idx in operands]
        code = "(" + parts[0] + "".join(
            (" / " if divide and _reciprocal(f) else " * ") + part
            for f, part in zip(arrays[1:], parts[1:])) + ")"
    else:
        code = _matmul(operands, p, letters)
        if code is None:
            spec = ",".join("".join(_letter(i, letters) for i in idx) for _, idx in operands)
            out = "".join(_letter(i, letters) for i in p.axes)
            args = ", ".join(code for code, _ in operands)
            code = f"np.einsum('{spec}->{out}', {args}, optimize=True)"
    if scalars:
        code = " * ".join(f"({s})" for s in scalars) + f" * {code}" if operands else \
            "(" + " * ".join(f"({s})" for s in scalars) + ")"
    if over:
        code = code + "".join(f" / {_operand(_code(f.base, names, letters))}" for f in over)
    return code


def _reciprocal(f: Plan) -> bool:
    return isinstance(f, Raise) and f.exponent == Number((), Fraction(-1))
