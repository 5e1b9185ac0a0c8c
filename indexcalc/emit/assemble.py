"""Assembly: a result's code and displayed form, put together from the NumPy backend.

* ``numpy_lambda``: the contract's ``lambda`` (CONTRACT section 2).  It takes the upstream
  gradients, the inputs it needs, the callables of declared functions and any dim that no
  argument carries; defined tensors it needs are computed once inside it, in definition
  order.  Dims are spelled as the shape of an argument (``X.shape[0]``), chosen before the
  code is printed.
* ``displayed_form``: ``matrix.text`` and ``matrix.where``, printed from the same IR with
  dims by name: what the documents show, and what the check evaluates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .. import naming
from ..derivation import NumpyFunction
from ..matrix import ir
from ..matrix.chains import reassociate
from ..matrix.recognize import to_matrix
from ..problem import Problem
from ..terms import ZERO, Index, Term
from .numpy import Names, broadcasts, display_text, from_index, from_matrix


@dataclass(frozen=True)
class DisplayedForm:
    """``matrix.text`` with the ``where`` definitions it names, in evaluation order."""

    text: str
    where: tuple[tuple[str, str], ...]


def numpy_lambda(problem: Problem, index: Term, out: tuple[Index, ...],
                 matrix: ir.Node | None, wrt: str | None = None,
                 pure: bool = False) -> NumpyFunction:
    """The result's lambda; ``pure`` code writes nothing in place (for the frameworks)."""
    return _lambda(problem, pure,
                   lambda names: _lambda_parts(problem, index, out, matrix, wrt, names))


def tensor_lambda(problem: Problem, names_: tuple[str, ...], pure: bool = False) -> NumpyFunction:
    """A lambda computing the tensors ``names_`` (defined or input) from the inputs: the
    forward pass of an emitted module (a tuple when there are several)."""
    def parts(names: Names):
        codes = [names.tensor(n) for n in names_]
        return codes[0] if len(codes) == 1 else "(" + ", ".join(codes) + ",)"
    return _lambda(problem, pure, parts)


def _lambda(problem: Problem, pure: bool, body_of) -> NumpyFunction:
    """The lambda whose body ``body_of(names)`` prints, after the defined tensors it uses.

    A first printing learns which arguments, dims and defined tensors the code needs, and
    which arrays occur more than once; the second prints it with each dim read off an
    argument's shape (or passed as an argument of its own) and each repeated array bound
    once.  The second prints the definitions first, in the order they are evaluated, so
    that an array shared by a definition and the body (an RBF kernel's squared distances)
    is bound where it is first computed.
    """
    collecting = Names(problem, pure=pure, counting=True)
    body_of(collecting)
    _definitions_code(problem, collecting, display=False)
    args = _arguments(problem, collecting)
    sources = _dim_sources(problem, collecting, args)
    repeated = frozenset(k for k, n in collecting.counts.items() if n > 1)

    def second(repeated: frozenset) -> tuple[list[tuple[str, str]], str]:
        names = Names(problem, spell_dim=sources.__getitem__, pure=pure, repeated=repeated)
        names.defined |= collecting.defined
        definitions = _definitions_code(problem, names, display=False)
        body = body_of(names)
        assert names.defined <= collecting.defined, "the second printing names more tensors"
        return definitions, body

    definitions, body = second(repeated)
    code = ", ".join([f"({d} := {c})" for d, c in definitions] + [body])
    if repeated and not _bound_before_use(code):  # never expected; shared nothing then
        definitions, body = second(frozenset())
        code = ", ".join([f"({d} := {c})" for d, c in definitions] + [body])
    if definitions:
        code = f"({code})[-1]"
    args = [naming.code_name(a) for a in args]
    return NumpyFunction(f"lambda {', '.join(args)}: {code}", tuple(args))


def _bound_before_use(code: str) -> bool:
    """Is every temporary of ``code`` first met where it is bound (``_t1 := ...``)?  Python
    evaluates an expression's operands left to right, so the text's order is the order of
    evaluation."""
    seen: set[str] = set()
    for match in re.finditer(r"\b(_t\d+)\b( :=)?", code):
        name, binds = match.group(1), match.group(2)
        if name not in seen and not binds:
            return False
        seen.add(name)
    return True


