"""One run from a parsed problem to checked results: derive, matrix form, code, check.

Every stage runs once per result, in order, inside ``limits.stage`` (so that a run past its
time or memory budget is reported with the stage and the goal); the renderers only read
what this returns.
"""
from __future__ import annotations

from dataclasses import replace

from . import limits, naming
from .check.frameworks import check_with as check_framework
from .check.numeric import check
from .derivation import Derivation, MatrixForm, Result
from .calculus.engine import Engine, IndexResult
from .emit.assemble import displayed_form, numpy_lambda
from .matrix.named import name_softmaxes
from .matrix.recognize import factor, to_matrix, transpose
from .problem import Definition, Problem
from .render.matrix import matrix_latex
from .render.printing import notation
from .terms import Deriv, Grad, Index, Tensor


def run(problem: Problem, check_with: tuple[str, ...] = ()) -> Derivation:
    with notation(problem.notation):  # every LaTeX string of the run, in the file's notation
        return _run(problem, check_with)


def _run(problem: Problem, check_with: tuple[str, ...]) -> Derivation:
    engine = Engine(problem)
    results = []
    taken = names_in_use(problem)  # the names a display may not give
    for goal in problem.goals:
        name = goal.describe()
        with limits.stage("the derivation", name):
            derived = engine.derive(goal)
        # what this result's code and check read: the file, and any gradients named in it
        context = with_intermediates(problem, derived.intermediates)
        out = output_indices(derived)
        with limits.stage("the matrix form", name):
            expr = to_matrix(derived.index, out)
            matrix = None
            if expr is not None:  # the display factors and names; the code keeps its order
                display, named = name_softmaxes(factor(expr), taken)
                layout = _layout(context, goal)
                if layout == "denominator":  # the rows are the input's entries
                    display = transpose(display)
                shown = displayed_form(context, display, named)
                matrix = MatrixForm(expr, shown.text, matrix_latex(display), shown.where,
                                    tuple((n, matrix_latex(node)) for n, node in named),
                                    layout)
        with limits.stage("the code generation", name):
            numpy = numpy_lambda(context, derived.index, out, expr, wrt=goal.wrt)
        with limits.stage("the numeric check", name):
            checked = check(goal, numpy, context, displayed=matrix)
        if check_with:
            with limits.stage("the framework check", name):
                checked = replace(checked, frameworks=tuple(
                    check_framework(fw, goal, numpy, context) for fw in check_with))
        results.append(Result(
            kind=goal.kind, of=goal.of, wrt=goal.wrt, target=derived.target,
            index=derived.index, blocks=derived.blocks, matrix=matrix, numpy=numpy,
            check=checked, context=context if derived.intermediates else None))
    derivation = Derivation(problem, tuple(results))
    if problem.claims:
        from .check.claims import decide_all
        with limits.stage("the claims", "every claim"):
            derivation = replace(derivation, claims=decide_all(derivation))
    return derivation


def _layout(problem: Problem, goal) -> str:
    """The layout of ``goal``'s matrix form: ``denominator`` (transposed) only for the
    Jacobian of a vector by a vector under ``notation: layout = denominator``."""
    if goal.kind != "jacobian" or problem.notation.layout == "numerator":
        return "numerator"
    ranks = (len(problem.tensor_dims(goal.of)), len(problem.tensor_dims(goal.wrt)))
    return problem.notation.layout if ranks == (1, 1) else "numerator"


def with_intermediates(problem: Problem, intermediates) -> Problem:
    """``problem`` with the gradients an index form names (``df_dy3``) as definitions, so
    that its code computes them and its check evaluates them like any defined tensor."""
    if not intermediates:
        return problem
    definitions = dict(problem.definitions)
    for name, indices, term in intermediates:
        definitions[name] = Definition(name, indices, term)
    return replace(problem, definitions=definitions, _reach={}, _mentions={})


def names_in_use(problem: Problem) -> set[str]:
    """Every name of the file (a name the display gives must be new)."""
    names = set(problem.dims) | set(problem.inputs) | set(problem.definitions)
    names |= set(problem.functions)
    for d in problem.definitions.values():
        names |= {naming.gradient(d.name, a) for a in d.loss_args}
    return names


def output_indices(derived: IndexResult | Result) -> tuple[Index, ...]:
    """Axes of the result array: ``of`` axes (jacobian) then ``wrt`` axes (twice: hessian);
    of a derived index form or of a finished result (both carry the ``target``)."""
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
