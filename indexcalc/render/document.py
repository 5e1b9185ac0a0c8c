"""Render a :class:`~indexcalc.derivation.Derivation` as LaTeX, Markdown, plain text or JSON.

``render(derivation, fmt)`` is the only entry point.  It reads what one engine run recorded
and never re-derives anything, so the steps shown and the results printed always agree.

* Every term becomes a string here, in Python, through ``printing.to_text`` / ``to_latex``
  (and the matrix expression's own ``text()`` / ``latex()``); the jinja2 templates in the
  top-level ``templates/`` folder (installed as the package ``indexcalc.templates``) only lay
  those strings out.
* JSON is CONTRACT section 2 exactly, built as plain dicts and written by ``json.dumps``.
* Free text that reaches LaTeX (title, block titles, rule names, check details) goes through
  ``latex_escape``, so a title such as ``\\input{/etc/passwd}`` prints as those characters.
* Output is deterministic: no dates, no set or dict iteration whose order could change.
* A result whose numeric check failed reads "check FAILED" in every format.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
from collections import Counter
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .. import naming
from ..derivation import Block, CheckResult, Derivation, Result
from ..problem import TemplateError
from . import rows
from .cases import split as split_cases
from .printing import (current_notation, gradient_latex, index_latex, index_subscript,
                       inline_latex, name_latex, notation, shown_indices, to_latex, to_text)
from ..terms import ZERO, Deriv, Grad, Tensor

__all__ = ["FORMATS", "render", "TemplateError", "latex_escape", "markdown_escape", "to_json_data"]

FORMATS = ("latex", "markdown", "text", "json")

DEFAULT_TITLE = "Derivation"

_KIND_WORDS = {"grad": "Gradient", "jacobian": "Jacobian", "hessian": "Hessian"}

# A step's right side longer than this is not padded to line up the rule names (text format).
_RULE_COLUMN_LIMIT = 72

# Characters of typewriter text that fit across an A4 page with 2 cm margins (LaTeX format).
_CODE_WIDTH = 88


def render(derivation: Derivation, fmt: str, fragment: bool = False,
           templates: str | Path | None = None) -> str:
    """``derivation`` as a document in ``fmt``: one of ``latex markdown text json``;
    ``fragment`` (LaTeX): the body only, to ``\\input`` in a course's own document;
    ``templates``: a course's folder of templates that replace or extend the built-in ones
    (a mistake in them raises TemplateError).  Mathematics is written in the problem's
    notation (``notation:`` statements)."""
    with notation(derivation.problem.notation):
        if fmt == "json":
            return json.dumps(to_json_data(derivation), indent=2, allow_nan=False) + "\n"
        if fmt not in _TEMPLATES:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return _fill(fmt, templates, doc=_document_view(derivation), fragment=fragment)


# --- JSON (CONTRACT section 2) ------------------------------------------------------------

def to_json_data(derivation: Derivation) -> dict:
    """The JSON object of CONTRACT section 2 as plain Python data (its LaTeX strings in
    the problem's notation)."""
    with notation(derivation.problem.notation):
        return _json_data(derivation)


def _json_data(derivation: Derivation) -> dict:
    data = {
        "title": derivation.title,
        "results": [_result_json(result) for result in derivation.results],
    }
    if derivation.problem.claims:  # only then, like the warnings below
        for result, out in zip(derivation.results, data["results"]):
            out["claims"] = [v.to_json() for v in derivation.claims
                             if (v.claim.goal.kind, v.claim.goal.of, v.claim.goal.wrt)
                             == (result.kind, result.of, result.wrt)]
    if derivation.problem.warnings:  # only then: the contract's shape stays exact otherwise
        data["warnings"] = [_warning_json(w) for w in derivation.problem.warnings]
    return data


def _warning_json(warning) -> dict:
    """A likely mistake the file reader found (``problem.InputWarning``), with its place."""
    loc = warning.location
    return {"message": warning.message, "hint": warning.hint,
            "line": loc.line if loc else None, "column": loc.column if loc else None}


def _result_json(result: Result) -> dict:
    matrix = None
    if result.matrix is not None:
        matrix = {"text": result.matrix.text, "latex": result.matrix.latex,
                  "where": [[name, text] for name, text in result.matrix.where]}
        if result.matrix.named:  # only then: the contract's shape stays exact otherwise
            matrix["named"] = [[name, latex] for name, latex in result.matrix.named]
    return {
        "kind": result.kind,
        "of": result.of,
        "wrt": result.wrt,
        "index": {
            "text": f"{to_text(result.target)} = {to_text(result.index)}",
            "latex": f"{to_latex(result.target)} = {to_latex(result.index)}",
        },
        "matrix": matrix,
        "numpy": {"source": result.numpy.source, "args": list(result.numpy.args)},
        "steps": [
            {
                "rule": step.rule,
                "text": f"{to_text(block.target)} = {to_text(step.after)}",
                "latex": f"{to_latex(block.target)} = {to_latex(step.after)}",
            }
            for block in result.blocks
            for step in block.steps
        ],
        "check": {
            "passed": bool(result.check.passed),
            "max_rel_error": _finite_or_none(result.check.max_rel_error),
            "status": result.check.status,
            "method": result.check.method,
            "detail": result.check.detail,
            **({"frameworks": {
                f.framework: {"passed": f.passed, "status": f.status,
                              "max_rel_error": _finite_or_none(f.max_rel_error),
                              "detail": f.detail}
                for f in result.check.frameworks}} if result.check.frameworks else {}),
        },
    }


def _finite_or_none(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- escaping -----------------------------------------------------------------------------

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    # Not dangerous, but the default OT1 font encoding prints these as other glyphs.
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}

# TeX accent commands for the combining marks that NFD splits accented Latin letters into.
_ACCENTS = {
    "\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=",
    "\u0306": "u", "\u0307": ".", "\u0308": '"', "\u030a": "r", "\u030b": "H",
    "\u030c": "v", "\u0327": "c", "\u0328": "k",
}

_GREEK_LETTERS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lamda mu nu xi pi rho sigma "
    "tau upsilon phi chi psi omega"
).split()
_GREEK_CAPITALS = {"GAMMA", "DELTA", "THETA", "LAMDA", "XI", "PI", "SIGMA", "UPSILON", "PHI",
                   "PSI", "OMEGA"}