def _lambda_parts(problem: Problem, index: Term, out: tuple[Index, ...],
                  matrix: ir.Node | None, wrt: str | None, names: Names):
    if index == ZERO and wrt in problem.inputs:
        names.tensor(wrt)  # a zero gradient takes its shape from the input
    if matrix is not None:
        body = from_matrix(reassociate(matrix, _definition_matrices(problem)), names)
        if out and broadcasts(matrix):
            shape = ", ".join(names.dim(i.dim) for i in out)
            body = f"np.broadcast_to({body}, ({shape},))" + ("" if names.pure else ".copy()")
    else:
        body = from_index(index, out, names)
    if not out:
        body = f"np.asarray({body}, dtype=np.float64)"  # no builtin a user could shadow
    return body


def _definition_matrices(problem: Problem):
    """The matrix form of each defined tensor, by name (None for inputs or none)."""
    def definition(name: str) -> ir.Node | None:
        d = problem.definitions.get(name)
        if d is None or d.is_opaque_loss:
            return None
        return to_matrix(d.body, d.indices)
    return definition


def displayed_form(problem: Problem, matrix: ir.Node,
                   named: list[tuple[str, ir.Node]] = ()) -> DisplayedForm:
    """``matrix.text`` and ``matrix.where`` of ``matrix``, dims by name; ``named`` are the
    tensors the display names that the file does not define (``matrix.named``), listed
    after the definitions they use."""
    names = Names(problem, plain_numbers=True)
    text = display_text(matrix, names)
    extra = [(name, display_text(node, names)) for name, node in named]
    return DisplayedForm(text, tuple(_definitions_code(problem, names, display=True)) + tuple(extra))


def _definitions_code(problem: Problem, names: Names, display: bool) -> list[tuple[str, str]]:
    """Code for every defined tensor the printed code names, in definition order (printing
    one may name others)."""
    done: dict[str, str] = {}
    while True:
        todo = [n for n in problem.definitions if n in names.defined and n not in done]
        if not todo:
            break
        for name in todo:
            d = problem.definitions[name]
            m = to_matrix(d.body, d.indices)
            if m is not None and display:
                done[name] = display_text(m, names)
            elif m is not None and not (d.indices and broadcasts(m)):
                done[name] = from_matrix(m, names)
            else:
                done[name] = from_index(d.body, d.indices, names)
    return [(naming.code_name(n), done[n]) for n in problem.definitions if n in done]


def _arguments(problem: Problem, names: Names) -> list[str]:
    args = list(names.grads)
    args += [n for n in problem.inputs if n in names.inputs]
    for fn in problem.functions:
        orders = sorted(order for order in range(_max_order(names, fn) + 1))
        if any(naming.derivative_function(fn, k) in names.functions for k in orders):
            # the contract's pair h, h_prime always comes together; higher ones when used
            args += [naming.derivative_function(fn, k) for k in orders
                     if k < 2 or naming.derivative_function(fn, k) in names.functions]
    return args


def _max_order(names: Names, fn: str) -> int:
    used = [naming.split_derivative_function(f) for f in names.functions]
    return max([1] + [order for base, order in used if base == fn])


def _dim_sources(problem: Problem, names: Names, args: list[str]) -> dict[str, str]:
    """``X.shape[0]`` for each dim the code uses; for a dim defined from others that no
    argument carries, its formula in theirs (``(x.shape[0] - w.shape[0] + 1)``); else a new
    argument named after the dim."""
    sources: dict[str, str] = {}

    def source(dim: str) -> str:
        if dim not in sources:
            for arg in args:
                shape = _arg_dims(problem, arg)
                if dim in shape:
                    sources[dim] = f"{naming.code_name(arg)}.shape[{shape.index(dim)}]"
                    break
            else:
                formula = problem.dim_formulas.get(dim)
                if formula is not None:
                    sources[dim] = f"({formula.code(source)})"
                else:
                    args.append(dim)
                    sources[dim] = naming.code_name(dim)
        return sources[dim]

    for dim in sorted(names.dims):
        source(dim)
    return sources


def _arg_dims(problem: Problem, arg: str) -> tuple[str, ...]:
    if arg in problem.inputs:
        return problem.inputs[arg].dims
    for d in problem.definitions.values():
        for a in d.loss_args:
            if arg == naming.gradient(d.name, a):
                return problem.tensor_dims(a)
    return ()
