"""The parser: derivation-file text (CONTRACT section 1) in, a :class:`Problem` out.

Every bad input raises :class:`InputError` with the line and column of the offending token;
nothing else escapes.  Nothing is ever passed to ``eval``/``exec``/``sympify``: a
hand-written tokenizer feeds hand-written recursive-descent parsers.

One line is one statement and goes through these steps:

1. ``_tokenize`` splits the code part of the line (its ``#`` comment removed) into tokens.
2. ``_FileParser`` reads the keyword statements (``dims``, ``input``, ``grad`` ...) itself and
   hands each expression to ``_ExprParser``, which builds a small *raw AST* (the ``R*``
   classes).  The raw AST still names indices by their spelling and keeps one node per
   product (``a * b / c``) and per addition, so that the Einstein step can find "the
   smallest product term holding all occurrences" of an index.
3. ``_IndexAnalysis`` works on the raw AST of one statement:

   * resolve tensor, dim and function names and give each index the dim of the tensor axis
     it sits on (``X[s,m]`` gives ``s`` the dim ``S``); ``delta(i,j)`` passes dims along;
   * check explicit sums (``sum_m`` must use ``m``);
   * place implicit (Einstein) sums: for each index that is neither on the left side nor
     bound by an enclosing explicit sum, take the lowest common ancestor of its
     occurrences.  A product node (or a single tensor entry, as in the trace ``A[m,m]``)
     gets the sum.  At an addition the occurrences are split by term and each term is
     treated on its own, as the convention sums over each product term separately.  An
     occurrence left alone is an error ("used once and never summed").
   * build immutable terms with the smart constructors of :mod:`indexcalc.terms`, wrapping
     the nodes chosen above in sums.

Limits keep hostile or generated input from hanging the tool or exhausting memory: a file of
at most MAX_FILE_BYTES, MAX_LINES lines of at most MAX_LINE_LENGTH characters, expressions
nested at most MAX_NESTING levels, chains of at most MAX_DEFINITION_DEPTH definitions.  Names
(``[A-Za-z][A-Za-z0-9_]*``, no ``__``) reach LaTeX and the generated Python code: the names
the code generator gives to upstream gradients (``dL_dY``) and derivatives of declared
functions (``h_prime``) are refused; ``np`` and Python keywords are accepted and spelled
``np_``, ``lambda_`` in generated code (``naming.code_name``).

Two small extensions of the language: ``h'(x)`` (a derivative of a declared function,
``Func("h", x, order=1)``, as the printer writes it) and broadcasting in additions
(``Y[s,n] = sum_m X[s,m] W[n,m] + b[n]``: a term may lack some left-side indices, so every
term's free indices must be a subset of the left side's, and all together must cover them).
"""
from __future__ import annotations

import os
import re
import stat
import sys
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator, TypeVar

from .. import naming
from ..check import assumptions
from ..functions import CONSTANTS, LANGUAGE_FUNCTIONS
from . import constants, numpy_text
from ..problem import (
    Assumption,
    Claim,
    Definition,
    DimFormula,
    Goal,
    InputError,
    InputWarning,
    InputTensor,
    Location,
    Problem,
)
from ..terms import (
    COMPARISONS,
    MINUS_ONE,
    ONE,
    ZERO,
    Add,
    Affine,
    Arg,
    Bracket,
    Delta,
    Grad,
    IndexValue,
    MATRIX_FUNCTIONS,
    MatrixFunc,
    Constant,
    DimSize,
    Func,
    Index,
    Mul,
    Num,
    Pow,
    Sum,
    Tensor,
    Term,
    add,
    base_exp,
    make_sum,
    mul,
    neg,
    power,
    rename_indices,
    replace,
    sub,
    unshadow,
)

from ..notation import NotationError

__all__ = ["parse_text", "parse_file", "KEYWORDS", "RESERVED_NAMES"]

#: Words of the language; none of them can name a dim, tensor or function.
KEYWORDS = (
    "sum", "delta", "loss", "wrt", "grad", "jacobian", "hessian",
    "input", "dims", "function", "assume", "title", "where", "and", "claim",
)
RESERVED_NAMES = (frozenset(KEYWORDS) | frozenset(LANGUAGE_FUNCTIONS) | frozenset(CONSTANTS)
                  | frozenset(MATRIX_FUNCTIONS))
GOAL_KINDS = ("grad", "jacobian", "hessian")

#: Deepest nesting of parentheses, unary minus, powers and sums in one expression.
MAX_NESTING = 50
#: Largest file, longest file and longest line accepted: far beyond any derivation, and
#: small enough that parsing and deriving stay quick (the limits refuse input politely
#: instead of letting it hang or exhaust memory).
MAX_FILE_BYTES = 1_000_000
MAX_LINES = 10_000
MAX_LINE_LENGTH = 10_000
#: Longest chain of definitions built on each other (``F2 = F1 * x``, ``F3 = F2 * x`` ...);
#: the engine follows such chains recursively.
MAX_DEFINITION_DEPTH = 100
#: Longest name (of a tensor, dim, function or index): names reach LaTeX, where a name of
#: thousands of characters is wider than TeX can measure.
MAX_NAME_LENGTH = 64
#: Longest number literal and largest decimal exponent accepted (keeps Fraction cheap).
MAX_NUMBER_LENGTH = 40
MAX_DECIMAL_EXPONENT = 300
#: Largest exact number (in bits) that a constant power like ``2^100`` may produce.
MAX_CONSTANT_BITS = 100_000

_INDEX_NAME = re.compile(r"[a-z][A-Za-z0-9]*\Z")
#: Names of dims, inputs, functions and definitions: they reach LaTeX and Python code.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_NAME_HINT = ("a name is a letter followed by letters, digits and underscores (never two in a "
              "row): X, W1, lam, x_0")
_INDEX_HINT = "an index is a lower-case letter, optionally followed by letters or digits: k, i2"
_DEFINITION_HINT = "a definition looks like  Y[s,n] = sum_m X[s,m] * W[n,m] + b[n]"
_STATEMENT_WORDS = "dims, input, function, assume, grad, jacobian, hessian, claim or title"


# --- source lines and locations -----------------------------------------------------------

@dataclass(frozen=True)
class _Line:
    """One source line; makes locations and errors that point into it."""

    path: str
    number: int
    text: str  # the whole line, comment included, without its line break

    @property
    def code(self) -> str:
        """The line without its comment."""
        return self.text.split("#", 1)[0]

    def at(self, column: int) -> Location:
        return Location(self.path, self.number, column, self.text)

    def error(self, message: str, column: int, hint: str | None = None) -> InputError:
        return InputError(message, self.at(column), hint=hint)