def latex_escape(text: str) -> str:
    """Free text as LaTeX that prints exactly those characters and runs no command.

    The ten TeX specials become literal symbols (``\\`` -> ``\\textbackslash{}``), line
    breaks become spaces (a blank line would end the paragraph), and characters outside
    ASCII become accents (``é`` -> ``\\'{e}``), Greek letters (``λ`` -> ``$\\lambda$``) or,
    for anything else, their code point (``U+2603``) so that pdflatex never stops on them.
    """
    out = []
    for char in text:
        if char in _LATEX_SPECIALS:
            out.append(_LATEX_SPECIALS[char])
        elif char in "\r\n\t\f\v":
            out.append(" ")
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(_latex_non_ascii(char))
    return "".join(out)


def _latex_non_ascii(char: str) -> str:
    decomposed = unicodedata.normalize("NFD", char)
    base, marks = decomposed[0], decomposed[1:]
    if base.isascii() and base.isalpha() and marks and all(m in _ACCENTS for m in marks):
        text = base
        for mark in marks:
            text = f"\\{_ACCENTS[mark]}{{{text}}}"
        return text
    name = unicodedata.name(char, "")
    for prefix, capital in (("GREEK SMALL LETTER ", False), ("GREEK CAPITAL LETTER ", True)):
        letter = name[len(prefix):] if name.startswith(prefix) else ""
        if letter.lower() in _GREEK_LETTERS and (not capital or letter in _GREEK_CAPITALS):
            command = letter.lower().replace("lamda", "lambda")
            return f"$\\{command.capitalize() if capital else command}$"
    if char.isprintable() and not char.isspace():
        return f"\\texttt{{U+{ord(char):04X}}}"
    return " "


def markdown_escape(text: str) -> str:
    """Free text for one Markdown line: no line breaks and no raw HTML tags."""
    return " ".join(text.split()).replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _printable(text: str) -> str:
    """``text`` with control characters (which a terminal would obey) shown as U+FFFD.  The
    parser refuses them in a title; this guards a Problem built some other way."""
    return "".join("\ufffd" if unicodedata.category(char) == "Cc" else char for char in text)


# --- the view the templates lay out -------------------------------------------------------

class Forms(NamedTuple):
    """One piece of mathematics in the two notations."""

    text: str
    latex: str


class Equation(NamedTuple):
    """``lhs = rhs``, kept apart so that templates can align on the equals sign."""

    lhs: Forms
    rhs: Forms

    @property
    def text(self) -> str:
        return f"{self.lhs.text} = {self.rhs.text}"

    @property
    def latex(self) -> str:
        return f"{self.lhs.latex} = {self.rhs.latex}"


