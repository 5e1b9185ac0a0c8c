"""NumPy code for a result: one ``lambda`` per result, as the contract describes.

The lambda takes the upstream gradients (``dL_dY``), the input tensors it needs, the
callables of unspecified functions (``h``, ``h_prime``) and any dim that no argument
carries.  Defined tensors it needs (``Y`` of a softmax) are computed once inside it with
assignment expressions, in the order of their definitions.  A result with a matrix form is
emitted from it (``dL_dY.T @ X``; a sum over an axis as ``.sum(axis=0)``; a broadcast as
``r[:, None]``, never a materialised ``1 1^T``); otherwise from the index form through
``np.einsum`` with ``optimize=True``.
"""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from fractions import Fraction

from ..matrix import recognize as mx
from ..problem import Problem
from ..terms import (
    Add, Delta, DimSize, Func, Grad, Index, Mul, Num, Pow, Sum, Tensor, Term, base_exp, mul,
    rename_indices, split_coeff,
)


@dataclass
class Names:
    """Which arguments and defined tensors a piece of generated code refers to."""

    problem: Problem
    grads: list[str] = field(default_factory=list)
    inputs: set[str] = field(default_factory=set)
    defined: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)  # "h", "h_prime", ...
    dims: set[str] = field(default_factory=set)
    temps: int = 0

    def next_temp(self) -> int:
        self.temps += 1
        return self.temps

    def tensor(self, name: str) -> str:
        if name in self.problem.definitions:
            self.defined.add(name)
        else:
            self.inputs.add(name)
        return name

    def grad(self, array_name: str) -> str:
        if array_name not in self.grads:
            self.grads.append(array_name)
        return array_name

    def dim(self, dim: str) -> str:
        self.dims.add(dim)
        return f"__dim_{dim}"


# --- scalars and functions -----------------------------------------------------------------

def number(value: Fraction) -> str:
    if value.denominator == 1:
        return f"{value.numerator}.0" if abs(value.numerator) < 10**15 else repr(float(value))
    return repr(float(value)) if _exact_float(value) else f"({value.numerator} / {value.denominator})"


