"""One run from a parsed problem to checked results: derive, matrix form, NumPy, check.

Every stage runs once per result, in order; the renderers only read what this returns.
"""
from __future__ import annotations

from .check.numeric import check
from .emit.numpy import Names, broadcasts, from_index, from_matrix
from .derivation import Derivation, NumpyFunction, Result
from .derive.engine import Engine, IndexResult
from .matrix.recognize import to_matrix
from .problem import Problem
from .terms import ZERO, Deriv, Grad, Index, Tensor, Term


def run(problem: Problem) -> Derivation:
    engine = Engine(problem)
    results = []
    for goal in problem.goals:
        derived = engine.derive(goal)
        out = output_indices(derived)
        matrix = to_matrix(derived.index, out)
        numpy = numpy_function(problem, derived.index, out, matrix, wrt=goal.wrt)
        results.append(Result(
            kind=goal.kind, of=goal.of, wrt=goal.wrt, target=derived.target,
            index=derived.index, blocks=derived.blocks, matrix=matrix, numpy=numpy,
            check=check(goal, numpy, problem)))
    return Derivation(problem, tuple(results))


def output_indices(derived: IndexResult) -> tuple[Index, ...]:
    """Axes of the result array: ``of`` axes (jacobian) then ``wrt`` axes (twice: hessian)."""
    target = derived.target
    if isinstance(target, Grad):
        return target.indices
    axes: list[Index] = []
    while isinstance(target, Deriv):
        axes[:0] = list(target.wrt.indices)
        target = target.expr
    if isinstance(target, Tensor):
        axes[:0] = list(target.indices)
    return tuple(axes)


def numpy_function(problem: Problem, index: Term, out: tuple[Index, ...],
                   matrix, wrt: str | None = None) -> NumpyFunction:
    names = Names(problem)
    if index == ZERO and wrt in problem.inputs:
        names.tensor(wrt)  # a zero gradient takes its shape from the input
    if matrix is not None:
        body = from_matrix(matrix, names)
        if out and broadcasts(matrix):
            shape = ", ".join(names.dim(i.dim) for i in out)
            body = f"np.broadcast_to({body}, ({shape},)).copy()"
    else:
        body = from_index(index, out, names)
    if not out:
        body = f"np.asarray({body}, dtype=float)"
    assignments = _definitions_code(problem, names)
    args = _arguments(problem, names)
    dims = _dim_sources(problem, names, args)
    code = ", ".join([f"({d} := {code})" for d, code in assignments] + [body])
    if assignments:
        code = f"({code})[-1]"
    for dim, source in sorted(dims.items(), key=lambda kv: -len(kv[0])):
        code = code.replace(f"__dim_{dim}", source)
    return NumpyFunction(f"lambda {', '.join(args)}: {code}", tuple(args))


def _definitions_code(problem: Problem, names: Names) -> list[tuple[str, str]]:
    """Code for every defined tensor the result needs, in definition order."""
    done: dict[str, str] = {}
    while True:
        todo = [n for n in problem.definitions if n in names.defined and n not in done]
        if not todo:
            break
        for name in todo:
            d = problem.definitions[name]
            m = to_matrix(d.body, d.indices)
            if m is not None and not (d.indices and broadcasts(m)):
                done[name] = from_matrix(m, names)
            else:
                done[name] = from_index(d.body, d.indices, names)
    return [(n, done[n]) for n in problem.definitions if n in done]


def _arguments(problem: Problem, names: Names) -> list[str]:
    args = list(names.grads)
    args += [n for n in problem.inputs if n in names.inputs]
    for fn in problem.functions:
        variants = (fn, f"{fn}_prime", f"{fn}_prime2")
        if any(v in names.functions for v in variants):
            # the contract's pair h, h_prime always comes together; h_prime2 when used
            args += [v for v in variants if v in names.functions or v != variants[2]]
    return args


def _dim_sources(problem: Problem, names: Names, args: list[str]) -> dict[str, str]:
    """``X.shape[0]`` for each dim the code uses, or a new argument named after the dim."""
    sources = {}
    for dim in sorted(names.dims):
        for arg in args:
            shape = _arg_dims(problem, arg)
            if dim in shape:
                sources[dim] = f"{arg}.shape[{shape.index(dim)}]"
                break
        else:
            args.append(dim)
            sources[dim] = dim
    return sources


def _arg_dims(problem: Problem, arg: str) -> tuple[str, ...]:
    if arg in problem.inputs:
        return problem.inputs[arg].dims
    for d in problem.definitions.values():
        for a in d.loss_args:
            if arg == f"d{d.name}_d{a}":
                return problem.tensor_dims(a)
    return ()