@dataclass(frozen=True)
class LineView:
    """``= rhs`` on one line of a block; ``rule`` is None for a block without steps.
    ``lhs`` is set where the line has its own left side (a block recalling several results
    derived earlier), instead of continuing the block's target."""

    rule: str | None
    rhs: Forms
    lhs: Forms | None = None
    #: the rule for LaTeX text (escaped; may hold $math$), "" to escape ``rule``
    rule_latex: str = ""

    def __post_init__(self):
        if self.rule and not self.rule_latex:
            object.__setattr__(self, "rule_latex", latex_escape(self.rule))


@dataclass(frozen=True)
class BlockView:
    title: str
    target: Forms
    lines: tuple[LineView, ...]
    text_width: int  # the width the text template pads right sides to before the rule
    title_latex: str = ""  # the title for LaTeX text, names in math: "Derivative of $Y$"
    #: the equation number of the block's last line ("3"), when a later block refers to it
    tag: str = ""
    #: the number of the earlier block this one repeats (its steps are not shown again)
    repeats: str = ""
    #: the lines as LaTeX shows them: a step whose LaTeX is the line before's (``sum_i -a``
    #: and ``-sum_i a`` print alike) joins that line, its rule added to the line's
    latex_lines: tuple[LineView, ...] = ()


@dataclass(frozen=True)
class CheckView:
    passed: bool
    status: str  # "passed" | "failed" | "not checked"
    verdict: str  # "check passed" | "check FAILED" | "not checked"
    mark: str  # what a heading adds: "" | "check FAILED" | "not checked"
    method: str  # "complex-step derivatives", ...: what the result was compared with
    error_text: str  # "1.67e-10"
    error_latex: str  # "1.67 \times 10^{-10}"
    detail: str
    #: ``--check-with``: one per framework, in the order asked for
    frameworks: tuple[FrameworkView, ...] = ()


@dataclass(frozen=True)
class FrameworkView:
    name: str  # "torch"
    status: str  # "passed" | "failed" | "not checked"
    verdict: str  # "agrees with torch autograd" ...
    error_text: str
    error_latex: str
    detail: str


@dataclass(frozen=True)
class ResultView:
    number: int
    statement: str  # "Gradient of L with respect to W"
    statement_latex: str  # "Gradient of $L$ with respect to $W$", safe for LaTeX
    blocks: tuple[BlockView, ...]
    index: Equation  # dL_dW[i,j] = sum_s dL_dY[s,i] * X[s,j]
    matrix: Equation | None  # dL_dW = dL_dY.T @ X; None when NumPy uses einsum
    matrix_where: tuple[str, ...]  # "Y = np.exp(Z) / ...": what matrix.text names
    #: LaTeX of what the matrix form names that the file does not define: "\mathbf{S} = ..."
    matrix_named: tuple[str, ...]
    numpy_source: str
    numpy_lines: tuple[str, ...]  # the source broken inside brackets to fit a printed page
    numpy_args: tuple[str, ...]
    numpy_verbatim: bool  # False if the source cannot sit in a verbatim environment
    check: CheckView
    claims: tuple["ClaimView", ...] = ()


@dataclass(frozen=True)
class ClaimView:
    """A ``claim`` about this result and its verdict, as the documents print it."""

    line: int | None
    text: str  # dL_dW = dL_dY.T @ X
    holds: bool
    reason: str
    derived: str
    counterexample: str  # "at entry [0, 2] the claim gives 1.5, the derived result -0.25"


@dataclass(frozen=True)
class DocumentView:
    title: str
    results: tuple[ResultView, ...]


@dataclass(frozen=True)
class _Document:
    """What every result's view reads from the whole document."""

    problem: object  # the Problem
    names: frozenset[str]  # the file's tensors, shown as mathematics in headings
    #: the file's one assumption (text, LaTeX), which a step names where it uses it
    assumption: tuple[str, str] | None


def _document_view(derivation: Derivation) -> DocumentView:
    problem = derivation.problem
    file_indices = _file_index_names(problem)
    numbering = _numbering(derivation)
    assumption = None  # the one assumption a step may name (of several, which is unsaid)
    if len(problem.assumptions) == 1:
        a = problem.assumptions[0]
        assumption = (f"{to_text(a.lhs)} = {to_text(a.rhs)}",
                      f"{to_latex(a.lhs)} = {to_latex(a.rhs)}")
    document = _Document(problem, frozenset(problem.inputs) | frozenset(problem.definitions),
                         assumption)
    results = []
    for number, result in enumerate(derivation.results, 1):
        with shown_indices(readable_indices(result, file_indices)):
            results.append(_result_view(number, result, document,
                                        numbering.of_result(number - 1),
                                        _claim_views(derivation, result)))
    results = tuple(results)
    return DocumentView(title=_printable(_one_line(derivation.title or "")) or DEFAULT_TITLE,
                        results=results)