def exponent(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else number(value)


def _exact_float(value: Fraction) -> bool:
    return Fraction(float(value)) == value


def apply_function(name: str, order: int, arg: str, names: Names) -> str:
    if order:
        fn = name + "_prime" + (str(order) if order > 1 else "")
        names.functions.add(fn)
        return f"{fn}({arg})"
    if name in mx.NUMPY_FUNCTIONS:
        return f"{mx.NUMPY_FUNCTIONS[name]}({arg})"
    if name in mx.NUMPY_SPELLED_OUT:  # the same spelling as the matrix text
        return f"({mx.NUMPY_SPELLED_OUT[name].format(arg)})"
    names.functions.add(name)
    return f"{name}({arg})"


# --- from a matrix expression ----------------------------------------------------------------

def from_matrix(m: mx.MatrixExpr, names: Names) -> str:
    """NumPy code for ``m``; a subexpression that occurs twice is computed once and named
    with an assignment expression at its first (leftmost, so first evaluated) occurrence."""
    return _MatrixEmitter(names, repeated_subexpressions(m)).code(m, 0)


def _wrap(code: str, prec: int, outer: int) -> str:
    return f"({code})" if prec < outer else code


def matrix_children(m: mx.MatrixExpr) -> list[mx.MatrixExpr]:
    if isinstance(m, mx.MSum):
        return [t for _, t in m.terms]
    return [v for v in vars(m).values() if isinstance(v, mx.MatrixExpr)]


def repeated_subexpressions(m: mx.MatrixExpr) -> set[mx.MatrixExpr]:
    counts: dict[mx.MatrixExpr, int] = {}

    def visit(node: mx.MatrixExpr):
        if isinstance(node, (mx.Ref, mx.Scalar, mx.Ones, mx.Identity, mx.Transpose, mx.Outer)):
            for child in matrix_children(node):
                visit(child)
            return
        counts[node] = counts.get(node, 0) + 1
        if counts[node] == 1:
            for child in matrix_children(node):
                visit(child)

    visit(m)
    return {node for node, n in counts.items() if n > 1}


class _MatrixEmitter:
    def __init__(self, names: Names, shared: set[mx.MatrixExpr]):
        self.names = names
        self.shared = shared
        self.named: dict[mx.MatrixExpr, str] = {}

    def code(self, m: mx.MatrixExpr, outer: int) -> str:
        if m in self.named:
            return self.named[m]
        code, prec = self._prec(m)
        if m in self.shared:
            name = f"_t{self.names.next_temp()}"
            self.named[m] = name
            return f"({name} := {code})"
        return _wrap(code, prec, outer)

    def _prec(self, m: mx.MatrixExpr) -> tuple[str, int]:
        c, names = self.code, self.names
        if isinstance(m, mx.Ref):
            return (names.grad(m.name) if m.grad else names.tensor(m.name)), 100
        if isinstance(m, mx.Scalar):
            code = scalar_code(m.term, names)
            simple = code.replace(".", "").replace("_", "").isalnum()
            return code, 100 if simple else 20
        if isinstance(m, mx.Ones):
            return f"np.ones({names.dim(m.dim)})", 100
        if isinstance(m, mx.Identity):
            return f"np.eye({names.dim(m.dim)})", 100
        if isinstance(m, mx.Diag):
            return f"np.diag({c(m.v, 0)})", 100
        if isinstance(m, mx.Transpose):
            return f"{c(m.x, 100)}.T", 90
        if isinstance(m, mx.MatMul):
            if isinstance(m.a, mx.Ones):
                axis = "" if m.b.rank == 1 else "axis=0"
                return f"{c(m.b, 100)}.sum({axis})", 90
            if isinstance(m.b, mx.Ones):
                return f"{c(m.a, 100)}.sum(axis=-1)", 90
            if isinstance(m.a, mx.Diag):  # diag(v) M scales the rows: no n x n matrix
                return f"{c(m.a.v, 100)}[:, None] * {c(m.b, 51)}", 40
            if isinstance(m.b, mx.Diag):
                return f"{c(m.a, 40)} * {c(m.b.v, 100)}[None, :]", 40
            return f"{c(m.a, 50)} @ {c(m.b, 51)}", 50
        if isinstance(m, mx.Outer):
            if isinstance(m.b, mx.Ones):
                return f"{c(m.a, 100)}[:, None]", 90
            if isinstance(m.a, mx.Ones):
                return f"{c(m.b, 100)}[None, :]", 90
            return f"np.multiply.outer({c(m.a, 0)}, {c(m.b, 0)})", 100
        if isinstance(m, mx.Hadamard):
            return f"{c(m.a, mx._left_level(m.a))} * {c(m.b, 51)}", 40
        if isinstance(m, mx.HadamardDiv):
            return f"{c(m.a, mx._left_level(m.a))} / {c(m.b, 51)}", 40
        if isinstance(m, mx.Scale):
            if isinstance(m.c, mx.Scalar):
                numer, denom = _fraction(m.c.term, names)
                code = c(m.x, 51)
                if numer == "-1.0":
                    code = f"-{code}"
                elif numer != "1.0":
                    code = f"{numer} * {code}"
                return (f"{code} / {denom}", 40) if denom else (code, 40)
            return f"{c(m.c, 40)} * {c(m.x, 51)}", 40
        if isinstance(m, mx.Elementwise):
            return apply_function(m.fn, m.order, c(m.x, 0), names), 100
        if isinstance(m, mx.Power):
            return f"{c(m.x, 81)} ** {exponent(m.n)}", 80
        if isinstance(m, mx.MSum):
            parts = []
            for k, (sign, t) in enumerate(m.terms):
                if k == 0:
                    parts.append(c(t, 31) if sign > 0 else f"-{c(t, 41)}")
                else:
                    parts.append(f" + {c(t, 31)}" if sign > 0 else f" - {c(t, 41)}")
            return "".join(parts), 30
        raise TypeError(f"no NumPy for {type(m).__name__}")  # pragma: no cover


def broadcasts(m: mx.MatrixExpr) -> bool:
    """True when the code of ``m`` has fewer axes than ``m`` (``r[:, None]``, a scalar)."""
    if isinstance(m, mx.Outer):
        return isinstance(m.a, mx.Ones) or isinstance(m.b, mx.Ones)
    if isinstance(m, mx.Scalar):
        return True
    if isinstance(m, (mx.Hadamard, mx.HadamardDiv)):
        return broadcasts(m.a) and broadcasts(m.b)
    if isinstance(m, mx.Scale):
        return broadcasts(m.x)
    if isinstance(m, (mx.Elementwise, mx.Power)):
        return broadcasts(m.x)
    if isinstance(m, mx.MSum):
        return all(broadcasts(t) for _, t in m.terms)
    return False


# --- scalar (index-free) terms -----------------------------------------------------------------

def scalar_code(term: Term, names: Names) -> str:
    numer, denom = _fraction(term, names)
    return f"{numer} / {denom}" if denom else numer


def _fraction(term: Term, names: Names) -> tuple[str, str]:
    """An index-free term as (numerator code, denominator code or '')."""
    coeff, factors = split_coeff(term)
    num_parts, den_parts = [], []
    for f in factors:
        base, exp = base_exp(f)
        code, _ = _emit(base if exp < 0 else f, names, {})
        if exp < 0:
            den_parts.append(code if exp == -1 else f"{code} ** {exponent(-exp)}")
        else:
            num_parts.append(code)
    if coeff.denominator != 1:
        den_parts.insert(0, number(Fraction(coeff.denominator)))
        coeff = Fraction(coeff.numerator)
    if coeff != 1 or not num_parts:
        num_parts.insert(0, number(coeff))
    numer = " * ".join(num_parts)
    if len(num_parts) > 1:
        numer = f"({numer})"
    denom = " * ".join(den_parts)
    if len(den_parts) > 1:
        denom = f"({denom})"
    return numer, denom


# --- from an index expression: einsum --------------------------------------------------------

def from_index(term: Term, out: tuple[Index, ...], names: Names) -> str:
    """Code for ``term`` as an array with axes ``out`` (broadcast to the full shape)."""
    diagonal = _output_delta(term, out)
    if diagonal is not None:
        return _on_diagonal(*diagonal, out, names)
    letters: dict[Index, str] = {}
    code, idx = _emit(term, names, letters)
    code = _arrange(code, idx, out, letters)
    if set(idx) != set(out):
        shape = ", ".join(names.dim(i.dim) for i in out)
        code = f"np.broadcast_to({code}, ({shape},)).copy()"
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
    t = f"_t{names.next_temp()}"
    return (f"(({t} := np.zeros(({shape},))), "
            f"np.copyto(np.einsum('{src}->{dst}', {t}), {inner}), {t})[-1]")


def _letter(i: Index, letters: dict[Index, str]) -> str:
    if i not in letters:
        letters[i] = string.ascii_letters[len(letters)]
    return letters[i]


def _arrange(code: str, idx: tuple[Index, ...], order: tuple[Index, ...], letters) -> str:
    """Permute ``code``'s axes to ``order`` and insert new axes for indices it lacks."""
    present = tuple(i for i in order if i in idx)
    if present != idx:
        src = "".join(_letter(i, letters) for i in idx)
        dst = "".join(_letter(i, letters) for i in present)
        code = f"np.einsum('{src}->{dst}', {code})"
    if len(present) != len(order) and present:
        slots = ", ".join(":" if i in idx else "None" for i in order)
        code = f"({code})[{slots}]"
    return code


def _emit(term: Term, names: Names, letters) -> tuple[str, tuple[Index, ...]]:
    if isinstance(term, Num):
        return number(term.value), ()
    if isinstance(term, DimSize):
        return names.dim(term.name), ()
    if isinstance(term, Tensor):
        return _indexed(names.tensor(term.name), term.indices, letters)
    if isinstance(term, Grad):
        return _indexed(names.grad(term.array_name), term.indices, letters)
    if isinstance(term, Delta):
        if term.a == term.b:
            return "1.0", ()
        return f"np.eye({names.dim(term.a.dim)})", (term.a, term.b)
    if isinstance(term, Func):
        code, idx = _emit(term.arg, names, letters)
        return apply_function(term.name, term.order, code, names), idx
    if isinstance(term, Pow):
        base, exp = _emit(term.base, names, letters)
        ecode, _ = _emit(term.exponent, names, letters)
        return f"({base}) ** ({ecode})", exp
    if isinstance(term, Add):
        parts = [_emit(t, names, letters) for t in term.terms]
        order: list[Index] = []
        for _, idx in sorted(parts, key=lambda p: -len(p[1])):
            order.extend(i for i in idx if i not in order)
        codes = [_arrange(c, idx, tuple(order), letters) for c, idx in parts]
        return "(" + " + ".join(codes) + ")", tuple(order)
    if isinstance(term, (Mul, Sum)):
        return _product(term, names, letters)
    raise TypeError(f"no NumPy for {type(term).__name__}")  # pragma: no cover


def _indexed(name: str, indices, letters) -> tuple[str, tuple[Index, ...]]:
    if len(set(indices)) == len(indices):
        return name, tuple(indices)
    unique = tuple(dict.fromkeys(indices))
    src = "".join(_letter(i, letters) for i in indices)
    dst = "".join(_letter(i, letters) for i in unique)
    return f"np.einsum('{src}->{dst}', {name})", unique


def _product(term: Term, names: Names, letters) -> tuple[str, tuple[Index, ...]]:
    bound: tuple[Index, ...] = ()
    body = term
    if isinstance(term, Sum):
        bound, body = term.indices, term.body
    factors = body.factors if isinstance(body, Mul) else (body,)
    scalars: list[str] = []
    operands: list[tuple[str, tuple[Index, ...]]] = []
    for f in factors:
        base, exp = base_exp(f)
        if exp == -1 and base.free:
            code, idx = _emit(base, names, letters)
            operands.append((f"(1.0 / {code})", idx))
            continue
        code, idx = _emit(f, names, letters)
        if idx:
            operands.append((code, idx))
        else:
            scalars.append(code)
    free = tuple(i for i in dict.fromkeys(i for _, idx in operands for i in idx) if i not in bound)
    if not operands:
        code = "1.0"
    elif len(operands) == 1 and not bound and operands[0][1] == free:
        code = operands[0][0]
    elif not bound:
        # nothing is summed: a broadcast product (einsum would loop over the whole output
        # for every operand, and a delta between output axes would cost a dense eye)
        code = " * ".join(_arrange(c, idx, free, letters) for c, idx in operands)
        code = f"({code})"
    else:
        spec = ",".join("".join(_letter(i, letters) for i in idx) for _, idx in operands)
        out = "".join(_letter(i, letters) for i in free)
        args = ", ".join(code for code, _ in operands)
        code = f"np.einsum('{spec}->{out}', {args}, optimize=True)"
    if scalars:
        code = " * ".join(f"({s})" for s in scalars) + f" * {code}" if operands else \
            " * ".join(f"({s})" for s in scalars)
    return code, free
