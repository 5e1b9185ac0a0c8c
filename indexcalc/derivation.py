"""What a derivation produces: results made of blocks of recorded steps.

The engine fills these in once; every renderer reads them and never re-derives, so the steps
shown and the result printed always come from the same engine run.
"""
from __future__ import annotations

from dataclasses import dataclass

from .problem import Problem
from .terms import Term


@dataclass(frozen=True)
class Step:
    """One textbook step: ``rule`` turned ``before`` into ``after``, because ``reason``."""

    rule: str
    before: Term
    after: Term
    reason: str


@dataclass(frozen=True)
class Block:
    """One chain of equalities, as the documents write them:

    ``target = start = steps[0].after = steps[1].after = ...``

    ``target`` is what is being computed (``Deriv(Y[s,n], W[i,j])`` or ``Grad('L','W',(i,j))``).
    ``title`` says in words what the block computes (for instance "Derivative of Y").
    """

    title: str
    target: Term
    start: Term
    steps: tuple[Step, ...]

    @property
    def result(self) -> Term:
        return self.steps[-1].after if self.steps else self.start


@dataclass(frozen=True)
class CheckResult:
    """The generated NumPy function and the displayed form against numeric derivatives.

    ``checked`` is False when nothing could be compared (values not finite, or all
    underflowed): such a result is not passed either, and ``detail`` says why."""

    passed: bool
    max_rel_error: float
    detail: str = ""
    checked: bool = True
    #: "complex step", "central differences of complex steps" or "central differences".
    method: str = ""
    #: ``--check-with``: the result against each framework's autograd
    #: (``check.frameworks.FrameworkCheck``), in the order asked for.
    frameworks: tuple = ()

    @property
    def all_passed(self) -> bool:
        """Passed the numeric check and every framework check."""
        return self.passed and all(f.passed for f in self.frameworks)

    @property
    def status(self) -> str:
        """"passed", "failed" or "not checked"."""
        return "passed" if self.passed else "failed" if self.checked else "not checked"


@dataclass(frozen=True)
class NumpyFunction:
    source: str  # "lambda dL_dY, X: dL_dY.T @ X"
    args: tuple[str, ...]


@dataclass(frozen=True)
class MatrixForm:
    """A result's matrix form: the IR value and what is printed from it.

    ``text`` is NumPy (CONTRACT section 2) naming the defined tensors in ``where`` (pairs of
    name and NumPy text, in an order they can be evaluated); ``latex`` has the same shapes.
    """

    expr: object  # a matrix.ir.Node
    text: str
    latex: str
    where: tuple[tuple[str, str], ...] = ()
    #: tensors the display names that the file does not define (an inline softmax as
    #: ``S``): (name, LaTeX of its value); their NumPy is in ``where``
    named: tuple[tuple[str, str], ...] = ()
    #: "numerator": entry [i, k] is d of[i] / d wrt[k], as the code returns it;
    #: "denominator" (``notation: layout = denominator``): the display is its transpose
    layout: str = "numerator"


@dataclass(frozen=True)
class Result:
    kind: str  # "grad" | "jacobian" | "hessian"
    of: str
    wrt: str
    target: Term  # left side of the final index form, e.g. Grad("L", "W", (i, j))
    index: Term  # the final index expression
    blocks: tuple[Block, ...]
    matrix: MatrixForm | None  # None when only einsum fits
    numpy: NumpyFunction
    check: CheckResult
    #: the problem the result's code and check read: the file's, plus the gradients its
    #: index form names as intermediates (``df_dy3``) as definitions; None: the file's
    context: Problem | None = None


@dataclass(frozen=True)
class Derivation:
    problem: Problem
    results: tuple[Result, ...]
    #: the verdicts on the file's ``claim`` statements (``check.claims.ClaimVerdict``), in
    #: file order
    claims: tuple = ()

    @property
    def claims_hold(self) -> bool:
        return all(v.holds for v in self.claims)

    @property
    def title(self) -> str | None:
        return self.problem.title