#: Letters a fresh index is shown as, in the order a teacher reaches for them.
_READABLE_INDICES = "ijklmnpqrtuvabcdefgh"
#: How the engine names a fresh index: a letter and a number (``t2``, ``k3``).
_ENGINE_INDEX = re.compile(r"[a-z][A-Za-z]*[0-9]+")  # naming.fresh_variant: stem + number


def _file_index_names(problem) -> frozenset[str]:
    """The index names the file writes (the reader may add its own, ``k2`` for the
    arg max of ``max_k``: those are not in the definition's source line)."""
    names: set[str] = set()
    for definition in problem.definitions.values():
        used = {i.name for i in definition.indices}
        if definition.body is not None:
            used |= definition.body.all_index_names()
        line = definition.location.text if definition.location is not None else None
        names.update(n for n in used
                     if line is None or re.search(rf"(?<![A-Za-z0-9_]){n}(?![A-Za-z0-9_])", line))
    return frozenset(names)


def _result_terms(result: Result):
    yield result.target
    yield result.index
    for block in result.blocks:
        yield block.target
        yield block.start
        for step in block.steps:
            yield step.after


def readable_indices(result: Result, file_indices: frozenset[str] = frozenset()) -> dict:
    """The engine's fresh indices of ``result`` (``t2``, not in the file) and the names its
    LaTeX shows them by: an unused letter of ``i j k l m n p ...``, else a primed one."""
    used: set[str] = set()
    for term in _result_terms(result):
        used.update(term.all_index_names())
    fresh = sorted(n for n in used if _ENGINE_INDEX.fullmatch(n) and n not in file_indices)
    taken = used - set(fresh)
    mapping = {}
    for name in fresh:
        letter = next((c for c in _READABLE_INDICES if c not in taken), None)
        if letter is None:  # every letter in use: t2 -> t', t''
            primes = 1
            while name[0] + "'" * primes in taken:
                primes += 1
            letter = name[0] + "'" * primes
        mapping[name] = letter
        taken.add(letter)
    return mapping


def _tensor_rank(problem, name: str) -> int:
    try:
        return len(problem.tensor_dims(name))
    except (KeyError, AttributeError):
        return 0


def _depends(problem, result: Result) -> bool:
    """Does ``result.of`` depend on ``result.wrt`` through the definitions?"""
    try:
        return result.wrt in problem.reaches(result.of)
    except (KeyError, AttributeError):
        return True


def _claim_views(derivation: Derivation, result: Result) -> tuple[ClaimView, ...]:
    out = []
    for v in derivation.claims:
        if (v.claim.goal.kind, v.claim.goal.of, v.claim.goal.wrt) != (result.kind, result.of,
                                                                        result.wrt):
            continue
        c = v.counterexample
        out.append(ClaimView(
            v.claim.location.line if v.claim.location else None, v.to_json()["text"], v.holds,
            v.reason, v.derived,
            f"at entry {list(c.entry)} the claim gives {c.claimed:.6g}, the derived result "
            f"{c.derived:.6g}" if c is not None and c.entry is not None else ""))
    return tuple(out)


def _result_view(number: int, result: Result, document: _Document, numbering: _Numbering,
                 claims: tuple[ClaimView, ...] = ()) -> ResultView:
    problem = document.problem
    of_rank, wrt_rank = _tensor_rank(problem, result.of), _tensor_rank(problem, result.wrt)
    titles = Counter(block.title for b, block in enumerate(result.blocks)
                     if b not in numbering.repeats)
    kind = _KIND_WORDS.get(result.kind, result.kind.capitalize())
    source = result.numpy.source
    statement = f"{kind} of {result.of} with respect to {result.wrt}"
    statement_latex = (f"{latex_escape(kind)} of {_name_math(result.of)} "
                       f"with respect to {_name_math(result.wrt)}")
    if result.index == ZERO:  # a zero result is a result: say so, and why when we know
        statement += ": zero"
        statement_latex += ": zero"
        if not _depends(problem, result):
            statement += f", since {result.of} does not depend on {result.wrt}"
            statement_latex += (f", since {_name_math(result.of)} does not depend on "
                                f"{_name_math(result.wrt)}")
    return ResultView(
        number=number,
        statement=statement,
        statement_latex=statement_latex,
        blocks=_opening(result, of_rank, wrt_rank, _recall_runs(tuple(
            _block_view(block, document, numbering.tags.get(b, ""), numbering.repeats.get(b, ""),
                        titles[block.title] > 1,
                        {k: t for (bb, k), t in numbering.steps.items() if bb == b})
            for b, block in enumerate(result.blocks)))),
        index=Equation(_forms(result.target), _forms(result.index)),
        matrix=_matrix_forms(result, of_rank, wrt_rank),
        matrix_where=tuple(f"{name} = {text}" for name, text in
                           (result.matrix.where if result.matrix is not None else ())),
        matrix_named=tuple(f"{_bold_name(name, 2)} = {latex}" for name, latex in
                           (result.matrix.named if result.matrix is not None else ())),
        numpy_source=source,
        numpy_lines=wrap_code(source, _CODE_WIDTH),
        numpy_args=tuple(result.numpy.args),
        numpy_verbatim="\\end{verbatim}" not in source,
        check=_check_view(result.check),
        claims=claims,
    )