# --- tokens ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # "NUM", "NAME", "SUM" (the "sum_" of a sum), "END", or the punctuation itself
    text: str
    column: int  # 1-based

    def describe(self) -> str:
        return "end of line" if self.kind == "END" else f"'{self.text}'"


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<NUM>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<NAME>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<starstar>\*\*)
  | (?P<compare><=|>=|==|!=|<|>)
  | (?P<punct>[-+*/^()\[\]{},=:'])
    """,
    re.VERBOSE,
)

#: Hints for characters people type from habit or from LaTeX.
_CHARACTER_HINTS = {
    "\u2211": "write a sum as sum_m ... or sum_{s,c} ...",
    "\u00b7": "write a product as a * b or a b",
    "\u00d7": "write a product as a * b or a b",
    "\u03b4": "write the Kronecker delta as delta(i,j)",
    "\\": "LaTeX is not read here: write sum_m, delta(i,j), exp(...)",
    "_": "indices go in brackets: X[s,m]",
    ".": "a number looks like 2, 0.5 or 1e-5",
}


def _tokenize(line: _Line) -> list[Token]:
    """The tokens of a line's code, ending with an END token just after the last one."""
    code = line.code
    tokens: list[Token] = []
    pos = 0
    while pos < len(code):
        match = _TOKEN.match(code, pos)
        column = pos + 1
        if match is None:
            char = code[pos]
            raise line.error(f"unexpected character {char!r}", column, _CHARACTER_HINTS.get(char))
        kind, text = match.lastgroup, match.group()
        if kind == "NAME" and len(text.removeprefix("sum_")) > MAX_NAME_LENGTH:
            raise line.error(f"a name has at most {MAX_NAME_LENGTH} characters "
                             f"(this one has {len(text.removeprefix('sum_'))})", column,
                             hint="names reach LaTeX and code: use a short one (W1, gamma)")
        if kind == "NAME" and text.startswith(_REDUCTIONS):
            tokens.extend(_sum_tokens(line, text, column))
        elif kind == "NUM":
            if code[match.end():match.end() + 1] == ".":  # 1.0.5, 2..3: not two numbers
                raise line.error("a number has at most one decimal point", match.end() + 1,
                                 _CHARACTER_HINTS["."])
            _check_number(line, text, column)
            tokens.append(Token("NUM", text, column))
        elif kind == "NAME":
            tokens.append(Token("NAME", text, column))
        elif kind in ("punct", "compare"):
            tokens.append(Token(text, text, column))
        elif kind == "starstar":
            raise line.error("'**' is not an operator: write powers with ^, as in x^2", column)
        pos = match.end()
    tokens.append(Token("END", "", len(code.rstrip()) + 1))
    return tokens


#: Prefixes of the reductions over an index: ``sum_m``, ``max_d``, ``min_d``.
_REDUCTIONS = ("sum_", "max_", "min_")


def _sum_tokens(line: _Line, text: str, column: int) -> list[Token]:
    """``sum_m`` becomes SUM and NAME ``m`` (``max_d``: SUM with text ``max_``); ``sum_``
    must be followed right away by ``{``."""
    prefix = text[:4]
    rest = text[len(prefix):]
    after = column - 1 + len(text)  # 0-based position just after the name
    if not rest and not line.code.startswith("{", after):
        raise line.error(
            f"expected an index or '{{' right after {prefix}", column + len(prefix),
            hint="write sum_m ... or sum_{s,c} ..." if prefix == "sum_" else
            f"write {prefix}d ...",
        )
    tokens = [Token("SUM", prefix, column)]
    if rest:
        tokens.append(Token("NAME", rest, column + len("sum_")))
    return tokens


def _check_number(line: _Line, text: str, column: int) -> None:
    """Refuse literals whose exact value would be absurdly large to compute."""
    if len(text) > MAX_NUMBER_LENGTH:
        raise line.error(f"number too long (more than {MAX_NUMBER_LENGTH} characters)", column)
    _, _, exponent = text.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_DECIMAL_EXPONENT:
        raise line.error(f"exponent of {text} is out of range (at most {MAX_DECIMAL_EXPONENT})", column)


class _Cursor:
    """Reads the tokens of one line; makes errors that name what was expected."""

    def __init__(self, line: _Line, tokens: list[Token]):
        self.line = line
        self.tokens = tokens
        self.pos = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        if token.kind != "END":
            self.pos += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token.kind == kind and (text is None or token.text == text)

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        return self.next() if self.at(kind, text) else None

    def expect(self, kind: str, what: str, text: str | None = None, hint: str | None = None) -> Token:
        if self.at(kind, text):
            return self.next()
        raise self.unexpected(what, hint)

    def unexpected(self, what: str, hint: str | None = None) -> InputError:
        token = self.peek()
        return self.line.error(f"expected {what}, found {token.describe()}", token.column, hint)

    def error(self, message: str, token: Token, hint: str | None = None) -> InputError:
        return self.line.error(message, token.column, hint)


_Item = TypeVar("_Item")


def _comma_separated(cursor: _Cursor, item: Callable[[], _Item]) -> list[_Item]:
    items = [item()]
    while cursor.accept(","):
        items.append(item())
    return items


# --- the raw AST ----------------------------------------------------------------------------
# Nodes compare and hash by identity (eq=False): the Einstein step keys its choices by node.

@dataclass(frozen=True, eq=False)
class RIndex:
    """An index as written, for instance the ``m`` of ``X[s,m]``."""

    name: str
    column: int


class RNode:
    column: int  # where the node's text starts

    def children(self) -> tuple["RNode", ...]:
        return ()

    def index_uses(self) -> tuple[RIndex, ...]:
        """Indices this node itself carries (a tensor entry's or a delta's)."""
        return ()


@dataclass(frozen=True, eq=False)
class RNum(RNode):
    value: Fraction
    column: int


@dataclass(frozen=True, eq=False)
class RName(RNode):
    """A bare name: a scalar input or definition, or a dim used as a number."""

    name: str
    column: int


@dataclass(frozen=True, eq=False)
class RAffine:
    """An index expression at a position: ``u+k``, ``2*u-1``, or a constant index ``0``."""

    terms: tuple[tuple[int, RIndex], ...]
    offset: int
    column: int


def _indices_at(positions) -> tuple[RIndex, ...]:
    out: list[RIndex] = []
    for p in positions:
        out.extend((p,) if isinstance(p, RIndex) else (i for _, i in p.terms))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class RTensor(RNode):
    name: str
    indices: tuple[RIndex | RAffine, ...]
    column: int

    def index_uses(self):
        return _indices_at(self.indices)


@dataclass(frozen=True, eq=False)
class RDelta(RNode):
    a: RIndex | RAffine
    b: RIndex | RAffine
    column: int

    def index_uses(self):
        return _indices_at((self.a, self.b))


@dataclass(frozen=True, eq=False)
class RMatrixFunc(RNode):
    """``inv(A)[i,j]``, ``det(A)``, ``logdet(A)``: ``matrix`` is the name inside."""

    name: str
    matrix: str
    indices: tuple[RIndex, ...]
    column: int
    matrix_column: int

    def index_uses(self):
        return self.indices


@dataclass(frozen=True, eq=False)
class RIndexValue(RNode):
    """An index (or index expression) used as a number, on a side of a comparison:
    the ``u`` and ``t`` of ``[u <= t]``."""

    index: RIndex
    column: int

    def index_uses(self):
        return (self.index,)


@dataclass(frozen=True, eq=False)
class RFunc(RNode):
    name: str
    order: int  # number of primes: h'(x) has order 1
    arg: RNode
    column: int

    def children(self):
        return (self.arg,)


@dataclass(frozen=True, eq=False)
class RBracket(RNode):
    """``[a op b]``, or ``where(a op b, then, otherwise)`` (``then`` set); ``also`` holds
    the further comparisons of a conjunction (``[t >= 1 and t < T - 1]``)."""

    op: str
    a: RNode
    b: RNode
    column: int
    then: RNode | None = None
    otherwise: RNode | None = None
    also: tuple["RBracket", ...] = ()

    def children(self):
        return ((self.a, self.b) + self.also
                + ((self.then, self.otherwise) if self.then else ()))


@dataclass(frozen=True, eq=False)
class RNeg(RNode):
    arg: RNode
    column: int

    def children(self):
        return (self.arg,)


@dataclass(frozen=True, eq=False)
class RPow(RNode):
    base: RNode
    exponent: RNode
    column: int

    def children(self):
        return (self.base, self.exponent)


@dataclass(frozen=True, eq=False)
class RMul(RNode):
    """``f0 op1 f1 op2 f2 ...`` with each op ``*`` or ``/`` (``ops[0]`` is always ``*``)."""

    factors: tuple[RNode, ...]
    ops: tuple[str, ...]
    column: int

    def children(self):
        return self.factors


@dataclass(frozen=True, eq=False)
class RAdd(RNode):
    """``t0 s1 t1 s2 t2 ...`` with each sign ``+`` or ``-`` (``signs[0]`` is always ``+``)."""

    terms: tuple[RNode, ...]
    signs: tuple[str, ...]
    column: int

    def children(self):
        return self.terms


@dataclass(frozen=True, eq=False)
class RSum(RNode):
    """An explicit ``sum_m body`` or ``sum_{s,c} body``; a bounded one ``sum_{u <= t}``
    keeps each bound as (op, index, right side)."""

    indices: tuple[RIndex, ...]
    body: RNode
    column: int
    bounds: tuple[tuple[str, RIndex, RNode], ...] = ()
    reduce: str = "sum"  # or "max" / "min": max_d e
    #: Comparisons joined to a bound with ``and`` (``sum_{u <= t and u > t - W}``).
    conditions: tuple["RBracket", ...] = ()

    def children(self):
        return (self.body,) + tuple(rhs for _, _, rhs in self.bounds) + self.conditions


def _walk(node: RNode) -> Iterator[RNode]:
    """Every node, pre-order (which is source order)."""
    yield node
    for child in node.children():
        yield from _walk(child)


def _all_indices(node: RNode) -> Iterator[RIndex]:
    """Every index written in ``node``, in source order, binding ones of sums included."""
    for sub_node in _walk(node):
        if isinstance(sub_node, RSum):
            yield from sub_node.indices
        yield from sub_node.index_uses()


# --- expressions: recursive descent ---------------------------------------------------------

def _parse_index(cursor: _Cursor) -> RIndex:
    token = cursor.expect("NAME", "an index", hint=_INDEX_HINT)
    if not _INDEX_NAME.match(token.text):
        raise cursor.error(f"{token.text} is not an index name", token, hint=_INDEX_HINT)
    return RIndex(token.text, token.column)


_POSITION_HINT = ("a position holds an index, an index expression with whole-number "
                  "coefficients (u+k, t-1, 2*u+k) or a constant index (0)")


def _parse_position(cursor: _Cursor) -> RIndex | RAffine:
    """An index, or an affine expression of indices: ``u+k``, ``t-1``, ``2*u+k``, ``0``."""
    start = cursor.peek().column
    terms: list[tuple[int, RIndex]] = []
    offset = 0
    sign = -1 if cursor.accept("-") else 1
    while True:
        token = cursor.peek()
        if token.kind == "NUM":
            cursor.next()
            if not token.text.isdigit():
                raise cursor.error("an index expression takes whole numbers", token,
                                   hint=_POSITION_HINT)
            if cursor.accept("*"):
                terms.append((sign * int(token.text), _parse_index(cursor)))
            else:
                offset += sign * int(token.text)
        elif token.kind == "NAME":
            terms.append((sign, _parse_index(cursor)))
        else:
            raise cursor.unexpected("an index", hint=_POSITION_HINT)
        if cursor.accept("+"):
            sign = 1
        elif cursor.accept("-"):
            sign = -1
        else:
            break
    if len(terms) == 1 and terms[0][0] == 1 and offset == 0:
        return terms[0][1]
    if not terms and offset < 0:
        raise cursor.line.error("a constant index counts from 0 and cannot be negative",
                                start, hint=_POSITION_HINT)
    return RAffine(tuple(terms), offset, start)


class _ExprParser:
    """Recursive descent over the grammar (precedence low to high)::

        expr   := term (('+' | '-') term)*
        term   := factor (('*' | '/' | <juxtaposition>) factor)*
        factor := '-' factor | SUM term | power
        power  := atom ('^' factor)?
        atom   := NUMBER | NAME | NAME '[' idx (',' idx)* ']' | FUNC "'"* '(' expr ')'
                | 'delta' '(' idx ',' idx ')' | '(' expr ')'

    ``is_value_name`` tells a known tensor or dim from a function, so that ``lam (x + 1)``
    is a product and ``h(x)`` a call.
    """

    _STARTS_FACTOR = ("NUM", "NAME", "(", "SUM", "[")

    def __init__(self, cursor: _Cursor, is_value_name: Callable[[str], bool]):
        self.cursor = cursor
        self.is_value_name = is_value_name
        self.depth = 0

    def expression(self) -> RNode:
        column = self.cursor.peek().column
        terms, signs = [self.term()], ["+"]
        while self.cursor.at("+") or self.cursor.at("-"):
            signs.append(self.cursor.next().text)
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else RAdd(tuple(terms), tuple(signs), column)

    def term(self) -> RNode:
        column = self.cursor.peek().column
        factors, ops = [self.factor()], ["*"]
        while True:
            if self.cursor.at("*") or self.cursor.at("/"):
                ops.append(self.cursor.next().text)
            elif (self.cursor.peek().kind in self._STARTS_FACTOR
                  and not self.cursor.at("NAME", "and")):  # `and` joins comparisons
                ops.append("*")  # juxtaposition: X[s,m] W[n,m]
            else:
                break
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else RMul(tuple(factors), tuple(ops), column)

    def factor(self) -> RNode:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise self.cursor.error(
                    f"expression nested too deeply (more than {MAX_NESTING} levels)",
                    self.cursor.peek(), hint="split it into several definitions",
                )
            token = self.cursor.peek()
            if token.kind == "-":
                self.cursor.next()
                return RNeg(self.factor(), token.column)
            if token.kind == "SUM":
                return self.explicit_sum()
            return self.power()
        finally:
            self.depth -= 1

    def explicit_sum(self) -> RSum:
        start = self.cursor.next()
        bounds: list[tuple[str, RIndex, RNode]] = []
        conditions: list[RBracket] = []
        if self.cursor.accept("{"):
            indices = _comma_separated(self.cursor,
                                       lambda: self._summed_index(bounds, conditions))
            self.cursor.expect("}", "',' or '}' to close the list of summed indices")
        else:
            indices = [_parse_index(self.cursor)]
        if self.cursor.peek().kind not in self._STARTS_FACTOR + ("-",):
            raise self.cursor.unexpected("the term to sum after the sum's indices")
        reduce = start.text[:3]
        if reduce != "sum" and (len(indices) != 1 or bounds):
            raise self.cursor.line.error(f"{reduce}_ reduces over one index, without a bound",
                                         start.column, hint=f"write {reduce}_d X[n,d]")
        return RSum(tuple(indices), self.term(), start.column, tuple(bounds), reduce,
                    tuple(conditions))

    def _summed_index(self, bounds: list, conditions: list) -> RIndex:
        """An index of ``sum_{...}``, with a bound where one follows (``u <= t``), and
        further comparisons joined to it with ``and`` (``u <= t and u > t - W``)."""
        index = _parse_index(self.cursor)
        token = self.cursor.peek()
        if token.kind in COMPARISONS:
            self.cursor.next()
            bounds.append((token.kind, index, self._index_values(self.expression())))
            conditions.extend(self.conjoined())
        return index

    def power(self) -> RNode:
        base = self.atom()
        caret = self.cursor.accept("^")
        return RPow(base, self.factor(), caret.column) if caret else base

    def atom(self) -> RNode:
        token = self.cursor.peek()
        if token.kind == "NUM":
            self.cursor.next()
            return RNum(Fraction(token.text), token.column)
        if token.kind == "(":
            self.cursor.next()
            inner = self.expression()
            self.cursor.expect(")", f"')' to close the '(' at column {token.column}")
            return inner
        if token.kind == "NAME":
            return self.named_atom()
        if token.kind == "[":
            self.cursor.next()
            (op, a, b), also = self.comparison(), self.conjoined()
            self.cursor.expect("]", f"']' to close the bracket at column {token.column}",
                               hint="comparisons combine with 'and': [t >= 1 and t < T - 1]")
            return RBracket(op, a, b, token.column, also=also)
        raise self.cursor.unexpected("a number, a name, '(' or a sum")

    def conjoined(self) -> tuple[RBracket, ...]:
        """The comparisons after ``and`` that extend a first one, as brackets."""
        also = []
        while self.cursor.at("NAME", "and"):
            column = self.cursor.next().column
            also.append(RBracket(*self.comparison(), column))
        return tuple(also)

    def comparison(self) -> tuple[str, RNode, RNode]:
        """``a op b`` with op one of ``< <= > >= == !=``."""
        a = self.expression()
        token = self.cursor.peek()
        if token.kind not in COMPARISONS:
            raise self.cursor.unexpected("a comparison (< <= > >= == !=)",
                                         hint="write  [x[n] > 0]  or  where(x[n] > 0, p, q)")
        self.cursor.next()
        return token.kind, self._index_values(a), self._index_values(self.expression())

    def _index_values(self, node: RNode) -> RNode:
        """A side of a comparison with its bare index names as index values: in
        ``[u <= t]`` the names ``u`` and ``t`` that are no tensor, dim or constant."""
        if isinstance(node, RName):
            if not self.is_value_name(node.name) and _INDEX_NAME.match(node.name):
                return RIndexValue(RIndex(node.name, node.column), node.column)
            return node
        if isinstance(node, RAdd):
            return RAdd(tuple(map(self._index_values, node.terms)), node.signs, node.column)
        if isinstance(node, RMul):
            return RMul(tuple(map(self._index_values, node.factors)), node.ops, node.column)
        if isinstance(node, RNeg):
            return RNeg(self._index_values(node.arg), node.column)
        return node

    def where(self) -> RBracket:
        start = self.cursor.next()
        self.cursor.expect("(", "'(' after where", hint="write  where(x[n] > 0, p, q)")
        (op, a, b), also = self.comparison(), self.conjoined()
        self.cursor.expect(",", "',' after where's comparison", hint="write  where(x[n] > 0, p, q)")
        then = self.expression()
        self.cursor.expect(",", "',' between where's two values", hint="write  where(x[n] > 0, p, q)")
        otherwise = self.expression()
        self.cursor.expect(")", "')' to close where(")
        return RBracket(op, a, b, start.column, then, otherwise, also)

    def named_atom(self) -> RNode:
        token = self.cursor.peek()
        name, following = token.text, self.cursor.peek(1).kind
        if name == "delta":
            return self.delta()
        if name == "where" and following == "(":
            return self.where()
        if name in MATRIX_FUNCTIONS:
            return self.matrix_function()
        if name == "loss":
            raise self.cursor.error(
                "loss(...) must be the whole right side of a scalar definition", token,
                hint="write  L = loss(Y)  on a line of its own",
            )
        if name == "sum":
            raise self.cursor.error("a sum needs its indices", token, hint="write sum_m ... or sum_{s,c} ...")
        if name in KEYWORDS:
            raise self.cursor.error(f"{name} is a reserved word and cannot appear in an expression", token)
        if following == "[":
            return self.tensor()
        if following == "'" or (following == "(" and not self.is_value_name(name)):
            return self.call()
        self.cursor.next()
        return RName(name, token.column)

    def matrix_function(self) -> RMatrixFunc:
        """``inv(A)[i,j]``, ``det(A)``, ``logdet(A)``: of a tensor's name."""
        start = self.cursor.next()
        hint = "write  inv(A)[i,j], det(A) or logdet(A)  with A a square tensor's name"
        self.cursor.expect("(", f"'(' after {start.text}", hint=hint)
        matrix = self.cursor.expect("NAME", f"the name of a square tensor in {start.text}(",
                                    hint=hint)
        self.cursor.expect(")", f"')' after the name of {start.text}'s matrix", hint=hint)
        indices: list[RIndex] = []
        if MATRIX_FUNCTIONS[start.text]:
            self.cursor.expect("[", f"'[' and two indices after {start.text}({matrix.text})",
                               hint=hint)
            indices = _comma_separated(self.cursor, lambda: _parse_index(self.cursor))
            self.cursor.expect("]", "',' or ']' after an index")
            if len(indices) != 2:
                raise self.cursor.line.error(f"{start.text}({matrix.text}) takes two indices",
                                             indices[0].column, hint=hint)
        return RMatrixFunc(start.text, matrix.text, tuple(indices), start.column,
                           matrix.column)

    def tensor(self) -> RTensor:
        name = self.cursor.next()
        self.cursor.next()  # '['
        indices = _comma_separated(self.cursor, lambda: _parse_position(self.cursor))
        self.cursor.expect("]", "',' or ']' after an index", hint=_POSITION_HINT)
        return RTensor(name.text, tuple(indices), name.column)

    def call(self) -> RFunc:
        name = self.cursor.next()
        order = 0
        while self.cursor.accept("'"):
            order += 1
        self.cursor.expect("(", f"'(' after {name.text}{chr(39) * order}")
        arg = self.expression()
        if self.cursor.at(","):
            raise self.cursor.error(f"{name.text} takes one argument", self.cursor.peek())
        self.cursor.expect(")", f"')' to close {name.text}(")
        return RFunc(name.text, order, arg, name.column)

    def delta(self) -> RDelta:
        start = self.cursor.next()
        self.cursor.expect("(", "'(' after delta", hint="write delta(i,j)")
        a = _parse_position(self.cursor)
        self.cursor.expect(",", "',' between the two indices of delta", hint="write delta(i,j)")
        b = _parse_position(self.cursor)
        self.cursor.expect(")", "')' after the two indices of delta", hint="write delta(i,j)")
        return RDelta(a, b, start.column)


# --- index analysis and term building for one statement -------------------------------------

@dataclass(frozen=True)
class _Occurrence:
    """A use of an index, with the path of nodes from the statement's root down to it."""

    index: RIndex
    chain: tuple[RNode, ...]  # ends with the tensor entry or delta that holds the index


def _common_depth(chains: list[tuple[RNode, ...]]) -> int:
    """Length of the common prefix of node paths (the lowest common ancestor is at depth-1)."""
    depth = 0
    for nodes in zip(*chains):
        if any(node is not nodes[0] for node in nodes):
            break
        depth += 1
    return depth


def _constant_power_too_big(base: Term, exponent: Term) -> bool:
    """Would ``power`` compute an exact number with more than MAX_CONSTANT_BITS bits?"""
    if not isinstance(exponent, Num):
        return False
    total = abs(exponent.value)
    while isinstance(base, Pow) and isinstance(base.exponent, Num):
        total *= abs(base.exponent.value)
        base = base.base
    if not isinstance(base, Num):
        return False
    bits = max(base.value.numerator.bit_length(), base.value.denominator.bit_length())
    return bits > 1 and bits * total > MAX_CONSTANT_BITS


class _IndexAnalysis:
    """Names, index dims, explicit and implicit sums, and terms for one statement.

    ``defining`` is the name being defined (None for an assumption); it may not appear on
    its own right side.
    """

    def __init__(self, file: "_FileParser", line: _Line, defining: str | None,
                 grads: dict[str, tuple[str, str]] | None = None):
        self.file = file
        self.problem = file.problem
        self.line = line
        self.defining = defining
        #: upstream gradients a claim may name (``dL_dY`` -> ("L", "Y")), read as Grad terms
        self.grads = grads or {}
        self.dims: dict[str, str] = {}  # index name -> dim
        self.first_use: dict[str, RIndex] = {}  # where each index got its dim
        self.implicit: dict[RNode, list[str]] = {}  # node -> indices summed around it

    # -- the two kinds of statement --

    def definition(self, lhs: list[RIndex], rhs: RNode) -> tuple[tuple[Index, ...], Term]:
        self._resolve(rhs)
        outer = {index.name for index in lhs}
        occurrences = self._occurrences(rhs, outer)
        for index in lhs:
            if index.name not in occurrences:
                raise self.line.error(
                    f"index {index.name} is on the left side but not on the right side", index.column,
                    hint="every index of the left side must appear on the right side",
                )
        self._place_implicit_sums(occurrences, outer)
        self._infer_dims([rhs], lhs)
        indices = tuple(Index(index.name, self.dims[index.name]) for index in lhs)
        # An implicit sum may enclose an explicit one over the same index (the convention
        # cannot see it); rename the inner one, as the explicit form has to be written.
        return indices, unshadow(self._build(rhs), frozenset(outer))

    def claim(self, lhs: list[RIndex], dims: tuple[str, ...], rhs: RNode) -> tuple[tuple[Index, ...], Term]:
        """An index claim: the left side's indices range over the result's ``dims``; an
        index of the left side that the right side does not use is one it is constant in."""
        for index, dim in zip(lhs, dims):
            self._assign_dim(index, dim)
        self._resolve(rhs)
        outer = {index.name for index in lhs}
        self._place_implicit_sums(self._occurrences(rhs, outer), outer)
        self._infer_dims([rhs], lhs)
        indices = tuple(Index(index.name, self.dims[index.name]) for index in lhs)
        return indices, unshadow(self._build(rhs), frozenset(outer))

    def assumption(self, lhs: RNode, rhs: RNode) -> tuple[Term, Term]:
        """The left side's unsummed indices are the pattern variables; the right side may use
        them (or none of them) and sums its other repeated indices implicitly."""
        self._resolve(lhs)
        self._resolve(rhs)
        pattern = set(self._occurrences(lhs, outer=set()))
        self._place_implicit_sums(self._occurrences(rhs, pattern), pattern)
        self._infer_dims([lhs, rhs], [])
        return unshadow(self._build(lhs)), unshadow(self._build(rhs), frozenset(pattern))

    # -- names, and dims from tensor axes --

    def _resolve(self, root: RNode) -> None:
        for node in _walk(root):
            resolver = self._RESOLVERS.get(type(node))
            if resolver is not None:
                resolver(self, node)

    def _check_not_self(self, name: str, column: int) -> None:
        if name == self.defining:
            raise self.line.error(
                f"{name} refers to itself", column, hint="a definition cannot use the tensor it defines"
            )

    def _resolve_name(self, node: RName) -> None:
        name = node.name
        self._check_not_self(name, node.column)
        if name in self.problem.dims or name in CONSTANTS:
            return
        if self.file.is_tensor(name):
            dims = self.problem.tensor_dims(name)
            if dims:
                raise self.line.error(
                    f"{name} has {len(dims)} indices ({_shape(name, dims)}) but none are given",
                    node.column, hint=f"write {name}[...] with {len(dims)} indices",
                )
            return
        if self.file.is_function(name):
            raise self.line.error(f"{name} is a function", node.column, hint=f"write {name}(...)")
        raise self.file.missing_name_error(self.line, name, node.column, "name")

    def _resolve_tensor(self, node: RTensor) -> None:
        name = node.name
        if name in self.grads:
            self._check_positions(node, self.problem.tensor_dims(self.grads[name][1]))
            return
        self._check_not_self(name, node.column)
        if name in self.problem.dims:
            raise self.line.error(f"{name} is a dim, not a tensor: it takes no indices", node.column)
        if name in CONSTANTS:
            raise self.line.error(f"{name} is a constant, not a tensor: it takes no indices",
                                  node.column)
        if self.file.is_function(name):
            raise self.line.error(f"{name} is a function", node.column, hint=f"write {name}(...)")
        if not self.file.is_tensor(name):
            raise self.file.missing_name_error(self.line, name, node.column, "tensor")
        self._check_positions(node, self.problem.tensor_dims(name))

    def _check_positions(self, node: RTensor, dims: tuple[str, ...]) -> None:
        name = node.name
        if not dims:
            raise self.line.error(f"{name} is a scalar; use it without indices", node.column)
        if len(dims) != len(node.indices):
            raise self.line.error(
                f"{name} has {len(dims)} indices ({_shape(name, dims)}) but {len(node.indices)} "
                f"{'is' if len(node.indices) == 1 else 'are'} given", node.column,
            )
        for position, dim in zip(node.indices, dims):
            if isinstance(position, RIndex):
                self._assign_dim(position, dim, at_position=True)
            else:
                self._check_constant_index(node, position, dim)

    def _check_constant_index(self, node: RTensor, position: RAffine, dim: str) -> None:
        size = self.problem.dims.get(dim)
        if not position.terms and size is not None and position.offset >= size:
            raise self.line.error(
                f"{node.name}[...] has {size} entries along {dim} (0 to {size - 1}); "
                f"{position.offset} is outside", position.column)

    def _resolve_func(self, node: RFunc) -> None:
        name = node.name
        self._check_not_self(name, node.column)
        if name in LANGUAGE_FUNCTIONS:
            if node.order:
                raise self.line.error(
                    f"{name}{chr(39) * node.order} is not part of the language", node.column,
                    hint=f"primes are for declared functions; write the derivative of {name} out",
                )
            return
        if name not in self.problem.functions:
            raise self.file.missing_name_error(self.line, name, node.column, "function")

    def _resolve_matrix_func(self, node: RMatrixFunc) -> None:
        name = node.matrix
        self._check_not_self(name, node.matrix_column)
        if not self.file.is_tensor(name):
            raise self.file.missing_name_error(self.line, name, node.matrix_column, "tensor")
        dims = self.problem.tensor_dims(name)
        if len(dims) != 2 or dims[0] != dims[1]:
            raise self.line.error(
                f"{node.name} needs a square matrix; {name} is {_shape(name, dims)}",
                node.matrix_column, hint="a square two-index tensor, as  input S[N,N]")
        for index in node.indices:
            self._assign_dim(index, dims[0])

    _RESOLVERS = {RName: _resolve_name, RTensor: _resolve_tensor, RFunc: _resolve_func,
                  RMatrixFunc: _resolve_matrix_func}

    def _assign_dim(self, index: RIndex, dim: str, at_position: bool = False) -> None:
        known = self.dims.get(index.name)
        if known is None:
            self.dims[index.name] = dim
            self.first_use[index.name] = index
        elif known != dim and at_position and self._defined_from(dim, known):
            self.dims[index.name] = dim  # u over U = T - 1 may index a T position
            self.first_use[index.name] = index
        elif known != dim and at_position and self._defined_from(known, dim):
            pass
        elif known != dim:
            first = self.first_use[index.name]
            raise self.line.error(
                f"index {index.name} ranges over {dim} here but over {known} at column {first.column}",
                index.column, hint="use a different index name for each dim",
            )

    def _defined_from(self, dim: str, other: str) -> bool:
        """Is ``dim`` defined by a formula that mentions ``other`` (or a dim defined so)?"""
        formula = self.problem.dim_formulas.get(dim)
        return formula is not None and any(
            d == other or self._defined_from(d, other) for d in formula.dims)

    # -- explicit sums and occurrences --

    def _occurrences(self, root: RNode, outer: set[str]) -> dict[str, list[_Occurrence]]:
        """Uses of every index not bound by an explicit sum, in order of first use.

        Checks the explicit sums on the way: their indices must be new and used."""
        found: dict[str, list[_Occurrence]] = {}

        def visit(node: RNode, chain: tuple[RNode, ...], bound: frozenset[str]) -> set[str]:
            chain = chain + (node,)
            if isinstance(node, RSum):
                self._check_sum_indices(node, outer, bound)
                bound = bound | {index.name for index in node.indices}
            used: set[str] = set()
            for index in node.index_uses():
                used.add(index.name)
                if index.name not in bound:
                    found.setdefault(index.name, []).append(_Occurrence(index, chain))
            for child in node.children():
                used |= visit(child, chain, bound)
            if isinstance(node, RSum):
                for index in node.indices:
                    if index.name not in used:
                        raise self.line.error(
                            f"sum over {index.name}, but {index.name} is not used", index.column,
                            hint="the sum covers the product term after it; use parentheses for more",
                        )
            return used

        visit(root, (), frozenset())
        return found

    def _check_sum_indices(self, node: RSum, outer: set[str], bound: frozenset[str]) -> None:
        seen: set[str] = set()
        for index in node.indices:
            if index.name in seen:
                raise self.line.error(f"index {index.name} is summed twice", index.column)
            if index.name in outer:
                raise self.line.error(
                    f"index {index.name} is on the left side, so it cannot be summed", index.column,
                    hint="give the summed index another name",
                )
            if index.name in bound:
                raise self.line.error(
                    f"index {index.name} is already summed by an enclosing sum", index.column,
                    hint="give the inner summed index another name",
                )
            seen.add(index.name)

    # -- implicit (Einstein) sums --

    def _place_implicit_sums(self, occurrences: dict[str, list[_Occurrence]], outer: set[str]) -> None:
        for name, uses in occurrences.items():
            if name not in outer:
                self._place_implicit_sum(name, uses)

    def _place_implicit_sum(self, name: str, uses: list[_Occurrence]) -> None:
        """Sum ``name`` over the smallest product term holding all of ``uses``."""
        if len(uses) == 1:
            in_addition = any(isinstance(node, RAdd) for node in uses[0].chain)
            raise self.line.error(
                f"index {name} is used once and never summed; put it on the left side or sum over it",
                uses[0].index.column,
                hint="the terms of an addition must have the same free indices (those of the "
                     "left side)" if in_addition else None,
            )
        depth = _common_depth([use.chain for use in uses])
        ancestor = uses[0].chain[depth - 1]
        if isinstance(ancestor, RAdd):  # each term of an addition sums on its own
            by_term: dict[RNode, list[_Occurrence]] = {}
            for use in uses:
                by_term.setdefault(use.chain[depth], []).append(use)
            for group in by_term.values():
                self._place_implicit_sum(name, group)
        elif isinstance(ancestor, (RMul, RTensor, RDelta, RIndexValue, RSum, RMatrixFunc)):
            self.implicit.setdefault(ancestor, []).append(name)
            self._warn_wide_implicit_sum(name, uses, depth)
        elif isinstance(ancestor, RPow):
            raise self.line.error(
                f"the exponent of ^ must not have indices (it has {name})", uses[-1].index.column
            )
        else:  # pragma: no cover - other nodes have one child and cannot be a common ancestor
            raise self.line.error(
                f"index {name} cannot be summed implicitly here", uses[-1].index.column,
                hint=f"write the sum explicitly: sum_{name} ...",
            )

    def _warn_wide_implicit_sum(self, name: str, uses: list[_Occurrence], depth: int) -> None:
        """A warning where one implicit sum covers more than a reader likely meant: the
        index more than twice in the product term, or in the arguments of two function
        applications (``exp(X[n,d] W[d,k]) / sum_j exp(X[n,d] W[d,j])`` sums d over the
        whole quotient, which is not the softmax of X W)."""
        applications = []  # the outermost function application around each use
        for use in uses:
            inside = next((node for node in use.chain[depth:] if isinstance(node, RFunc)), None)
            if inside is not None and all(inside is not a for a, _ in applications):
                applications.append((inside, use))
        if len(applications) >= 2:
            (first, _), (second, use) = applications[:2]
            self.problem.warnings.append(InputWarning(
                f"index {name} is summed once over the whole product term, across the "
                f"arguments of {first.name}(...) and {second.name}(...)",
                self.line.at(use.index.column),
                hint=f"to sum inside each argument, write sum_{name} there; an explicit "
                     f"sum_{name} around the whole term says that is meant"))
        elif len(uses) > 2:
            self.problem.warnings.append(InputWarning(
                f"index {name} appears {len(uses)} times in one product term; one implicit "
                f"sum covers all of them", self.line.at(uses[2].index.column),
                hint=f"an implicit sum pairs two uses; write sum_{name} where each sum is "
                     "meant"))

    # -- dims of indices that no tensor axis gives --

    def _infer_dims(self, roots: list[RNode], lhs: list[RIndex]) -> None:
        """Pass dims along deltas, then require a dim for every index."""
        deltas = [node for root in roots for node in _walk(root) if isinstance(node, RDelta)]
        changed = True
        while changed:
            changed = False
            for delta in deltas:
                if not (isinstance(delta.a, RIndex) and isinstance(delta.b, RIndex)):
                    continue
                dim_a, dim_b = self.dims.get(delta.a.name), self.dims.get(delta.b.name)
                if dim_a and dim_b and dim_a != dim_b:
                    raise self.line.error(
                        f"delta({delta.a.name},{delta.b.name}) joins an index over {dim_a} "
                        f"and an index over {dim_b}", delta.b.column,
                    )
                if dim_a and not dim_b:
                    self._assign_dim(delta.b, dim_a)
                    changed = True
                elif dim_b and not dim_a:
                    self._assign_dim(delta.a, dim_b)
                    changed = True
        for name, dim in list(self.dims.items()):
            # d[u] = x[u+1] - x[u] with dims U = T - 1: u ranges over U, not x's T
            letter = name.upper()
            if letter != dim and letter in self.problem.dims and self._defined_from(letter, dim):
                self.dims[name] = letter
        for root in roots:
            for index in _all_indices(root):
                self._require_dim(index)
        for index in lhs:
            self._require_dim(index)

    def _require_dim(self, index: RIndex) -> None:
        """An index no tensor axis gives a dim ranges over the dim of its letter in upper
        case (``u`` of ``x[u+k]`` over ``U``), where there is one."""
        if index.name in self.dims:
            return
        letter = index.name.upper()
        if letter in self.problem.dims:
            self.dims[index.name] = letter
            self.first_use[index.name] = index
            return
        raise self.line.error(
            f"cannot tell which dim index {index.name} ranges over", index.column,
            hint=f"use the index on an axis of a tensor as well, or declare  dims {letter} = ..."
                 f" (an index only inside index arithmetic ranges over the dim of its letter "
                 f"in upper case)",
        )

    # -- terms --

    def _build(self, node: RNode) -> Term:
        term = self._BUILDERS[type(node)](self, node)
        summed = self.implicit.get(node)
        return self._visible_sum(summed, term) if summed else term

    def _index(self, index: RIndex) -> Index:
        return Index(index.name, self.dims[index.name])

    def _visible_sum(self, names: list[str], body: Term) -> Term:
        """A sum the user wrote or implied; ``make_sum`` would turn a sum over an index that
        cancelled out of the body into a dim factor, so such a sum is kept as it is."""
        indices = tuple(Index(name, self.dims[name]) for name in names)
        if all(index in body.free for index in indices):
            return make_sum(indices, body)
        return Sum(indices, body)

    def _build_num(self, node: RNum) -> Term:
        return Num(node.value)

    def _build_name(self, node: RName) -> Term:
        if node.name in self.problem.dims:
            return DimSize(node.name)
        if node.name in CONSTANTS:
            return Constant(node.name)
        return Tensor(node.name, ())

    def _build_tensor(self, node: RTensor) -> Term:
        grad = self.grads.get(node.name)
        dims = self.problem.tensor_dims(grad[1] if grad else node.name)
        positions = tuple(self._position(p, dim) for p, dim in zip(node.indices, dims))
        if grad:
            return Grad(grad[0], grad[1], positions)
        return Tensor(node.name, positions)

    def _position(self, p: RIndex | RAffine, dim: str):
        """A plain index where it ranges over the position's dim, else an ``Affine``."""
        if isinstance(p, RIndex):
            index = self._index(p)
            return index if index.dim == dim or not dim else Affine(((1, index),), 0, dim)
        return Affine(tuple((c, self._index(i)) for c, i in p.terms), p.offset, dim)

    def _build_delta(self, node: RDelta) -> Term:
        return Delta(self._position(node.a, ""), self._position(node.b, ""))

    def _build_matrix_func(self, node: RMatrixFunc) -> Term:
        return MatrixFunc(node.name, node.matrix, tuple(self._index(i) for i in node.indices))

    def _build_index_value(self, node: RIndexValue) -> Term:
        return IndexValue(Affine(((1, self._index(node.index)),)))

    def _build_func(self, node: RFunc) -> Term:
        term = Func(node.name, self._build(node.arg), node.order)
        if not node.order:
            self._constant(term, node.column)
        return term

    def _constant(self, term: Term, column: int) -> float | None:
        """The value of ``term`` if it is a constant; a located error where it is undefined."""
        try:
            return constants.check(term, self.problem.dims)
        except constants.Undefined as exc:
            raise self.line.error(str(exc), column,
                                  hint="a constant part of an expression must have a "
                                       "finite real value") from None

    def _build_neg(self, node: RNeg) -> Term:
        return neg(self._build(node.arg))

    def _build_pow(self, node: RPow) -> Term:
        base, exponent = self._build(node.base), self._build(node.exponent)
        if exponent.free:
            names = ", ".join(sorted(index.name for index in exponent.free))
            raise self.line.error(
                f"the exponent of ^ must not have indices (it has {names})", node.exponent.column
            )
        if _constant_power_too_big(base, exponent):
            raise self.line.error("this power is too large to compute exactly", node.column)
        self._constant(Pow(base, exponent), node.base.column)
        return power(base, exponent)

    # Products and additions are built in one call of ``mul``/``add`` (the same term as
    # folding ``mul``/``div`` or ``add``/``sub`` pairwise, which takes quadratic time).

    def _build_mul(self, node: RMul) -> Term:
        factors = []
        for op, factor in zip(node.ops, node.factors):
            term = self._build(factor)
            if op == "*":
                factors.append(term)
            elif term == ZERO or self._constant(term, factor.column) == 0:
                raise self.line.error("division by zero", factor.column)
            else:
                factors.append(power(term, MINUS_ONE))
        return mul(*factors)

    def _build_add(self, node: RAdd) -> Term:
        return add(*(self._build(term) if sign == "+" else neg(self._build(term))
                     for sign, term in zip(node.signs, node.terms)))

    def _build_bracket(self, node: RBracket) -> Term:
        """``[a op b]``; a conjunction is the product of its brackets, and
        ``where(c, p, q)`` is ``c p + (1 - c) q`` (``[a > b] p + [a <= b] q`` for one
        comparison)."""
        bracket = Bracket(node.op, _as_index_value(self._build(node.a)),
                          _as_index_value(self._build(node.b)))
        holds = mul(bracket, *map(self._build, node.also))
        if node.then is None:
            return holds
        fails = bracket.negated() if not node.also else sub(ONE, holds)
        return add(mul(holds, self._build(node.then)), mul(fails, self._build(node.otherwise)))

    def _build_sum(self, node: RSum) -> Term:
        body = self._build(node.body)
        if node.reduce != "sum":  # max_d e = sum_d [d == argmax_d' e(d')] e(d)
            (d,) = (self._index(i) for i in node.indices)
            taken = body.all_index_names() | {i.name for i in body.free}
            other = Index(naming.fresh_variant(d.name, taken), d.dim)
            choice = Arg(node.reduce, d, other, rename_indices(body, {d: other}))
            return Sum((d,), mul(choice, body))
        if node.bounds:
            body = mul(*(Bracket(op, IndexValue(Affine(((1, self._index(index)),))),
                                 _as_index_value(self._build(rhs)))
                         for op, index, rhs in node.bounds),
                       *map(self._build, node.conditions), body)
        return self._visible_sum([index.name for index in node.indices], body)

    _BUILDERS = {
        RNum: _build_num,
        RName: _build_name,
        RTensor: _build_tensor,
        RDelta: _build_delta,
        RFunc: _build_func,
        RNeg: _build_neg,
        RPow: _build_pow,
        RMul: _build_mul,
        RAdd: _build_add,
        RSum: _build_sum,
        RBracket: _build_bracket,
        RIndexValue: _build_index_value,
        RMatrixFunc: _build_matrix_func,
    }


def _as_index_value(term: Term) -> Term:
    """A side of a comparison that is an affine expression of indices as one index value
    (``u + 1`` as ``IndexValue(u+1)``); other sides as they are."""
    coeffs: dict[Index, int] = {}

    def visit(t: Term, scale: Fraction) -> int | None:
        if isinstance(t, IndexValue):
            for c, i in t.value.terms:
                coeffs[i] = coeffs.get(i, 0) + c * scale
            return t.value.offset * scale
        if isinstance(t, Num):
            return t.value * scale
        if isinstance(t, Add):
            parts = [visit(u, scale) for u in t.terms]
            return None if any(p is None for p in parts) else sum(parts)
        if isinstance(t, Mul) and len(t.factors) == 2 and isinstance(t.factors[0], Num):
            return visit(t.factors[1], scale * t.factors[0].value)
        return None

    offset = visit(term, Fraction(1))
    if (offset is None or not coeffs or Fraction(offset).denominator != 1
            or any(Fraction(c).denominator != 1 for c in coeffs.values())):
        return term
    return IndexValue(Affine(tuple((int(c), i) for i, c in coeffs.items() if c), int(offset)))


def _collect_powers(term: Term) -> Term:
    """``term`` with equal factors of each product gathered into a power (``T T`` -> ``T^2``)."""
    def gather(t: Term) -> Term | None:
        if not isinstance(t, Mul):
            return None
        exponents: dict[Term, Fraction] = {}
        for factor in t.factors:
            base, exponent = base_exp(_collect_powers(factor))
            exponents[base] = exponents.get(base, Fraction(0)) + exponent
        return mul(*(power(base, Num(e)) for base, e in exponents.items()))
    return replace(term, gather)


def _shape(name: str, dims: tuple[str, ...]) -> str:
    return f"{name}[{','.join(dims)}]" if dims else name


# --- statements -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Declared:
    kind: str  # "dim", "input", "function" or "definition"
    location: Location


def _scan_declarations(lines: list[_Line]) -> dict[str, int]:
    """The line where each name is first declared or defined, anywhere in the file.

    Used only to say "defined later, at line N" for a name used too early; lines that do not
    tokenize are skipped here and reported when the parser reaches them."""
    first_line: dict[str, int] = {}
    for line in lines:
        try:
            tokens = _tokenize(line)
        except InputError:
            continue
        for name in _declared_names(tokens):
            first_line.setdefault(name, line.number)
    return first_line


def _declared_names(tokens: list[Token]) -> list[str]:
    head = tokens[0]
    if head.kind != "NAME":
        return []
    if head.text in ("dims", "input", "function"):
        names, depth, expect_name = [], 0, True
        for token in tokens[1:]:
            if depth == 0 and expect_name and token.kind == "NAME":
                names.append(token.text)
            depth += {"[": 1, "]": -1}.get(token.kind, 0)
            expect_name = depth == 0 and token.kind == ","
        return names
    if head.text not in RESERVED_NAMES and tokens[1].kind in ("[", "="):
        return [head.text]
    return []


_TITLE = re.compile(r"^\s*(title)\s*:(.*)$")
#: ``notation: sums = limits, cases = split``: options for how results are written
_NOTATION = re.compile(r"^\s*(notation)\s*:(.*)$")
#: ``claim NAME = ...`` or ``claim NAME[i,j] = ...``: a matrix claim's NumPy text is not
#: tokenized as the file language.
_CLAIM = re.compile(r"^\s*claim\b")


def _check_printable(line: _Line, text: str, start: int) -> None:
    """Free text (a title) reaches every output format: no control characters, which a
    terminal would obey (``ESC [2J``) and which no document can show."""
    for offset, char in enumerate(text):
        if char != "\t" and unicodedata.category(char) == "Cc":
            raise line.error(f"control character U+{ord(char):04X} in the title",
                             start + offset + 1, hint="a title is printable text")


class _FileParser:
    """Reads the statements of one file, in order, into a Problem."""

    def __init__(self, text: str, path: str):
        self.path = path
        self.lines = [_Line(path, number, raw.rstrip("\r")) for number, raw in enumerate(text.split("\n"), 1)]
        self.problem = Problem(path=path)
        self.declared: dict[str, _Declared] = {}
        self.upcoming = _scan_declarations(self.lines)
        self.title_line: int | None = None
        self.depths: dict[str, int] = {}  # definition -> length of its longest chain
        self.generated: dict[str, str] = {}  # argument names of the generated code -> what

    def run(self) -> Problem:
        statements = 0
        for line in self.lines:
            title = _TITLE.match(line.code)
            if title:  # free text to the end of the line: never tokenized
                if self.title_line is not None:
                    raise line.error(f"the title is already set at line {self.title_line}",
                                     title.start(1) + 1)
                self.title_line = line.number
                self.problem.title = title.group(2).strip()
                _check_printable(line, title.group(2), title.start(2))
                statements += 1
                continue
            notation = _NOTATION.match(line.code)
            if notation:
                self._notation(line, notation)
                statements += 1
                continue
            if _CLAIM.match(line.code):
                self._claim(line)
                statements += 1
                continue
            cursor = _Cursor(line, _tokenize(line))
            if cursor.at("END"):
                continue
            self._statement(line, cursor)
            statements += 1
        asked = {(g.kind, g.of, g.wrt) for g in self.problem.goals}
        for claim in self.problem.claims:  # a claim about a result no goal asks for asks
            key = (claim.goal.kind, claim.goal.of, claim.goal.wrt)
            if key not in asked:
                asked.add(key)
                self.problem.goals.append(claim.goal)
        if not statements:
            raise InputError(
                f"no statements in {self.path}", Location(self.path, 1, 1, self.lines[0].text),
                hint="a derivation file declares dims and inputs, defines tensors and asks for "
                     "gradients: see CONTRACT section 1",
            )
        return self.problem

    def _statement(self, line: _Line, cursor: _Cursor) -> None:
        first = cursor.peek()
        if first.kind != "NAME":
            raise cursor.unexpected(f"a definition or one of {_STATEMENT_WORDS}", hint=_DEFINITION_HINT)
        handler = self._HANDLERS.get(first.text, _FileParser._definition)
        handler(self, line, cursor)

    # -- names --

    def is_tensor(self, name: str) -> bool:
        return name in self.problem.inputs or name in self.problem.definitions

    def is_function(self, name: str) -> bool:
        return name in LANGUAGE_FUNCTIONS or name in self.problem.functions

    def is_value_name(self, name: str) -> bool:
        return name in self.problem.dims or self.is_tensor(name)

    def missing_name_error(self, line: _Line, name: str, column: int, kind: str) -> InputError:
        """The error for a name that is not known (yet) at this line."""
        if kind == "tensor" and name in self.problem.dims:
            return line.error(f"{name} is a dim, not a tensor", column)
        if kind == "tensor" and self.is_function(name):
            return line.error(f"{name} is a function, not a tensor", column)
        later = self.upcoming.get(name)
        if later is not None and later > line.number:
            return line.error(
                f"{name} is defined later, at line {later}; define it before using it", column
            )
        if kind == "function":
            return line.error(f"unknown function {name}; declare it with `function {name}`", column)
        hints = {
            "tensor": f"declare it with `input {name}[...]` or define it before this line",
            "name": f"declare it with `input {name}` (a scalar) or `dims {name}`, or define it first",
            "dim": f"declare it with `dims {name}`",
        }
        return line.error(f"unknown {kind} {name}", column, hint=hints.get(kind))

    def _check_new_name(self, line: _Line, token: Token) -> None:
        """A name being declared or defined: an identifier that is free, here and in the
        generated NumPy code (where it becomes an argument or an assigned name)."""
        name = token.text
        if not _NAME.match(name) or "__" in name:
            raise line.error(f"{name} is not a valid name", token.column, hint=_NAME_HINT)
        if name in LANGUAGE_FUNCTIONS:
            raise line.error(f"{name} is a builtin function and cannot be used as a name", token.column)
        if name in CONSTANTS:
            raise line.error(f"{name} is a constant and cannot be used as a name", token.column)
        if name in KEYWORDS:
            raise line.error(f"{name} is a reserved word", token.column, hint="choose another name")
        generated = self.generated.get(name)
        base, order = naming.split_derivative_function(name)
        if generated is None and order and base in self.problem.functions:
            generated = f"derivative {order} of function {base}"
        if generated is not None:
            raise line.error(f"{name} is the name the generated NumPy code gives to {generated}",
                             token.column, hint="choose another name")
        earlier = self.declared.get(name)
        if earlier is not None:
            raise line.error(
                f"{name} is already defined at line {earlier.location.line} "
                f"(as {_KIND_PHRASES[earlier.kind]})",
                token.column, hint="choose another name",
            )

    def _reserve_generated(self, line: _Line, column: int, name: str, what: str) -> None:
        """Keep ``name`` (an argument of the generated code, such as ``dL_dY`` or ``h_prime``)
        from ever naming something declared in the file."""
        earlier = self.declared.get(name)
        if earlier is not None:
            raise line.error(
                f"the generated NumPy code would give {what} the name {name}, "
                f"which is already {_KIND_PHRASES[earlier.kind]} (line {earlier.location.line})",
                column, hint=f"rename {name}",
            )
        self.generated[name] = f"{what} (line {line.number})"

    def _declare(self, name: str, kind: str, location: Location) -> None:
        self.declared[name] = _Declared(kind, location)

    # -- keyword statements --

    def _notation(self, line: _Line, match: re.Match) -> None:
        """``notation: sums = limits, cases = split`` (indexcalc.notation lists the options)."""
        try:
            self.problem.notation = self.problem.notation.read(match.group(2))
        except NotationError as error:
            raise line.error(str(error), match.start(2) + error.column + 1,
                             hint=error.hint) from None

    def _title(self, line: _Line, cursor: _Cursor) -> None:
        cursor.next()
        colon = cursor.expect(":", "':' after title", hint="write  title: some text")
        if self.title_line is not None:
            raise cursor.error(f"the title is already set at line {self.title_line}", colon)
        self.title_line = line.number
        self.problem.title = line.code[colon.column:].strip()

    def _dims(self, line: _Line, cursor: _Cursor) -> None:
        cursor.next()

        def dim() -> None:
            token = cursor.expect("NAME", "a dim name", hint="write  dims S=8, M")
            self._check_new_name(line, token)
            size = None
            if cursor.accept("="):
                if cursor.at("NUM") and cursor.peek(1).kind in (",", "END"):
                    size = self._dim_size(line, cursor, token.text)
                else:
                    size = self._dim_formula(line, cursor, token.text)
            self.problem.dims[token.text] = size
            self._declare(token.text, "dim", line.at(token.column))

        _comma_separated(cursor, dim)
        cursor.expect("END", "',' or end of line")

    def _dim_formula(self, line: _Line, cursor: _Cursor, name: str) -> int | None:
        """``U = T - K + 1``: the formula of a dim defined from dims declared before it;
        its size when theirs are given (at least 1), else None."""
        start = cursor.peek().column

        def expression():
            node = term()
            while cursor.at("+") or cursor.at("-"):
                op = cursor.next().text
                node = (op, node, term())
            return node

        def term():
            node = factor()
            while cursor.at("*") or cursor.at("/"):
                op = cursor.next()
                if op.text == "/":
                    second = cursor.accept("/")
                    if second is None or second.column != op.column + 1:
                        raise line.error("a dim is a whole number: divide with //", op.column,
                                         hint=f"write  dims {name} = (T - K) // 2 + 1")
                    node = ("//", node, factor())
                else:
                    node = ("*", node, factor())
            return node

        def factor():
            if cursor.accept("("):
                node = expression()
                cursor.expect(")", "')' to close the bracket")
                return node
            token = cursor.peek()
            if token.kind == "NUM":
                cursor.next()
                if not token.text.isdigit():
                    raise line.error("a dim formula takes whole numbers", token.column)
                return ("num", int(token.text))
            if token.kind == "NAME":
                cursor.next()
                if token.text == name:
                    raise line.error(f"{name} is defined from itself", token.column)
                if token.text not in self.problem.dims:
                    raise self.missing_name_error(line, token.text, token.column, "dim")
                return ("dim", token.text)
            raise cursor.unexpected("a dim, a whole number or '('",
                                    hint=f"write  dims {name} = T - K + 1")

        tree = expression()
        if not (cursor.at(",") or cursor.at("END")):
            raise cursor.unexpected("an operator (+ - * //), ',' or end of line")
        end = cursor.peek().column
        formula = DimFormula(tree, line.code[start - 1:end - 1].strip(), line.at(start))
        size = formula.evaluate(self.problem.dims)
        if size is not None and size < 1:
            raise line.error(f"{name} = {formula.text} is {size} for the sizes given; a dim "
                             "has at least one entry", start)
        if size is not None and size > MAX_DIM_SIZE:
            raise line.error(f"{name} = {formula.text} is too large ({size:,}; at most "
                             f"{MAX_DIM_SIZE:,})", start)
        self.problem.dim_formulas[name] = formula
        return size

    @staticmethod
    def _dim_size(line: _Line, cursor: _Cursor, name: str) -> int:
        token = cursor.expect("NUM", f"the size of {name}")
        if not token.text.isdigit() or int(token.text) == 0:
            raise line.error(f"the size of {name} must be a positive whole number", token.column)
        if len(token.text) > len(str(MAX_DIM_SIZE)) or int(token.text) > MAX_DIM_SIZE:
            raise line.error(f"the size of {name} is too large (at most {MAX_DIM_SIZE:,})",
                             token.column,
                             hint="the size only sets what the check uses; leave it out "
                                  "for a small one")
        return int(token.text)

    def _input(self, line: _Line, cursor: _Cursor) -> None:
        cursor.next()

        def tensor() -> None:
            token = cursor.expect("NAME", "an input name", hint="write  input X[S,M], lam")
            self._check_new_name(line, token)
            dims: list[str] = []
            if cursor.accept("["):
                dims = _comma_separated(cursor, lambda: self._dim_reference(line, cursor))
                cursor.expect("]", "',' or ']' after a dim")
            word = cursor.accept("NAME", "symmetric")
            symmetric = word is not None
            if word is not None:
                if len(dims) != 2 or dims[0] != dims[1]:
                    raise line.error(f"symmetric needs a square input of two equal dims, "
                                     f"not {_shape(token.text, tuple(dims))}", word.column,
                                     hint=f"write  input {token.text}[N,N] symmetric")
            location = line.at(token.column)
            self.problem.inputs[token.text] = InputTensor(token.text, tuple(dims), location,
                                                          symmetric)
            self._declare(token.text, "input", location)

        _comma_separated(cursor, tensor)
        cursor.expect("END", "',' or end of line")

    def _dim_reference(self, line: _Line, cursor: _Cursor) -> str:
        token = cursor.expect("NAME", "a dim name")
        name = token.text
        if name in self.problem.dims:
            return name
        if self.is_tensor(name):
            raise line.error(f"{name} is a tensor, not a dim", token.column)
        raise self.missing_name_error(line, name, token.column, "dim")

    def _function(self, line: _Line, cursor: _Cursor) -> None:
        cursor.next()

        def function() -> None:
            token = cursor.expect("NAME", "a function name", hint="write  function h")
            if token.text in LANGUAGE_FUNCTIONS:
                raise line.error(f"{token.text} is a builtin function; it needs no declaration", token.column)
            self._check_new_name(line, token)
            location = line.at(token.column)
            for order, what in ((1, "the derivative"), (2, "the second derivative"),
                                (3, "the third derivative")):
                self._reserve_generated(line, token.column,
                                        naming.derivative_function(token.text, order),
                                        f"{what} of function {token.text}")
            self.problem.functions[token.text] = location
            self._declare(token.text, "function", location)

        _comma_separated(cursor, function)
        cursor.expect("END", "',' or end of line")

    def _assume(self, line: _Line, cursor: _Cursor) -> None:
        keyword = cursor.next()
        text = line.code[keyword.column - 1 + len("assume"):].strip()
        expressions = _ExprParser(cursor, self.is_value_name)
        lhs = expressions.expression()
        cursor.expect("=", "'=' between the two sides of the assumption",
                      hint="write  assume sum_c T[s,c] = 1")
        rhs = expressions.expression()
        cursor.expect("END", "an operator or end of line")
        lhs_term, rhs_term = _IndexAnalysis(self, line, defining=None).assumption(lhs, rhs)
        # T T is written T^2 where derivations meet it, so the pattern must say T^2 too
        lhs_term, rhs_term = _collect_powers(lhs_term), _collect_powers(rhs_term)
        if not (lhs_term.tensor_names or rhs_term.tensor_names):
            raise line.error("an assumption must be about tensors: this one relates numbers "
                             "only" + (", and is false" if lhs_term != rhs_term else ""),
                             keyword.column + len("assume") + 1,
                             hint="write  assume sum_c T[s,c] = 1")
        start = keyword.column + len("assume") + 1
        defined = sorted((lhs_term.tensor_names | rhs_term.tensor_names)
                         & set(self.problem.definitions))
        if defined:
            # the check draws inputs to make an assumption true; a defined tensor's values
            # follow from its definition, so the assumption could not be made to hold
            name = defined[0]
            raise line.error(
                f"an assumption may only be about inputs; {name} is defined at line "
                f"{self.problem.definitions[name].location.line}", start,
                hint="state the assumption about the inputs it follows from")
        if (isinstance(lhs_term, Tensor) and isinstance(rhs_term, Tensor)
                and lhs_term.name == rhs_term.name and lhs_term.indices != rhs_term.indices
                and set(lhs_term.indices) == set(rhs_term.indices)):
            # S[i,j] = S[j,i] rewrites forever; symmetric inputs come with CONTRACT section 3
            raise line.error(f"a symmetry of {lhs_term.name} cannot be assumed yet", start,
                             hint="derive with the unconstrained input, as the Matrix "
                                  "Cookbook states its results")
        self.problem.assumptions.append(Assumption(lhs_term, rhs_term, text, line.at(keyword.column)))

    def _goal(self, line: _Line, cursor: _Cursor) -> None:
        kind = cursor.next().text
        of = cursor.expect("NAME", f"the name of the tensor to differentiate after {kind}")
        cursor.expect("NAME", f"'wrt' after {kind} {of.text}", text="wrt",
                      hint=f"write  {kind} {of.text} wrt X")
        targets = _comma_separated(cursor, lambda: cursor.expect("NAME", "a tensor name after wrt"))
        cursor.expect("END", "',' or end of line")
        self._check_goal_of(line, kind, of)
        listed: set[str] = set()
        for target in targets:
            self._check_goal_wrt(line, kind, of.text, target, listed)
            listed.add(target.text)
            self.problem.goals.append(Goal(kind, of.text, target.text, line.at(target.column)))

    def _check_goal_of(self, line: _Line, kind: str, of: Token) -> None:
        name = of.text
        definition = self.problem.definitions.get(name)
        if definition is None:
            if name in self.problem.inputs:
                raise line.error(f"{name} is an input; {kind} needs a defined tensor", of.column)
            raise self.missing_name_error(line, name, of.column, "tensor")
        if kind != "jacobian" and definition.indices:
            raise line.error(
                f"{kind} needs a scalar, but {name} has indices "
                f"[{','.join(index.name for index in definition.indices)}]", of.column,
                hint=f"use  jacobian {name} wrt ...  for a tensor",
            )

    def _check_goal_wrt(self, line: _Line, kind: str, of: str, target: Token, listed: set[str]) -> None:
        name = target.text
        if name == of:
            raise line.error(f"cannot take the {kind} of {of} with respect to itself", target.column)
        if name in listed:
            raise line.error(f"{name} is listed twice after wrt", target.column)
        if name in self.problem.inputs:
            return
        definition = self.problem.definitions.get(name)
        if definition is None:
            raise self.missing_name_error(line, name, target.column, "tensor")
        of_line = self.problem.definitions[of].location.line
        if definition.location.line > of_line:
            raise line.error(
                f"{of} cannot depend on {name}: {name} is defined after {of} "
                f"(line {definition.location.line} > line {of_line})", target.column,
            )

    # -- claims (CONTRACT section 5) --

    def _claim(self, line: _Line) -> None:
        code = line.code
        start = code.index("claim")
        m = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)").match(code, start + len("claim"))
        if m is None:
            raise line.error("expected the name of a result after claim", start + len("claim") + 2,
                             hint="write  claim dL_dW = dL_dY.T @ X")
        name, name_column = m.group(1), m.start(1) + 1
        goal = self._claim_goal(line, name, name_column)
        rest = m.end()
        after = code[rest:].lstrip()
        if after.startswith("["):
            self._index_claim(line, goal, name)
            return
        if not after.startswith("="):
            raise line.error(f"expected '=' or '[' after claim {name}",
                             len(code) - len(code[rest:].lstrip()) + 1,
                             hint=f"write  claim {name} = ...  (NumPy) or  claim {name}[i,j] = ...")
        equals = code.index("=", rest)
        text = code[equals + 1:]
        try:
            parsed = numpy_text.parse(text, self._claim_name, self._claim_function)
        except numpy_text.NumpyTextError as error:
            raise line.error(error.message, equals + 2 + error.offset, hint=error.hint) from None
        self.problem.claims.append(Claim(name, goal, parsed.text, line.at(start + 1), tree=parsed))

    def _claim_name(self, name: str) -> bool:
        """A bare name a matrix claim may read: a tensor, a dim, an upstream gradient."""
        return self.is_value_name(name) or name in self._upstream()

    def _claim_function(self, name: str) -> bool:
        """``h`` or ``h_prime``, ``h_prime2``: a declared function or one of its derivatives,
        spelled as the generated code spells them."""
        return naming.split_derivative_function(name)[0] in self.problem.functions

    def _upstream(self) -> dict[str, tuple[str, str]]:
        """The upstream gradients of the file's ``loss(...)`` definitions, by code name."""
        return {naming.gradient(d.name, a): (d.name, a)
                for d in self.problem.definitions.values() for a in d.loss_args}

    def _claim_goal(self, line: _Line, name: str, column: int) -> Goal:
        """The result a claim names: ``dL_dW`` (grad or jacobian) or ``d2f_dx2`` (hessian)."""
        if name in self._upstream():
            raise line.error(f"{name} is the upstream gradient of an unspecified loss: it is "
                             "given, not derived", column)
        tensors = list(self.problem.inputs) + list(self.problem.definitions)
        for of, definition in self.problem.definitions.items():
            for wrt in tensors:
                if wrt == of:
                    continue
                if name == naming.hessian(of, wrt) and not definition.indices:
                    kind = "hessian"
                elif name == naming.gradient(of, wrt):
                    kind = "jacobian" if definition.indices else "grad"
                else:
                    continue
                token = Token("NAME", wrt, column)
                self._check_goal_wrt(line, kind, of, token, set())
                existing = [g for g in self.problem.goals if (g.kind, g.of, g.wrt) == (kind, of, wrt)]
                return existing[0] if existing else Goal(kind, of, wrt, line.at(column))
        raise line.error(f"no result is named {name}", column,
                         hint="name a result as the JSON does: dL_dW (grad or jacobian of L "
                              "with respect to W), d2f_dx2 (hessian)")

    def _index_claim(self, line: _Line, goal: Goal, name: str) -> None:
        cursor = _Cursor(line, _tokenize(line))
        keyword = cursor.next()  # claim
        cursor.next()  # the name
        cursor.expect("[", "'['")
        lhs = _comma_separated(cursor, lambda: _parse_index(cursor))
        cursor.expect("]", "',' or ']' after an index")
        _check_distinct(line, lhs)
        equals = cursor.expect("=", f"'=' after {name}[...]")
        grads = self._upstream()
        rhs = _ExprParser(cursor, lambda n: self.is_value_name(n) or n in grads).expression()
        cursor.expect("END", "an operator or end of line")
        dims = self.problem.tensor_dims(goal.of) if goal.kind == "jacobian" else ()
        dims += self.problem.tensor_dims(goal.wrt) * (2 if goal.kind == "hessian" else 1)
        mismatch = ""
        if len(lhs) != len(dims):
            mismatch = (f"the claim gives {name} {len(lhs)} "
                        f"{'index' if len(lhs) == 1 else 'indices'}, the result has {len(dims)}")
            dims = ()
        analysis = _IndexAnalysis(self, line, defining=None, grads=grads)
        indices, term = analysis.claim(lhs, dims, rhs)
        text = line.code[equals.column:].strip()
        self.problem.claims.append(Claim(name, goal, text, line.at(keyword.column),
                                         indices=indices, term=term, rank_mismatch=mismatch))

    # -- definitions --

    def _definition(self, line: _Line, cursor: _Cursor) -> None:
        name = cursor.next()
        self._check_new_name(line, name)
        lhs: list[RIndex] = []
        if cursor.accept("["):
            lhs = _comma_separated(cursor, lambda: _parse_index(cursor))
            cursor.expect("]", "',' or ']' after an index")
            _check_distinct(line, lhs)
        cursor.expect("=", f"'=' after {name.text}", hint=_DEFINITION_HINT)
        location = line.at(name.column)
        if cursor.at("NAME", "loss") and cursor.peek(1).kind == "(":
            definition = self._opaque_loss(line, cursor, name.text, lhs, location)
        else:
            rhs = _ExprParser(cursor, self.is_value_name).expression()
            cursor.expect("END", "an operator or end of line")
            indices, body = _IndexAnalysis(self, line, defining=name.text).definition(lhs, rhs)
            definition = Definition(name.text, indices, body, location)
        self._check_depth(line, name, definition)
        self.problem.definitions[name.text] = definition
        self._declare(name.text, "definition", location)

    def _check_depth(self, line: _Line, name: Token, definition: Definition) -> None:
        """Refuse a chain of more than MAX_DEFINITION_DEPTH definitions built on each other."""
        used = definition.loss_args if definition.is_opaque_loss else definition.body.tensor_names
        depth = 1 + max((self.depths.get(u, 0) for u in used), default=0)
        if depth > MAX_DEFINITION_DEPTH:
            raise line.error(
                f"{name.text} ends a chain of {depth} definitions built on each other "
                f"(at most {MAX_DEFINITION_DEPTH})", name.column,
                hint="indexcalc follows such chains one definition at a time",
            )
        self.depths[name.text] = depth

    def _opaque_loss(self, line: _Line, cursor: _Cursor, name: str, lhs: list[RIndex],
                     location: Location) -> Definition:
        """``L = loss(Y, Z)``: an unspecified scalar function of whole tensors."""
        if lhs:
            raise line.error(
                "loss(...) is a scalar; define it without indices", lhs[0].column,
                hint=f"write  {name} = loss(...)",
            )
        cursor.next()  # loss
        cursor.next()  # (
        arguments = _comma_separated(cursor, lambda: cursor.expect("NAME", "the name of a tensor"))
        cursor.expect(")", "',' or ')' after a tensor name",
                      hint="the arguments of loss are bare tensor names")
        cursor.expect("END", "end of line after loss(...)", hint="loss(...) must be the whole right side")
        seen: set[str] = set()
        for argument in arguments:
            if argument.text == name:
                raise line.error(f"{name} refers to itself", argument.column)
            if not self.is_tensor(argument.text):
                raise self.missing_name_error(line, argument.text, argument.column, "tensor")
            if argument.text in seen:
                raise line.error(f"{argument.text} is given to loss twice", argument.column)
            seen.add(argument.text)
            self._reserve_generated(line, argument.column, naming.gradient(name, argument.text),
                                    f"the upstream gradient d{name}/d{argument.text}")
        return Definition(name, (), None, location, loss_args=tuple(a.text for a in arguments))

    _HANDLERS = {
        "title": _title,
        "dims": _dims,
        "input": _input,
        "function": _function,
        "assume": _assume,
        "grad": _goal,
        "jacobian": _goal,
        "hessian": _goal,
    }


_KIND_PHRASES = {"dim": "a dim", "input": "an input", "function": "a function", "definition": "a definition"}


def _check_distinct(line: _Line, indices: list[RIndex]) -> None:
    seen: set[str] = set()
    for index in indices:
        if index.name in seen:
            raise line.error(f"index {index.name} appears twice on the left side", index.column)
        seen.add(index.name)


# --- entry points -----------------------------------------------------------------------------

def parse_text(text: str, path: str = "<input>") -> Problem:
    """Parse the text of a derivation file; ``path`` is only used in locations and messages."""
    if text.startswith("\ufeff"):
        text = text[1:]
    _check_size(text, path)
    problem = _FileParser(text, path).run()
    # Whether the check can make each assumption hold is decided by drawing its inputs.
    assumptions.validate(problem)
    return problem


_SPLIT_FILE_HINT = "a derivation file is a few dozen lines; split the input into several files"


def _check_size(text: str, path: str) -> None:
    """Refuse text beyond MAX_FILE_BYTES, MAX_LINES or MAX_LINE_LENGTH, at the first excess."""
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise InputError(f"{path} is too large (more than {MAX_FILE_BYTES:,} bytes)",
                         hint=_SPLIT_FILE_HINT)
    lines = text.split("\n")
    if lines[-1] == "":  # the line break that ends the last line starts no new line
        lines.pop()
    for number, line in enumerate(lines, 1):
        if number > MAX_LINES:
            raise InputError(
                f"{path} is too long (more than {MAX_LINES:,} lines)",
                Location(path, number, 1, line.rstrip("\r")),
                hint=_SPLIT_FILE_HINT,
            )
        if len(line.rstrip("\r")) > MAX_LINE_LENGTH:
            raise InputError(
                f"line {number} is too long (more than {MAX_LINE_LENGTH:,} characters)",
                Location(path, number, MAX_LINE_LENGTH + 1, line.rstrip("\r")),
                hint="split the expression into several definitions",
            )


#: The largest size a dim may be given.  The size only sets what the check uses, and the
#: check uses small sizes instead of ones it cannot afford (``check.numeric.check_sizes``);
#: a larger number is a slip (26 nines), not a size.
MAX_DIM_SIZE = 10**12


def parse_file(path: str) -> Problem:
    """Read and parse a derivation file (UTF-8): a regular file, or ``-`` for standard input.

    Anything else (a FIFO, a device, a socket) is refused before it is opened: reading one
    could wait forever.
    """
    if path == "-":
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise InputError(f"standard input is too large (more than {MAX_FILE_BYTES:,} "
                             "bytes)", hint=_SPLIT_FILE_HINT)
        return parse_text(_decode(data, "<stdin>"), "<stdin>")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"cannot read {path}: no such file") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"cannot read {path}: it is a directory")
    if not stat.S_ISREG(mode):
        raise InputError(f"cannot read {path}: not a regular file ({_file_kind(mode)})",
                         hint="give a derivation file, or - to read standard input")
    try:
        with open(path, "rb") as stream:  # never more than the limit
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"cannot read {path}: it is a directory") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{path} is too large (more than {MAX_FILE_BYTES:,} bytes)",
                         hint=_SPLIT_FILE_HINT)
    return parse_text(_decode(data, str(path)), str(path))


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def _decode(data: bytes, path: str) -> str:
    """``data`` as UTF-8; an error points at the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = error.start
        line_start = data.rfind(b"\n", 0, bad) + 1
        line_end = data.find(b"\n", bad)
        line_bytes = data[line_start:] if line_end < 0 else data[line_start:line_end]
        line_number = data.count(b"\n", 0, bad) + 1
        column = len(data[line_start:bad].decode("utf-8")) + 1
        text = line_bytes.decode("utf-8", errors="replace").rstrip("\r")
        raise InputError(
            f"{path} is not UTF-8 text (byte 0x{data[bad]:02x})",
            Location(path, line_number, column, text),
            hint="save the file as UTF-8",
        ) from None
