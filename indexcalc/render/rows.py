"""Display rows that fit: a LaTeX right side too wide for the page is broken at + and -.

An ``align*`` row is one box: TeX cannot break it, and a row wider than about 5.7 m
(``\\maxdimen``) stops pdflatex with "Dimension too large".  Long sums of long names reach
that.  ``rows`` splits such a right side into rows of about ``ROW_WIDTH`` characters at the
additions outside any brace group; ``\\left( ... \\right)`` pairs become ``\\bigl( ...
\\bigr)``, which may open on one row and close on another.  A side that has no such place
to break and is still wider than TeX can measure is replaced by a note (the text and JSON
forms carry it whole).

Widths are estimated in characters of visible output: close enough to decide where to
break; the page is about 100 of them at 10 pt.
"""
from __future__ import annotations

import re

#: A right side wider than this (estimated characters) is broken into rows.
BREAK_WIDTH = 75
#: The width each row is filled to before it breaks.
ROW_WIDTH = 60
#: Beyond this a row cannot be typeset at all (TeX's largest dimension, with a margin).
TEX_LIMIT = 2500

#: Row separator inside ``align*``: the continuation is indented past the equals sign.
SEPARATOR = "\n  \\\\\n  &\\quad "

_INVISIBLE = re.compile(r"\\(?:mathrm|mathbf|boldsymbol|operatorname|left|right|bigl|bigr|"
                        r"frac|sqrt|text|quad|,|;|!)(?![A-Za-z])|[{}^_&]")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_DELIMITERS = (("\\left(", "\\bigl("), ("\\right)", "\\bigr)"), ("\\left[", "\\bigl["),
               ("\\right]", "\\bigr]"), ("\\left|", "\\bigl|"), ("\\right|", "\\bigr|"))
TOO_WIDE = ("\\text{(too wide to typeset: the text and JSON forms of this result give it "
            "whole)}")


def width(latex: str) -> int:
    """Estimated visible width of ``latex`` in characters (a command is one character)."""
    return len(_COMMAND.sub("x", _INVISIBLE.sub("", latex)))


def rows(latex: str) -> list[str]:
    """``latex`` as one row, or broken into several where it is too wide."""
    if width(latex) <= BREAK_WIDTH:
        return [latex]
    for wide, fixed in _DELIMITERS:
        latex = latex.replace(wide, fixed)
    pieces = _split_at_additions(latex)
    out: list[str] = []
    for piece in pieces:
        if out and width(out[-1]) + width(piece) <= ROW_WIDTH:
            out[-1] += piece
        else:
            out.append(piece)
    out = [row.strip() for row in out]
    return [TOO_WIDE] if any(width(row) > TEX_LIMIT for row in out) else out


def join(latex: str) -> str:
    """``rows(latex)`` as the rows of an ``align*`` environment."""
    return SEPARATOR.join(rows(latex))


def _split_at_additions(latex: str) -> list[str]:
    """``latex`` cut before each `` + `` and `` - `` that is outside every brace group."""
    pieces, depth, start, k = [], 0, 0, 0
    while k < len(latex):
        char = latex[k]
        if char == "\\":
            k += 2  # an escaped character (\{, \}) or the first letter of a command
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0 and latex.startswith((" + ", " - "), k) and k > start:
            pieces.append(latex[start:k])
            start = k
        k += 1
    pieces.append(latex[start:])
    return pieces