def _step_line(step, assumption: tuple[str, str] | None, refers: str = "") -> LineView:
    """One step's row; the file's one assumption is named where it is used, and a
    derivative put in from an earlier block by that block's number (``refers``)."""
    if refers:
        return LineView(f"as derived in ({refers})", _forms(step.after))
    if step.rule == "assumption" and assumption is not None:
        text, latex = assumption
        return LineView(f"assumption {text}", _forms(step.after), rule_latex=(
            f"assumption ${latex}$"))
    return LineView(step.rule, _forms(step.after))


def _block_view(block: Block, document: _Document, tag: str = "", repeats: str = "",
                qualify: bool = False, refers: dict[int, str] | None = None) -> BlockView:
    """``tag``: this block's equation number, when a later one refers to it; ``repeats``:
    the number of the earlier block it repeats; ``qualify``: the title is not the only one of
    its kind in the result, so a derivative says what it is taken with respect to
    ("Derivative of Xh with respect to v"); ``refers``: steps (by position) that put in an
    earlier block's derivative, and that block's number."""
    if repeats:  # derived before: its result, and where to find the steps
        lines = (LineView(f"as derived in ({repeats})", _forms(_block_end(block))),)
    elif block.steps:
        refers = refers or {}
        lines = tuple(_step_line(step, document.assumption, refers.get(k, ""))
                      for k, step in enumerate(block.steps))
        if current_notation().steps == "grouped" and len(lines) > 2:
            lines = (lines[0], LineView(", ".join(line.rule for line in lines[1:]),
                                        lines[-1].rhs, rule_latex=", ".join(
                                            line.rule_latex for line in lines[1:])))
    else:
        lines = (LineView(None, _forms(block.start)),)
    if current_notation().cases == "split" and block.steps and not repeats:
        cases = split_cases(_block_end(block), block.target.free)
        if cases is not None:
            lines += (LineView("cases", _cases_forms(cases)),)
    widest = max(len(line.rhs.text) for line in lines)
    title, title_latex = block.title, _title_latex(block.title, document.names)
    wrt = block.target.wrt if isinstance(block.target, Deriv) else None
    if qualify and isinstance(wrt, Tensor) and " with respect to " not in title:
        title += f" with respect to {wrt.name}"
        title_latex += f" with respect to {_name_math(wrt.name)}"
    if block.title == "Chain rule":  # which chain rule: there are as many as definitions
        title = f"Chain rule for {to_text(block.target)}"
        title_latex = f"Chain rule for ${inline_latex(block.target)}$"
    return BlockView(title=title, target=_forms(block.target), lines=lines,
                     text_width=min(widest, _RULE_COLUMN_LIMIT), title_latex=title_latex,
                     tag=tag, repeats=repeats, latex_lines=_distinct_latex(lines))


def _distinct_latex(lines: tuple[LineView, ...]) -> tuple[LineView, ...]:
    out: list[LineView] = []
    for line in lines:
        if out and line.lhs is None and line.rhs.latex == out[-1].rhs.latex:
            rules = ", ".join(r for r in (out[-1].rule, line.rule) if r)
            latex = ", ".join(r for r in (out[-1].rule_latex, line.rule_latex) if r)
            out[-1] = dataclasses.replace(out[-1], rule=rules or None, rule_latex=latex)
        else:
            out.append(line)
    return tuple(out)


