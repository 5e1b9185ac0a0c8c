"""The reports of ``indexcalc check``: claims, and the links of a worked solution.

``text`` is for the terminal, ``json`` for programs (CONTRACT sections 5 and 6: the claims,
``links`` and ``first_wrong_line``), and ``markdown`` / ``latex`` give the document itself
back with every display followed by the verdicts of its links (the annotated rendering a
teacher hands back), or, without a document, the claims as a short report.
"""
from __future__ import annotations

import json

import numpy as np

from ..check.claims import ClaimVerdict
from ..check.document import DOES_NOT_HOLD, HOLDS, NOT_UNDERSTOOD, DocumentReport, Link
from .document import latex_escape, markdown_escape

FORMATS = ("text", "json", "markdown", "latex")
_MARKS = {HOLDS: "holds", DOES_NOT_HOLD: "DOES NOT HOLD", NOT_UNDERSTOOD: "not understood"}
_SYMBOLS = {HOLDS: "\u2713", DOES_NOT_HOLD: "\u2717", NOT_UNDERSTOOD: "?"}


def render(fmt: str, claims: tuple[ClaimVerdict, ...], document: DocumentReport | None,
           source: str | None, file: str) -> str:
    if fmt == "json":
        return json.dumps(to_json(claims, document), indent=2, allow_nan=False) + "\n"
    if fmt in ("markdown", "latex") and document is not None and source is not None:
        return annotated(fmt, source, document)
    if fmt == "markdown":
        return _claims_markdown(claims, file)
    if fmt == "latex":
        return _claims_latex(claims, file)
    return text(claims, document, file)


def to_json(claims, document: DocumentReport | None) -> dict:
    out: dict = {"claims": [v.to_json() for v in claims]}
    if document is not None:
        out.update(document.to_json())
    return out


# --- text ------------------------------------------------------------------------------------

def text(claims, document: DocumentReport | None, file: str) -> str:
    lines: list[str] = []
    if claims:
        false = sum(1 for v in claims if not v.holds)
        lines.append(f"{file}: {len(claims)} claim{'s' if len(claims) != 1 else ''}, "
                     f"{len(claims) - false} hold{'s' if len(claims) - false == 1 else ''}, "
                     f"{false} do{'es' if false == 1 else ''} not")
        for v in claims:
            lines.extend(_claim_text(v))
        lines.append("")
    elif document is None:
        lines.append(f"{file}: no claims")
    if document is not None:
        lines.append(f"{document.path}: {len(document.links)} links: "
                     f"{document.count(HOLDS)} hold, {document.count(DOES_NOT_HOLD)} do not "
                     f"hold, {document.count(NOT_UNDERSTOOD)} not understood; first wrong "
                     f"line: {document.first_wrong_line or 'none'}")
        for link in document.links:
            lines.extend(_link_text(link))
    return "\n".join(lines).rstrip() + "\n"


def _claim_text(v: ClaimVerdict) -> list[str]:
    line = v.claim.location.line if v.claim.location else "?"
    head = v.to_json()["text"]
    out = [f"  line {line}: claim {head}",
           f"    {'holds' if v.holds else 'DOES NOT HOLD'}: {v.reason}"]
    if not v.holds:
        out.append(f"    derived: {v.derived}")
    if v.counterexample is not None:
        c = v.counterexample
        if c.entry is None:
            out.append("    counterexample: the shapes differ for")
        else:
            out.append(f"    counterexample: at entry {list(c.entry)} the claim gives "
                       f"{c.claimed:.6g}, the derived result {c.derived:.6g}, for")
        out.extend(f"      {name} = {_array(value)}" for name, value in c.inputs.items())
    return out


def _link_text(link: Link) -> list[str]:
    relation = "<=>" if link.relation == "iff" else "="
    out = [f"  line {link.line}: {_MARKS[link.verdict]}",
           f"    {link.left or link.left_latex}  {relation}  {link.right or link.right_latex}"]
    if link.reason and link.verdict != HOLDS:
        out.append(f"    {link.reason}")
    if link.counterexample is not None:
        c = link.counterexample
        out.append("    for " + "; ".join(f"{name} = {_array(value)}"
                                          for name, value in c.inputs.items()))
    return out


