"""Display rows that fit: a LaTeX right side too wide for the page is broken at + and -.

An ``align*`` row is one box: TeX cannot break it, and a row wider than about 5.7 m
(``\\maxdimen``) stops pdflatex with "Dimension too large".  Long sums of long names reach
that.  ``rows`` splits such a right side into rows of about ``ROW_WIDTH`` characters at the
additions outside any brace group; a ``\\left( ... \\right)`` pair that then opens on one
row and closes on another becomes ``\\Bigl( ... \\Bigr)`` (``\\biggl`` around a sum or a
fraction).  A side that has no such place
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
#: A bracket no wider than this is never broken inside: ``(X_{id} - X_{jd})^{2}``.
SHORT_GROUP = 30
#: Beyond this a row cannot be typeset at all (TeX's largest dimension, with a margin).
TEX_LIMIT = 2500

#: Row separator inside ``align*``: the continuation is indented past the equals sign.
SEPARATOR = "\n  \\\\*\n  &\\quad "  # \\* : a step's rows stay on one page

_INVISIBLE = re.compile(r"\\(?:mathrm|mathbf|boldsymbol|operatorname|left|right|bigl|bigr|Bigl|Bigr|"
                        r"biggl|biggr|"
                        r"frac|sqrt|text|quad|,|;|!)(?![A-Za-z])|[{}^_&]")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_LEFT_RIGHT = re.compile(r"\\(left|right)(?=[()\[\]|.])")
_ROW_MARK = "\x00"
TOO_WIDE = ("\\text{(too wide to typeset: the text and JSON forms of this result give it "
            "whole)}")


def width(latex: str) -> int:
    """Estimated visible width of ``latex`` in characters (a command is one character, but
    ``\\nabla_{W} L`` with its brackets prints about three wider and a sum sign two)."""
    return (len(_COMMAND.sub("x", _INVISIBLE.sub("", latex))) + 3 * latex.count("\\nabla")
            + 2 * latex.count("\\sum"))


def rows(latex: str) -> list[str]:
    """``latex`` as one row, or broken into several where it is too wide."""
    if width(latex) <= BREAK_WIDTH:
        return [latex]
    pieces = _split_at_additions(latex)
    out: list[str] = []
    for piece in pieces:
        if out and width(out[-1]) + width(piece) <= ROW_WIDTH:
            out[-1] += piece
        else:
            out.append(piece)
    out = _sized([row.strip() for row in out])
    return [TOO_WIDE] if any(width(row) > TEX_LIMIT for row in out) else out


def _sized(rows_: list[str]) -> list[str]:
    """The rows with each ``\\left(``/``\\right)`` pair that opens on one row and closes on
    another as ``\\Bigl(``/``\\Bigr)`` (a \\left must close in its own row); the pairs
    inside a row stay, sized to what they hold."""
    if len(rows_) == 1:
        return rows_
    text = _ROW_MARK.join(rows_)
    pairs, opened = [], []
    for m in _LEFT_RIGHT.finditer(text):
        if m.group(1) == "left":
            opened.append(m)
        elif opened:
            pairs.append((opened.pop(), m))
    spanning = [m for a, b in pairs if _ROW_MARK in text[a.end():b.start()] for m in (a, b)]
    spanning += opened  # a \\left never closed: cannot stay a \\left
    sizes = {}
    for a, b in pairs:  # as tall as a sum or a fraction inside needs
        inside = text[a.end():b.start()]
        tall = "\\sum" in inside or "\\frac" in inside
        sizes[a.start()] = sizes[b.start()] = "bigg" if tall else "Big"
    for m in sorted(spanning, key=lambda m: m.start(), reverse=True):
        size = "\\" + sizes.get(m.start(), "bigg") + ("l" if m.group(1) == "left" else "r")
        text = text[:m.start()] + size + text[m.end():]
    return text.split(_ROW_MARK)


#: A rule name longer than this, or one that would make its row wider than LINE_WIDTH,
#: goes in a narrow box of several lines beside the row.
RULE_WIDTH = 40
LINE_WIDTH = 95


def rule_fits(latex: str, rule: str) -> bool:
    """Does the rule name ``rule`` fit on one line beside the last row of ``latex``?"""
    return len(rule) <= RULE_WIDTH and width(rows(latex)[-1]) + len(rule) <= LINE_WIDTH


def join(latex: str) -> str:
    """``rows(latex)`` as the rows of an ``align*`` environment."""
    return SEPARATOR.join(rows(latex))


_OPEN = ("(", "[")
_CLOSE = (")", "]")


def _split_at_additions(latex: str) -> list[str]:
    """``latex`` cut before `` + `` and `` - `` outside every brace group: first at the
    additions outside brackets, then, in a piece still too wide, at those one bracket
    deeper, and so on; never inside a short bracket
    (``(X_{id} - X_{jd})^{2}`` stays together)."""
    candidates = _candidates(latex)
    cuts: set[int] = set()
    for level in sorted({depth for _, depth in candidates}):
        bounds = [0, *sorted(cuts), len(latex)]
        for start, end in zip(bounds, bounds[1:]):
            if level and width(latex[start:end]) <= ROW_WIDTH:
                continue
            cuts.update(k for k, depth in candidates if depth == level and start < k < end)
    bounds = [0, *sorted(cuts), len(latex)]
    return [latex[start:end] for start, end in zip(bounds, bounds[1:])]


def _candidates(latex: str) -> list[tuple[int, int]]:
    """Where ``latex`` may break: the position of each `` + `` / `` - `` outside braces, with
    its bracket depth; inside a short bracket, none."""
    out, braces, opened, k = [], 0, [], 0
    while k < len(latex):
        if latex.startswith(_CLOSE, k) and opened and braces == opened[-1][1]:
            opened.pop()
        elif latex.startswith(_OPEN, k):
            opened.append((k, braces))
        char = latex[k]
        if char == "\\":
            k += 2  # an escaped character (\{, \}) or the first letter of a command
            continue
        if char == "{":
            braces += 1
        elif char == "}":
            braces -= 1
        elif braces == 0 and latex.startswith((" + ", " - "), k) and k > 0:
            out.append((k, len(opened), opened[-1][0] if opened else None))
        k += 1
    return [(k, depth) for k, depth, start in out
            if start is None or width(_group(latex, start)) > SHORT_GROUP]


def _group(latex: str, start: int) -> str:
    """The bracket group that opens at ``start`` (to its matching close, or the end)."""
    depth, k = 0, start
    while k < len(latex):
        if latex.startswith(_OPEN, k):
            depth += 1
        elif latex.startswith(_CLOSE, k):
            depth -= 1
            if depth == 0:
                return latex[start:k + 1]
        k += 1
    return latex[start:]