def _opening(result: Result, of_rank: int, wrt_rank: int,
             blocks: tuple[BlockView, ...]) -> tuple[BlockView, ...]:
    """With ``notation: opening = bracket``, the first block of a gradient opens as the
    documents do: ``\\left[\\frac{\\partial L}{\\partial \\mathbf{W}}\\right]_{ij} =
    \\frac{\\partial L}{\\partial W_{ij}} = ...``."""
    if (current_notation().opening != "bracket" or current_notation().derivative == "nabla"
            or not blocks or not wrt_rank
            or not isinstance(result.target, Grad) or blocks[0].target.text != to_text(result.target)):
        return blocks
    whole = _whole_derivative_latex(result, of_rank, wrt_rank)
    entry = f"\\left[{whole}\\right]_{{{index_subscript(result.target.indices)}}}"
    first = blocks[0]
    target = Forms(first.target.text, f"{entry} = {first.target.latex}")
    return (dataclasses.replace(first, target=target),) + blocks[1:]


#: The title of a block that recalls sub-derivations of an earlier section.
RECALL_TITLE = "Derived earlier"


def _recall_runs(blocks: tuple[BlockView, ...]) -> tuple[BlockView, ...]:
    """Consecutive blocks that repeat earlier ones as one block, a line for each with its
    own left side and the number to find its steps by."""
    out: list[BlockView] = []
    for block in blocks:
        if block.repeats and out and out[-1].title == RECALL_TITLE:
            last = out[-1]
            line = LineView(block.lines[0].rule, block.lines[0].rhs, block.target)
            out[-1] = dataclasses.replace(last, lines=last.lines + (line,),
                                          latex_lines=last.latex_lines + (line,),
                                          text_width=max(last.text_width, block.text_width))
        elif block.repeats:
            line = LineView(block.lines[0].rule, block.lines[0].rhs, block.target)
            out.append(dataclasses.replace(block, title=RECALL_TITLE, title_latex=RECALL_TITLE,
                                           lines=(line,), latex_lines=(line,)))
        else:
            out.append(block)
    return tuple(out)


def _cases_forms(cases) -> Forms:
    """``{ p[i] * (1 - p[i]) if i = k; -p[i] * p[k] if i != k }`` and its ``cases``."""
    a, b = cases.a, cases.b
    text = (f"{{ {to_text(cases.equal)} if {a.name} = {b.name}; "
            f"{to_text(cases.unequal)} if {a.name} != {b.name} }}")
    la, lb = index_latex(a), index_latex(b)
    latex = (f"\\begin{{cases}} {to_latex(cases.equal)} & {la} = {lb} \\\\ "
             f"{to_latex(cases.unequal)} & {la} \\ne {lb} \\end{{cases}}")
    return Forms(text, latex)


def _block_end(block: Block):
    return block.steps[-1].after if block.steps else block.start


def _title_latex(title: str, names: frozenset[str]) -> str:
    """A block title for LaTeX text: the tensor names in it as mathematics."""
    words = title.split(" ")
    return " ".join(_name_math(w) if w in names else latex_escape(w) for w in words)


def _block_key(block: Block) -> tuple:
    """Blocks with equal keys are the same sub-derivation, derived once and referred to."""
    return (to_text(block.target), to_text(block.start),
            tuple((step.rule, to_text(step.after)) for step in block.steps))


@dataclass(frozen=True)
class _Numbering:
    """The cross-references of a document, keyed by (result, block) positions: blocks that
    repeat an earlier one, the numbers of the blocks referred to, and steps that put in a
    derivative an earlier block derived (keyed by (result, block, step))."""

    repeats: dict
    tags: dict
    steps: dict

    def of_result(self, r: int) -> "_Numbering":
        """The references of result ``r``, keyed by block (and step) position alone."""
        return _Numbering({b: t for (rr, b), t in self.repeats.items() if rr == r},
                          {b: t for (rr, b), t in self.tags.items() if rr == r},
                          {(b, k): t for (rr, b, k), t in self.steps.items() if rr == r})


#: The engine's rule that puts in a local derivative derived in an earlier block.
KNOWN_DERIVATIVE = "derivative derived above"