def _array(value) -> str:
    return np.array2string(np.asarray(value), precision=4, separator=", ",
                           max_line_width=10**6).replace("\n", "")


# --- the annotated document -------------------------------------------------------------------

def annotated(fmt: str, source: str, document: DocumentReport) -> str:
    """The document with the verdicts of each display's links after it."""
    by_display: dict[tuple[int, int], list[Link]] = {}
    for link in document.links:
        by_display.setdefault(link.display, []).append(link)
    out = []
    at = 0
    for (start, end), links in sorted(by_display.items()):
        out.append(source[at:end])
        out.append(_annotation_markdown(links) if fmt == "markdown" else _annotation_latex(links))
        at = end
    out.append(source[at:])
    summary = (f"indexcalc check: {len(document.links)} links, {document.count(HOLDS)} hold, "
               f"{document.count(DOES_NOT_HOLD)} do not hold, "
               f"{document.count(NOT_UNDERSTOOD)} not understood; first wrong line: "
               f"{document.first_wrong_line or 'none'}")
    if fmt == "markdown":
        return f"> **{markdown_escape(summary)}**\n\n" + "".join(out)
    return f"% {summary}\n" + "".join(out)


def _annotation_markdown(links: list[Link]) -> str:
    rows = []
    for link in links:
        relation = "<=>" if link.relation == "iff" else "="
        said = f"`{link.left or '?'}  {relation}  {link.right or '?'}`"
        reason = f": {markdown_escape(link.reason)}" if link.verdict != HOLDS else ""
        rows.append(f"> {_SYMBOLS[link.verdict]} line {link.line}, {_MARKS[link.verdict]}"
                    f"{reason} ({said})")
    return "\n\n" + "\n>\n".join(rows) + "\n"


def _annotation_latex(links: list[Link]) -> str:
    rows = []
    for link in links:
        reason = f": {latex_escape(link.reason)}" if link.verdict != HOLDS else ""
        mark = {HOLDS: r"\textsf{holds}", DOES_NOT_HOLD: r"\textbf{does not hold}",
                NOT_UNDERSTOOD: r"\textit{not understood}"}[link.verdict]
        rows.append(f"line {link.line}: {mark}{reason}")
    return ("\n\\par\\noindent{\\footnotesize indexcalc: " + "\\\\\n".join(rows) + "}\\par\n")


def _claims_markdown(claims, file: str) -> str:
    lines = [f"# Claims of {markdown_escape(file)}", ""]
    for v in claims:
        lines.append(f"- line {v.claim.location.line if v.claim.location else '?'}: "
                     f"`{v.to_json()['text']}`: **{'holds' if v.holds else 'does not hold'}**"
                     f" ({markdown_escape(v.reason)})"
                     + ("" if v.holds else f"; derived `{v.derived}`"))
    if not claims:
        lines.append("No claims.")
    return "\n".join(lines) + "\n"


def _claims_latex(claims, file: str) -> str:
    items = []
    for v in claims:
        items.append(f"\\item line {v.claim.location.line if v.claim.location else '?'}: "
                     f"\\texttt{{{latex_escape(v.to_json()['text'])}}}: "
                     f"\\textbf{{{'holds' if v.holds else 'does not hold'}}} "
                     f"({latex_escape(v.reason)})"
                     + ("" if v.holds else f"; derived \\texttt{{{latex_escape(v.derived)}}}"))
    body = "\\begin{itemize}\n" + "\n".join(items) + "\n\\end{itemize}\n" if items else "No claims.\n"
    return ("\\documentclass{article}\n\\begin{document}\n"
            f"\\section*{{Claims of \\texttt{{{latex_escape(file)}}}}}\n{body}\\end{{document}}\n")
