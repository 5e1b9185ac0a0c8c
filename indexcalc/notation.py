"""How a course writes its mathematics: the ``notation:`` options of a derivation file.

A file may carry ``notation:`` statements (``notation: sums = limits, cases = split``) and
the command line may add ``--notation sums=limits``; the command line wins.  The options
change how results are *written*, never what is derived or checked, with one exception
that the check follows: ``layout`` transposes the matrix form of a Jacobian, and the check
compares the transposed form it displays.

==============  =========================================  ===================================
option          values (the first is the default)          what changes
==============  =========================================  ===================================
``sums``        ``plain`` ``limits`` ``range``             ``\\sum_{s}``, ``\\sum_{s}^{S}``,
                                                           ``\\sum_{s=1}^{S}``
``derivative``  ``partial`` ``nabla``                      ``\\frac{\\partial L}{\\partial
                                                           \\mathbf{W}}`` or ``\\nabla_{
                                                           \\mathbf{W}} L``
``matrices``    ``bold`` ``plain``                         ``\\mathbf{W}``, ``\\boldsymbol{
                                                           \\gamma}`` or ``W``
``digits``      ``superscript`` ``subscript`` ``plain``    ``W1`` as ``W^{(1)}``, ``W_{1}``,
                                                           ``W1``
``layout``      ``numerator`` ``denominator``              a Jacobian's rows: the output's
                                                           entries, or the input's
``steps``       ``all`` ``grouped``                        every rule on its own row, or a
                                                           sub-derivation in two rows
``cases``       ``delta`` ``split``                        a Kronecker delta between free
                                                           indices kept, or the ``i = k`` and
                                                           ``i \\ne k`` cases written out
``opening``     ``plain`` ``bracket``                      the first line of a result is
                                                           ``\\frac{\\partial L}{\\partial
                                                           W_{ij}}`` or ``\\left[\\frac{
                                                           \\partial L}{\\partial \\mathbf{W}}
                                                           \\right]_{ij} = ...``
``style``       ``indexcalc`` ``documents``                a preset: ``documents`` is the
                                                           seed documents' notation (sums
                                                           with limits, the bracket opening)
==============  =========================================  ===================================
"""
from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["Notation", "OPTIONS", "STYLES", "NotationError", "DEFAULT"]

#: Each option's values, the default first.
OPTIONS: dict[str, tuple[str, ...]] = {
    "sums": ("plain", "limits", "range"),
    "derivative": ("partial", "nabla"),
    "matrices": ("bold", "plain"),
    "digits": ("superscript", "subscript", "plain"),
    "layout": ("numerator", "denominator"),
    "steps": ("all", "grouped"),
    "cases": ("delta", "split"),
    "opening": ("plain", "bracket"),
}

#: Presets: ``style = documents`` sets these options (options stated after it win).
STYLES: dict[str, dict[str, str]] = {
    "indexcalc": {},
    "documents": {"sums": "limits", "opening": "bracket"},
}


class NotationError(ValueError):
    """An unknown option or value; ``column`` is 0-based into the text that was read."""

    def __init__(self, message: str, column: int = 0, hint: str | None = None):
        super().__init__(message)
        self.column = column
        self.hint = hint


@dataclass(frozen=True)
class Notation:
    sums: str = "plain"
    derivative: str = "partial"
    matrices: str = "bold"
    digits: str = "superscript"
    layout: str = "numerator"
    steps: str = "all"
    cases: str = "delta"
    opening: str = "plain"

    def set(self, option: str, value: str) -> "Notation":
        """This notation with ``option = value`` (``style = documents`` sets its preset)."""
        if option == "style":
            if value not in STYLES:
                raise NotationError(f"unknown style {value!r}",
                                    hint=f"a style is one of {', '.join(STYLES)}")
            return replace(self, **STYLES[value])
        if option not in OPTIONS:
            raise NotationError(f"unknown notation option {option!r}",
                                hint=f"the options are {', '.join(list(OPTIONS) + ['style'])}")
        if value not in OPTIONS[option]:
            raise NotationError(f"{option} cannot be {value!r}",
                                hint=f"{option} is one of {', '.join(OPTIONS[option])}")
        return replace(self, **{option: value})

    def read(self, text: str) -> "Notation":
        """This notation with the options of ``sums = limits, cases = split`` (or ``=``
        without spaces, as on the command line).  Raises NotationError with the column."""
        notation, column = self, 0
        for part in text.split(","):
            start = column + len(part) - len(part.lstrip())
            column += len(part) + 1
            if not part.strip():
                raise NotationError("expected an option such as  sums = limits", start,
                                    hint="options are separated by commas")
            if "=" not in part:
                raise NotationError(f"expected '=' after {part.strip()!r}",
                                    start + len(part.strip()),
                                    hint="write  option = value, as in  sums = limits")
            left, right = part.split("=", 1)
            option, value = left.strip(), right.strip()
            value_at = column - 1 - len(right.lstrip())  # the part ends at column - 1
            try:
                notation = notation.set(option, value)
            except NotationError as error:
                known = option in OPTIONS or option == "style"
                raise NotationError(str(error), value_at if known else start,
                                    error.hint) from None
        return notation


DEFAULT = Notation()