def _numbering(derivation: Derivation) -> _Numbering:
    first: dict[tuple, tuple[int, int]] = {}
    derived: dict[tuple[str, str], tuple[int, int]] = {}  # (Y, W) -> the block of dY/dW
    repeats: dict[tuple[int, int], tuple[int, int]] = {}
    steps: dict[tuple[int, int, int], tuple[int, int]] = {}
    for r, result in enumerate(derivation.results):
        for b, block in enumerate(result.blocks):
            if len(block.steps) < 1:
                continue
            for k, step in enumerate(block.steps):
                if step.rule == KNOWN_DERIVATIVE:
                    used = [d for d in step.before.walk() if isinstance(d, Deriv)
                            and isinstance(d.expr, Tensor) and isinstance(d.wrt, Tensor)
                            and (d.expr.name, d.wrt.name) in derived]
                    if used:
                        steps[(r, b, k)] = derived[(used[0].expr.name, used[0].wrt.name)]
            key = _block_key(block)
            if key in first:
                repeats[(r, b)] = first[key]
            else:
                first[key] = (r, b)
            target = block.target
            if (isinstance(target, Deriv) and isinstance(target.expr, Tensor)
                    and isinstance(target.wrt, Tensor)):
                derived.setdefault((target.expr.name, target.wrt.name), (r, b))
    referred = sorted(set(repeats.values()) | set(steps.values()))
    tags = {place: str(n) for n, place in enumerate(referred, 1)}
    return _Numbering({place: tags[earlier] for place, earlier in repeats.items()}, tags,
                      {place: tags[earlier] for place, earlier in steps.items()})


def _forms(term) -> Forms:
    return Forms(to_text(term), to_latex(term))


_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _name_math(name: str) -> str:
    """A tensor name inline in LaTeX text: ``$W$``, ``$\\lambda$``; odd names as text."""
    if _IDENTIFIER.fullmatch(name):
        return f"${name_latex(name)}$"
    return latex_escape(name)


def _bold_name(name: str, rank: int) -> str:
    if not _IDENTIFIER.fullmatch(name):
        return f"\\text{{{latex_escape(name)}}}"
    return name_latex(name, bold=bool(rank))


def _matrix_forms(result: Result, of_rank: int, wrt_rank: int) -> Equation | None:
    """``dL_dW = dL_dY.T @ X`` and ``\\frac{\\partial L}{\\partial \\mathbf{W}} = ...``."""
    if result.matrix is None:
        return None
    lhs_text = naming.result(result.kind, result.of, result.wrt)
    return Equation(Forms(lhs_text, _whole_derivative_latex(result, of_rank, wrt_rank)),
                    Forms(result.matrix.text, result.matrix.latex))


def _whole_derivative_latex(result: Result, of_rank: int, wrt_rank: int) -> str:
    """The result as a whole: ``\\frac{\\partial L}{\\partial \\mathbf{W}}``, a Hessian
    ``\\frac{\\partial^2 f}{\\partial \\mathbf{w} \\, \\partial \\mathbf{w}}``."""
    of, wrt = _bold_name(result.of, of_rank), _bold_name(result.wrt, wrt_rank)
    nabla = current_notation().derivative == "nabla"
    if result.kind == "hessian":
        if nabla:
            return f"\\nabla^2_{{{wrt}}} {of}"
        return f"\\frac{{\\partial^2 {of}}}{{\\partial {wrt} \\, \\partial {wrt}}}"
    if result.kind == "grad" and _IDENTIFIER.fullmatch(result.of) and \
            _IDENTIFIER.fullmatch(result.wrt):
        return gradient_latex(result.of, result.wrt, rank=wrt_rank)
    return f"\\frac{{\\partial {of}}}{{\\partial {wrt}}}"


#: What each method of the check compares a result with, in the documents' words.
_METHODS = {
    "complex step": "complex-step derivatives",
    "central differences of complex steps": "central differences of complex-step derivatives",
    "central differences": "central finite differences",
}


def _check_view(check: CheckResult) -> CheckView:
    passed = bool(check.passed)
    verdict = {"passed": "check passed", "failed": "check FAILED"}.get(check.status,
                                                                      check.status)
    return CheckView(
        passed=passed,
        status=check.status,
        verdict=verdict,
        mark="" if passed and all(f.passed for f in check.frameworks) else
        verdict if not passed else "framework check FAILED",
        method=_METHODS.get(check.method, "numeric derivatives"),
        error_text=_error_text(check.max_rel_error),
        error_latex=_error_latex(check.max_rel_error),
        detail=_one_line(check.detail or ""),
        frameworks=tuple(_framework_view(f) for f in check.frameworks),
    )


def _framework_view(f) -> FrameworkView:
    verdict = {"passed": f"agrees with {f.name_of} autograd",
               "failed": f"DIFFERS from {f.name_of} autograd"}.get(
        f.status, f"not compared with {f.name_of} autograd")
    return FrameworkView(f.framework, f.status, verdict, _error_text(f.max_rel_error),
                         _error_latex(f.max_rel_error), _one_line(f.detail))


#: Binary operators a line of code may break before (inside brackets).
_OPERATOR_STARTS = ("+", "-", "*", "/", "@", "&", "|")


