"""The Python API (CONTRACT section 7): derive from text or a file, read the results.

>>> import indexcalc
>>> d = indexcalc.derive('''
... dims S, M, N
... input X[S,M], W[N,M]
... Y[s,n] = sum_m X[s,m] W[n,m]
... L = loss(Y)
... grad L wrt W
... ''')
>>> r = d.results[0]
>>> r.matrix
'dL_dY.T @ X'
>>> r.check.passed
True

A ``Derivation`` and each ``Result`` display as rendered math in Jupyter.  Everything here
reads the one engine run that ``derive`` made: the text, LaTeX and code are those the
command line prints for the same file.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

from . import derivation as _internal
from .problem import InputError, Location

__all__ = ["Check", "Derivation", "IndexWarning", "InputError", "Location", "Result", "Step",
           "derive", "load"]


class IndexWarning(UserWarning):
    """A likely mistake in a derivation file that is still valid (an implicit sum that
    covers more than it seems to); its text gives the place, the line and a hint."""


def derive(text: str, *, path: str = "<input>", check_with: tuple[str, ...] = (),
           notation: str | Mapping[str, str] = "") -> Derivation:
    """Derive every goal of a derivation file's ``text`` (CONTRACT section 1).

    ``path`` names the text in error messages.  ``check_with`` names frameworks ("torch",
    "jax") whose autograd each result is also compared with.  ``notation`` sets how the
    mathematics is written, over the file's ``notation:`` statements: ``"sums=limits,
    cases=split"`` or ``{"sums": "limits"}`` (docs/worked-solutions.md; a bad option raises
    ValueError).  Bad input raises ``InputError`` with its ``path``, ``line``, ``column``
    and ``message``.
    """
    from .syntax.idx import parse_text

    return _run(parse_text(text, path), check_with, notation)


def load(path: str | Path, *, check_with: tuple[str, ...] = (),
         notation: str | Mapping[str, str] = "") -> Derivation:
    """``derive`` the derivation file at ``path`` (UTF-8)."""
    from .syntax.idx import parse_file

    return _run(parse_file(str(path)), check_with, notation)


def _run(problem, check_with, notation: str | Mapping[str, str] = "") -> Derivation:
    from .pipeline import run

    from .check.frameworks import FRAMEWORKS

    if isinstance(notation, Mapping):
        notation = ", ".join(f"{option} = {value}" for option, value in notation.items())
    if notation:
        problem.notation = problem.notation.read(notation)  # NotationError is a ValueError

    if isinstance(check_with, str):
        check_with = (check_with,)
    unknown = [f for f in check_with if f not in FRAMEWORKS]
    if unknown:
        raise ValueError(f"check_with: no framework {unknown[0]!r} (choose from "
                         f"{', '.join(FRAMEWORKS)})")
    for warning in problem.warnings:  # stacklevel 3: the caller of derive() or load()
        warnings.warn(IndexWarning(warning.render()), stacklevel=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the check reports non-finite values
        return Derivation(run(problem, check_with=tuple(check_with)))


@dataclass(frozen=True)
class Step:
    """One step of a derivation: ``rule`` gave ``text`` (the whole equation, also as
    ``latex``)."""

    rule: str
    text: str
    latex: str


@dataclass(frozen=True)
class Check:
    """The numeric check of a result: ``status`` is "passed", "failed" or "not checked"."""

    #: The numeric check (finite differences or the complex step) passed.
    passed: bool
    status: str
    max_rel_error: float | None
    method: str
    detail: str
    #: framework name -> {"passed": bool, "status": str, "max_rel_error": float | None,
    #: "detail": str}, for the frameworks ``check_with`` named.
    frameworks: dict[str, dict[str, Any]]

    @property
    def all_passed(self) -> bool:
        """The numeric check and every framework comparison passed."""
        return self.passed and all(f["passed"] for f in self.frameworks.values())

    def __bool__(self) -> bool:
        return self.all_passed


class Result:
    """One derived result (a gradient, Jacobian or Hessian)."""

    def __init__(self, result: _internal.Result, data: dict[str, Any], name: str):
        self._result = result
        self._data = data
        #: "grad", "jacobian" or "hessian"
        self.kind: str = data["kind"]
        self.of: str = data["of"]
        self.wrt: str = data["wrt"]
        #: The code name of the result: ``dL_dW``, ``dY_dX``, ``d2f_dx2``.
        self.name: str = name
        #: The index form, ``dL_dW[i,j] = sum_s dL_dY[s,i] * X[s,j]``.
        self.index: str = data["index"]["text"]
        self.index_latex: str = data["index"]["latex"]
        matrix = data["matrix"]
        #: The matrix form in NumPy syntax (``dL_dY.T @ X``), or None where none was found.
        self.matrix: str | None = matrix["text"] if matrix else None
        self.matrix_latex: str | None = matrix["latex"] if matrix else None
        #: Defined tensors the matrix form names: (name, NumPy text) in evaluation order.
        self.where: tuple[tuple[str, str], ...] = tuple(
            (n, t) for n, t in (matrix["where"] if matrix else ()))
        self.steps: tuple[Step, ...] = tuple(Step(**s) for s in data["steps"])
        #: The arguments of ``function``, in order (CONTRACT section 2's ``numpy.args``).
        self.args: tuple[str, ...] = tuple(data["numpy"]["args"])
        #: The NumPy ``lambda`` that was checked, as source.
        self.source: str = data["numpy"]["source"]
        c = data["check"]
        self.check = Check(c["passed"], c["status"], c["max_rel_error"], c["method"],
                           c["detail"], dict(c.get("frameworks", {})))

    @cached_property
    def function(self) -> Callable[..., Any]:
        """The checked NumPy function: ``function(*arrays)`` with arrays named by ``args``."""
        from .check.numeric import compile_lambda

        return compile_lambda(self._result.numpy)

    def __repr__(self) -> str:
        return f"<Result {self.index} ({self.check.status})>"

    def _repr_markdown_(self) -> str:
        lines = [f"$${self.index_latex}$$"]
        if self.matrix_latex:
            lines.append(f"$${self.matrix_latex}$$")
        lines.append(f"Numeric check: **{self.check.status}**")
        return "\n\n".join(lines)

    def _repr_latex_(self) -> str:
        math = self.index_latex + (r" \\ " + self.matrix_latex if self.matrix_latex else "")
        return f"$\\begin{{gathered}}{math}\\end{{gathered}}$"


class Derivation:
    """Every result of one derivation file, with its documents and code."""

    def __init__(self, derivation: _internal.Derivation):
        from .emit.module import result_name
        from .render.document import to_json_data

        self._derivation = derivation
        self._data = to_json_data(derivation)
        self.title: str | None = derivation.title
        self.results: tuple[Result, ...] = tuple(
            Result(r, data, result_name(r))
            for r, data in zip(derivation.results, self._data["results"]))

    @property
    def passed(self) -> bool:
        """Did every result pass its numeric check and every framework comparison asked
        for, and does every claim hold? (The command line exits 0 exactly when this
        holds.)"""
        return all(r.check.all_passed for r in self.results) and self._derivation.claims_hold

    @property
    def claims(self) -> list[dict[str, Any]]:
        """The file's ``claim`` statements decided (CONTRACT section 5), as the JSON has
        them: ``line``, ``text``, ``holds``, ``reason``, ``derived``, ``counterexample``."""
        return [v.to_json() for v in self._derivation.claims]

    def check_against(self, document: str, *, path: str = "<document>") -> dict[str, Any]:
        """Check a worked solution (Markdown or LaTeX text) line by line in this file's
        context, as ``indexcalc check FILE --against DOC --format json`` (CONTRACT section
        6): ``links`` (each with ``line``, ``left``, ``right``, ``verdict``, ``reason``,
        ``counterexample``) and ``first_wrong_line``.  Context switches in the document
        (``<!-- indexcalc: other.idx -->``) are read relative to ``path``."""
        from .check.document import check_document, load_context

        report = check_document(document, path, self._derivation.problem, load_context(path))
        return report.to_json()

    def result(self, name: str) -> Result:
        """The result named ``name`` (``dL_dW``, ``d2f_dx2``), or the one result taken with
        respect to ``name`` (``W``)."""
        for r in self.results:
            if name == r.name:
                return r
        hits = [r for r in self.results if r.wrt == name]
        if len(hits) == 1:
            return hits[0]
        names = ", ".join(r.name for r in (hits or self.results))
        if hits:
            raise KeyError(f"several results are taken with respect to {name!r}: {names}")
        raise KeyError(f"no result {name!r}: {names}")

    def latex(self, *, fragment: bool = False, template: str | Path | None = None) -> str:
        """The LaTeX document, as ``indexcalc derive FILE --format latex``; ``fragment``:
        the body only, as ``--fragment``; ``template``: a course's folder of templates, as
        ``--template DIR``."""
        return self._render("latex", fragment, template)

    def markdown(self, *, template: str | Path | None = None) -> str:
        """The Markdown document, as ``--format markdown``."""
        return self._render("markdown", template=template)

    def text(self, *, template: str | Path | None = None) -> str:
        """The plain text, as ``--format text``."""
        return self._render("text", template=template)

    def to_json(self) -> str:
        """The JSON object of CONTRACT section 2, as ``--format json``."""
        return json.dumps(self._data, indent=2, allow_nan=False) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as Python data."""
        return json.loads(self.to_json())

    def emit(self, framework: str = "numpy") -> str:
        """The module source for "numpy", "torch" or "jax", as ``--emit`` (CONTRACT 4)."""
        from .emit.module import module_source

        return module_source(self._derivation, framework)

    def _render(self, fmt: str, fragment: bool = False,
                template: str | Path | None = None) -> str:
        from .render.document import render

        return render(self._derivation, fmt, fragment, template)

    def __repr__(self) -> str:
        names = ", ".join(f"{r.name} ({r.check.status})" for r in self.results)
        title = f" {self.title}" if self.title else ""
        return f"<Derivation{title}: {names}>"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_latex_(self) -> str:
        return "\n\n".join(r._repr_latex_() for r in self.results)