def wrap_code(source: str, width: int) -> tuple[str, ...]:
    """Python ``source`` in lines of at most ``width`` characters where possible.

    Lines break after a ``, `` or before a binary operator (`` + - * / @ & ``) inside
    parentheses and outside string literals, so the lines are still valid Python (a
    bracket continues a line); continuation lines are indented by four spaces.
    """
    breaks, brackets, quote = [], [], ""
    for k, char in enumerate(source):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            brackets.append(char)
        elif char in ")]}":
            brackets = brackets[:-1]
        elif char == "," and brackets[-1:] == ["("] and source[k + 1:k + 2] == " ":
            breaks.append(k + 2)  # the next line starts after ", "; never inside [:, None]
        elif (char == " " and "(" in brackets and source[k + 1:k + 2] in _OPERATOR_STARTS
              and source[k + 2:k + 3] == " " and source[k - 1:k] not in ("", ",", "(")):
            breaks.append(k + 1)  # the next line starts with the operator
    lines, start, last_fit, indent = [], 0, None, ""
    for point in breaks + [len(source)]:
        if len(indent) + point - start > width and last_fit is not None:
            lines.append(indent + source[start:last_fit].rstrip())
            start, indent = last_fit, "    "
        last_fit = point
    lines.append(indent + source[start:])
    return tuple(lines)


def _error_text(value) -> str:
    number = _finite_or_none(value)
    return f"{number:.2e}" if number is not None else "not finite"


def _error_latex(value) -> str:
    number = _finite_or_none(value)
    if number is None:
        return r"\text{not finite}"
    if number == 0:
        return "0"
    mantissa, exponent = f"{number:.2e}".split("e")
    return f"{mantissa} \\times 10^{{{int(exponent)}}}"


# --- templates ----------------------------------------------------------------------------

_TEMPLATES = {
    "latex": "derivation.tex.j2",
    "markdown": "derivation.md.j2",
    "text": "derivation.txt.j2",
}


def _template_source(name: str) -> str:
    """A template's text from the installed package ``indexcalc.templates``.

    In a source checkout that was never installed, that package does not exist (the folder
    is mapped into it at install time), so the top-level ``templates/`` folder is read.
    """
    try:
        root = importlib.resources.files("indexcalc.templates")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2] / "templates"  # indexcalc/render/ -> top
    return (root / name).read_text(encoding="utf-8")


#: The prefix by which a course's template names a built-in one, to extend it:
#: ``((* extends "indexcalc/derivation.tex.j2" *))``.
BUILTIN_PREFIX = "indexcalc/"


def _builtin_template(name: str) -> str | None:
    name = name[len(BUILTIN_PREFIX):] if name.startswith(BUILTIN_PREFIX) else name
    if name not in _TEMPLATES.values():
        return None
    return _template_source(name)


def _environment(fmt: str, folder: str | Path | None = None) -> jinja2.Environment:
    """The jinja2 environment of ``fmt``'s template: the built-in templates, or first those
    of a course's ``folder`` (sandboxed: a template lays out strings, it runs nothing)."""
    loader: jinja2.BaseLoader = jinja2.FunctionLoader(_builtin_template)
    if folder is not None:
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(folder)), loader])
    common = dict(
        loader=loader,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    if fmt == "latex":
        # Delimiters that never occur in TeX, so braces and % in the template stay TeX.
        env = SandboxedEnvironment(
            block_start_string="((*", block_end_string="*))",
            variable_start_string="(((", variable_end_string=")))",
            comment_start_string="((=", comment_end_string="=))",
            **common,
        )
    else:
        env = SandboxedEnvironment(**common)
    env.filters["tex"] = latex_escape  # free text inside LaTeX or Markdown math
    env.filters["md"] = markdown_escape
    env.filters["rows"] = rows.join  # a right side of an align* row, broken if too wide
    env.tests["fitting"] = lambda line: rows.rule_fits(line.rhs.latex, line.rule or "")
    return env


def _fill(fmt: str, folder, **context) -> str:
    """The template of ``fmt`` filled in; a course template's mistakes as TemplateError."""
    if folder is None:
        return _environment(fmt).get_template(_TEMPLATES[fmt]).render(**context)
    try:
        return _environment(fmt, folder).get_template(_TEMPLATES[fmt]).render(**context)
    except jinja2.TemplateSyntaxError as error:
        where = f"{error.filename or error.name}:{error.lineno}"
        raise TemplateError(f"{where}: {error.message}") from None
    except jinja2.TemplateError as error:
        raise TemplateError(f"in the templates of {folder}: {error}") from None
