"""The LaTeX reader: the math of hand derivations, read into expressions (CONTRACT section 6).

A second front end beside the ``.idx`` parser.  ``read_document`` finds the display math
of a Markdown or LaTeX document (``$$...$$``, ``\\[...\\]``, ``equation``, ``align``,
``gather``, ``multline``, with ``split``/``aligned`` inside) and splits it into chains
``A = B = C`` (rows joined by ``&=`` continue a chain; a row or a display that starts with a
relation continues the chain before it); ``read_side`` reads one side of a link
into the small tree below.  The grammar is the documents' (lowest precedence first)::

    expr    := ['+'|'-'] hadamard (('+'|'-') hadamard)*
    hadamard:= product (('\\odot'|'\\circ'|'\\oslash'|'\\otimes') product)*
    product := factor ((juxtaposition | '\\cdot' | '\\times' | '*' | '/') factor)*
    factor  := '-' factor | '\\sum_{...}^{...}' product-rest | postfix
    postfix := atom ('^' script | '_' script | "'")*
    atom    := number | symbol | '(' expr ')' | '[' expr ']' | '{' expr '}'
             | '\\frac{..}{..}' (a derivative when the numerator starts with \\partial)
             | '\\delta_{ij}' | '\\exp' ... | 'e^{..}' | '\\sqrt{..}' | '\\nabla_X F'
             | '\\mathbf{1}' | '\\begin{cases}..' | '\\begin{bmatrix} one cell'

Nothing is guessed: what the grammar does not cover raises ``LatexError`` with its offset
(the checker reports the link as not understood, with the place).  A fraction whose
numerator is a ``\\partial`` and whose denominator is not one (``\\frac{\\partial Y}{h'(X)}``)
is no derivative in any notation: ``LatexError.wrong`` marks it, and the link does not hold.
Which names are tensors, dims and functions comes from the context file (``Vocabulary``),
so that ``h(x)`` is a call and ``y (1 - p)`` a product.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..naming import GREEK_LETTERS

# --- the tree ---------------------------------------------------------------------------------


class Node:
    """A read expression; ``offset`` is where it starts in the document."""

    offset: int


@dataclass(frozen=True)
class Num(Node):
    value: float
    offset: int = 0


@dataclass(frozen=True)
class Sym(Node):
    """A name: ``W_{ij}`` (``indices`` ("i", "j")) or ``\\mathbf{W}`` (``indices`` None)."""

    name: str
    indices: tuple[str, ...] | None
    offset: int = 0


@dataclass(frozen=True)
class Ones(Node):
    """``\\mathbf{1}``: a column of ones, its length taken from what it meets."""

    offset: int = 0


@dataclass(frozen=True)
class Delta(Node):
    a: str
    b: str
    offset: int = 0


@dataclass(frozen=True)
class Call(Node):
    """``\\exp(x)``, ``h(x)``, ``h'(x)`` (``order`` 1): an elementwise function."""

    fn: str
    arg: Node
    order: int = 0
    offset: int = 0


@dataclass(frozen=True)
class Neg(Node):
    arg: Node
    offset: int = 0


@dataclass(frozen=True)
class Add(Node):
    terms: tuple[tuple[int, Node], ...]  # (sign, term)
    offset: int = 0


@dataclass(frozen=True)
class Mul(Node):
    """Juxtaposition, ``\\cdot``: a product of numbers or entries, or a matrix product."""

    a: Node
    b: Node
    offset: int = 0


@dataclass(frozen=True)
class Elementwise(Node):
    """``\\odot`` (op "*"), ``\\oslash`` ("/"), ``\\otimes`` ("kron"), ``\\frac{a}{b}`` ("div")."""

    op: str
    a: Node
    b: Node
    offset: int = 0


@dataclass(frozen=True)
class Pow(Node):
    base: Node
    exponent: Node
    offset: int = 0


@dataclass(frozen=True)
class Transpose(Node):
    arg: Node
    offset: int = 0


@dataclass(frozen=True)
class Inverse(Node):
    arg: Node
    offset: int = 0


@dataclass(frozen=True)
class Condition:
    """``i = k``, ``i \\neq k``, ``u \\le t`` between two indices."""

    a: str
    op: str  # "==" "!=" "<" "<=" ">" ">="
    b: str


@dataclass(frozen=True)
class Sum(Node):
    indices: tuple[str, ...]
    body: Node
    condition: Condition | None = None
    #: the upper limit as written (``S`` of ``\\sum_{s=1}^{S}``), a dim name or None
    upper: str | None = None
    offset: int = 0


@dataclass(frozen=True)
class Deriv(Node):
    """``\\frac{\\partial num}{\\partial var_{indices}}``; ``indices`` None for the whole
    tensor (``\\partial \\mathbf{W}``, ``\\nabla_W``)."""

    num: Node
    var: str
    indices: tuple[str, ...] | None
    offset: int = 0


@dataclass(frozen=True)
class Entry(Node):
    """``[M]_{ij}``, ``(x^T G)_{ij}``: an entry of a matrix expression."""

    arg: Node
    indices: tuple[str, ...]
    offset: int = 0


@dataclass(frozen=True)
class Trace(Node):
    arg: Node
    offset: int = 0


@dataclass(frozen=True)
class Norm(Node):
    """``\\|x\\|`` (Euclidean, or Frobenius for a matrix) and ``|x|`` (``kind`` "abs")."""

    arg: Node
    kind: str = "norm"
    offset: int = 0


@dataclass(frozen=True)
class Cases(Node):
    branches: tuple[tuple[Node, Condition | None], ...]  # None: otherwise
    offset: int = 0


class LatexError(Exception):
    """What could not be read, and where (offset into the document).  ``wrong``: the
    notation itself is a mistake (a derivative symbol without a variable)."""

    def __init__(self, message: str, offset: int, wrong: bool = False):
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.wrong = wrong


@dataclass(frozen=True)
class Vocabulary:
    """The context file's names: which symbols are tensors, dims and functions."""

    tensors: frozenset[str]
    dims: frozenset[str]
    functions: frozenset[str]  # declared with ``function h``
    #: what each defined tensor depends on: ``S(X)`` for a tensor S defined from X is S
    #: written as a function of X, not the product S X
    reaches: dict = field(default_factory=dict)


# --- tokens -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tok:
    kind: str  # "cmd" (\name), "letter", "num", "char", "end"
    text: str
    offset: int


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<cmd>\\(?:[A-Za-z]+|.))
  | (?P<num>[0-9]+(?:\.[0-9]+)?)
  | (?P<letter>[A-Za-z])
  | (?P<char>.)
""", re.VERBOSE | re.DOTALL)

#: Commands that only space or size things: dropped.
_SPACING = {r"\,", r"\;", r"\:", r"\!", r"\ ", r"\quad", r"\qquad", r"\left", r"\right",
            r"\big", r"\Big", r"\bigg", r"\Bigg", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr",
            r"\biggl", r"\biggr", r"\Biggl", r"\Biggr", r"\displaystyle", r"\textstyle",
            r"\middle", r"\nonumber", r"\notag", r"\limits", r"\nolimits"}
_GREEK = frozenset(GREEK_LETTERS)
#: \exp, \log ... : the language's function of each.
_FUNCTIONS = {r"\exp": "exp", r"\log": "log", r"\ln": "log", r"\tanh": "tanh",
              r"\sin": "sin", r"\cos": "cos", r"\sinh": "sinh", r"\cosh": "cosh"}
#: Names written upright (\operatorname{relu}, \mathrm{softplus}) that are functions.
_NAMED_FUNCTIONS = {"relu": "relu", "ReLU": "relu", "softplus": "softplus", "erf": "erf",
                    "sigmoid": "sigmoid", "exp": "exp", "log": "log", "tanh": "tanh",
                    "abs": "abs", "sqrt": "sqrt", "diag": "diag", "Diag": "diag"}
_FONTS = {r"\mathbf", r"\boldsymbol", r"\bm", r"\mathit", r"\mathrm", r"\mathsf", r"\vec",
          r"\mathbb", r"\operatorname", r"\text", r"\textbf", r"\textrm", r"\mathcal"}
_HADAMARD = {r"\odot": "*", r"\circ": "*", r"\oslash": "/", r"\otimes": "kron"}
_PRODUCT = {r"\cdot", r"\times", "*"}
_COMPARE = {"=": "==", r"\neq": "!=", r"\ne": "!=", "<": "<", ">": ">", r"\le": "<=",
            r"\leq": "<=", r"\ge": ">=", r"\geq": ">="}
_TRANSPOSE = {"T", r"\top", r"\intercal", r"\mathsf{T}", r"\mathrm{T}"}


def tokenize(text: str, start: int = 0, macros: dict[str, str] | None = None,
             _depth: int = 0) -> list[Tok]:
    """The tokens of ``text`` (found at ``start`` in the document); a command defined in
    the document without arguments (``\\newcommand{\\R}{\\mathbb{R}}``) is replaced by
    the tokens of its body, placed where the command is."""
    tokens = []
    after_delimiter = False  # \left. and \right. are invisible delimiters
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "space":
            continue
        value = m.group()
        if after_delimiter and value == ".":
            after_delimiter = False
            continue
        after_delimiter = value in (r"\left", r"\right", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr")
        if kind == "cmd" and value in _SPACING:
            continue
        if kind == "char" and value == "~":
            continue
        if kind == "cmd" and macros and value in macros and _depth < 10:
            tokens.extend(Tok(t.kind, t.text, start + m.start())
                          for t in tokenize(macros[value], 0, macros, _depth + 1)[:-1])
            continue
        tokens.append(Tok(kind, value, start + m.start()))
    tokens.append(Tok("end", "", start + len(text)))
    return tokens


# --- the parser -------------------------------------------------------------------------------

class _Parser:
    def __init__(self, tokens: list[Tok], vocabulary: Vocabulary):
        self.tokens = tokens
        self.pos = 0
        self.vocabulary = vocabulary
        self.norms = 0  # inside how many \| ... \| (a \| there closes, elsewhere it opens)

    # tokens
    def peek(self, ahead: int = 0) -> Tok:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Tok:
        tok = self.peek()
        self.pos += 1
        return tok

    def at(self, *texts: str) -> bool:
        return self.peek().text in texts and self.peek().kind != "end"

    def expect(self, text: str, what: str) -> Tok:
        if not self.at(text):
            self.fail(f"expected {what}")
        return self.next()

    def fail(self, message: str, tok: Tok | None = None, wrong: bool = False):
        tok = tok or self.peek()
        found = "the end" if tok.kind == "end" else f"'{tok.text}'"
        raise LatexError(f"{message} (at {found})", tok.offset, wrong)

    # grammar
    def whole(self) -> Node:
        node = self.expression()
        if self.peek().kind == "cmd" and self.peek().text not in _RELATIONS:
            self.atom()  # says what the command is (\dots: an elided list, ...)
        if self.peek().kind != "end":
            self.fail("cannot read this here")
        return node

    def expression(self) -> Node:
        start = self.peek().offset
        terms: list[tuple[int, Node]] = []
        sign = 1
        if self.at("+", "-"):
            sign = -1 if self.next().text == "-" else 1
        terms.append((sign, self.hadamard()))
        while self.at("+", "-"):
            sign = -1 if self.next().text == "-" else 1
            terms.append((sign, self.hadamard()))
        if len(terms) == 1 and terms[0][0] == 1:
            return terms[0][1]
        if len(terms) == 1:
            return Neg(terms[0][1], start)
        return Add(tuple(terms), start)

    def hadamard(self) -> Node:
        node = self.product()
        while self.peek().text in _HADAMARD:
            op = _HADAMARD[self.next().text]
            node = Elementwise(op, node, self.product(), node.offset)
        return node

    def _starts_factor(self) -> bool:
        tok = self.peek()
        if tok.kind in ("letter", "num"):
            return True
        if tok.kind == "char":
            return tok.text in "([{"
        if tok.kind == "cmd":
            return not (tok.text in _HADAMARD or tok.text in _RELATIONS or tok.text in
                        (r"\in", r"\\", r"\end", r"\text", r"\dots", r"\cdots", r"\ldots",
                         r"\vdots", r"\ddots", r"\rVert", r"\rvert")
                        or (self.norms and tok.text in (r"\|", r"\Vert", r"\vert"))
                        or tok.text in _PRODUCT)
        return False

    def product(self) -> Node:
        node = self.factor()
        while True:
            if self.at(*_PRODUCT):
                self.next()
                node = Mul(node, self.factor(), node.offset)
            elif self.at("/"):
                self.next()
                node = Elementwise("div", node, self.factor(), node.offset)
            elif self._starts_factor():
                node = Mul(node, self.factor(), node.offset)
            else:
                return node

    def factor(self) -> Node:
        tok = self.peek()
        if self.at("-"):
            self.next()
            return Neg(self.factor(), tok.offset)
        if self.at("+"):
            self.next()
            return self.factor()
        if self.at(r"\sum"):
            return self.sum()
        return self.postfix(self.atom())

    def sum(self) -> Node:
        tok = self.next()
        if not self.at("_"):
            self.fail(r"expected the index of \sum, as \sum_{s}")
        self.next()
        indices, condition = self._sum_subscript()
        upper = None
        if self.at("^"):
            self.next()
            upper_tokens = self._group_tokens()
            names = [t.text for t in upper_tokens if t.kind == "letter"]
            if len(upper_tokens) == 1 and names:
                upper = names[0]
            elif upper_tokens:
                upper = "".join(t.text for t in upper_tokens)
        body = self.product()
        return Sum(tuple(indices), body, condition, upper, tok.offset)

    def _sum_subscript(self) -> tuple[list[str], Condition | None]:
        tokens = self._group_tokens()
        if not tokens:
            self.fail(r"empty subscript of \sum")
        # s=1 (a lower limit), i \neq k (a condition), s,c or sc (several indices)
        for k, t in enumerate(tokens):
            if t.text in _COMPARE:
                left = [_index_name(x) for x in tokens[:k] if x.text != ","]
                right = tokens[k + 1:]
                if t.text == "=":  # a lower limit: must be 1 (or 0)
                    if not (len(right) == 1 and right[0].text in ("1", "0")):
                        self.fail("a sum from other than 1 is not read", right[0] if right else t)
                    return left, None
                if len(left) != 1 or len(right) != 1:
                    self.fail("a sum's condition compares two indices", t)
                return left, Condition(left[0], _COMPARE[t.text], _index_name(right[0]))
        names = [_index_name(x) for x in tokens if x.text != ","]
        if any(n is None for n in names):
            bad = next(x for x in tokens if x.text != "," and _index_name(x) is None)
            self.fail("a sum's index is a letter", bad)
        return names, None

    def _group_tokens(self) -> list[Tok]:
        """The tokens of ``{...}`` (balanced) or of the one token that follows (one digit
        of a number: ``\\frac12`` is 1/2, ``x^23`` is x^2 3)."""
        if not self.at("{"):
            tok = self.peek()
            if tok.kind == "num" and len(tok.text) > 1 and "." not in tok.text:
                self.tokens[self.pos] = Tok("num", tok.text[1:], tok.offset + 1)
                return [Tok("num", tok.text[0], tok.offset)]
            tok = self.next()
            if tok.kind == "end":
                self.fail("expected a subscript or superscript", tok)
            if tok.kind == "cmd" and tok.text in _FONTS:  # ^\mathsf{T}
                inner = self._group_tokens()
                return [Tok("cmd", tok.text + "{" + "".join(t.text for t in inner) + "}",
                            tok.offset)]
            return [tok]
        open_ = self.next()
        depth = 1
        out = []
        while True:
            tok = self.next()
            if tok.kind == "end":
                self.fail("unbalanced braces", open_)
            if tok.text == "{":
                depth += 1
            elif tok.text == "}":
                depth -= 1
                if depth == 0:
                    return out
            out.append(tok)

    def _sub_parser(self, tokens: list[Tok]) -> "_Parser":
        end = tokens[-1].offset + len(tokens[-1].text) if tokens else self.peek().offset
        return _Parser(tokens + [Tok("end", "", end)], self.vocabulary)

    def _group_expression(self) -> Node:
        tokens = self._group_tokens()
        if not tokens:
            self.fail("an empty group")
        return self._sub_parser(tokens).whole()

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at("^"):
                tok = self.next()
                script = self._group_tokens()
                text = "".join(t.text for t in script)
                if text in _TRANSPOSE:
                    node = Transpose(node, node.offset)
                elif text == "-1":
                    node = Inverse(node, node.offset)
                else:  # X^{\circ 2}: a Hadamard power, which is how powers are read
                    if script and script[0].text == r"\circ" and len(script) > 1:
                        script = script[1:]
                    node = Pow(node, self._sub_parser(script).whole(), tok.offset)
            elif self.at("_"):
                tok = self.next()
                indices = self._indices(self._group_tokens(), tok)
                node = Entry(node, indices, node.offset)
            else:
                return node

    def _indices(self, tokens: list[Tok], where: Tok) -> tuple[str, ...]:
        out = []
        for t in tokens:
            if t.text == ",":
                continue
            name = _index_name(t)
            if name is None:
                self.fail("an index is a lower-case letter (a numbered entry such as "
                          "Y_{s1} is not read)", t)
            out.append(name)
        if not out:
            self.fail("an empty subscript", where)
        return tuple(out)

    def atom(self) -> Node:
        tok = self.peek()
        if tok.kind == "num":
            self.next()
            return Num(float(tok.text), tok.offset)
        if tok.text in ("(", "["):
            self.next()
            inner = self.expression()
            self.expect(")" if tok.text == "(" else "]", f"'{')' if tok.text == '(' else ']'}'")
            return inner
        if tok.text == "{":
            return self._group_expression()
        if tok.text == "|":
            self.next()
            inner = self.expression()
            self.expect("|", "'|'")
            return Norm(inner, "abs", tok.offset)
        if tok.text == r"\{":
            self.next()
            inner = self.expression()
            self.expect(r"\}", r"'\}'")
            return inner
        if tok.kind == "letter":
            return self.symbol()
        if tok.kind == "cmd":
            return self.command()
        self.fail("expected a value")

    def command(self) -> Node:
        tok = self.peek()
        name = tok.text
        if name in (r"\frac", r"\dfrac", r"\tfrac"):
            return self.fraction()
        if name == r"\delta":
            self.next()
            if not self.at("_"):
                if tok.text[1:] in self.vocabulary.tensors:
                    return Sym("delta", None, tok.offset)
                self.fail(r"expected the indices of \delta, as \delta_{ij}")
            under = self.next()
            indices = self._indices(self._group_tokens(), under)
            if len(indices) != 2:
                self.fail(r"\delta takes two indices", under)
            return Delta(indices[0], indices[1], tok.offset)
        if name in _FUNCTIONS:
            self.next()
            return self.call(_FUNCTIONS[name], tok)
        if name == r"\sqrt":
            self.next()
            if self.at("["):
                self.fail("only square roots are read")
            return Call("sqrt", self._group_expression(), 0, tok.offset)
        if name == r"\nabla":
            self.next()
            if not self.at("_"):
                self.fail(r"\nabla needs the variable as a subscript: \nabla_{W} L")
            self.next()
            var = self._variable(self._group_tokens(), tok)
            if var[1] is not None:
                self.fail(r"\nabla_{W} is of a whole tensor")
            return Deriv(self.postfix(self.atom()), var[0], None, tok.offset)
        if name in (r"\operatorname", r"\mathrm", r"\text") and self._is_named_function():
            self.next()
            fn = "".join(t.text for t in self._group_tokens())
            if fn == "tr":
                return Trace(self._argument(tok), tok.offset)
            return self.call(_NAMED_FUNCTIONS[fn], tok)
        if name in (r"\hat", r"\bar", r"\tilde", r"\widehat", r"\overline", r"\widetilde"):
            return self.accented()
        if name in (r"\|", r"\lVert", r"\Vert", r"\lvert", r"\vert"):
            return self.norm()
        if name in (r"\mathbf", r"\boldsymbol", r"\bm", r"\mathbb") and self._is_one():
            self.next()
            self._group_tokens()
            return Ones(tok.offset)
        if name == r"\begin":
            return self.environment()
        if name in (r"\text", r"\textbf", r"\textrm", r"\textit", r"\mbox"):
            self.fail("text inside the math is not read")
        if name in _FONTS or name[1:] in _GREEK or name == r"\ell":
            return self.symbol()
        if name in (r"\dots", r"\cdots", r"\ldots", r"\vdots", r"\ddots"):
            self.fail("an elided list (\\dots) is not read")
        if name == r"\partial":
            self.fail(r"a \partial outside a fraction is not read", wrong=False)
        self.fail(f"{name} is not read")

    def accented(self) -> Node:
        """``\\hat{y}``: the file's ``yhat`` (or ``y_hat``); ``\\bar{x}``: ``xbar``."""
        tok = self.next()
        accent = {"widehat": "hat", "overline": "bar", "widetilde": "tilde"}.get(
            tok.text[1:], tok.text[1:])
        inner = "".join(t.text.lstrip("\\") for t in self._group_tokens()
                        if t.text not in (r"\mathbf", r"\boldsymbol", "{", "}"))
        for name in (inner + accent, f"{inner}_{accent}", accent + inner):
            if name in self.vocabulary.tensors:
                if self.at("_"):
                    under = self.next()
                    return Sym(name, self._indices(self._group_tokens(), under), tok.offset)
                return Sym(name, None, tok.offset)
        self.fail(f"{tok.text}{{{inner}}} names no tensor of the context file (as "
                  f"{inner}{accent} or {inner}_{accent})", tok)

    def norm(self) -> Node:
        """``\\|x\\|``, ``\\lVert x \\rVert``, with ``_2`` or ``_F``; ``|x|`` is ``abs``."""
        tok = self.next()
        closer = {r"\|": r"\|", r"\lVert": r"\rVert", r"\Vert": r"\Vert", r"\lvert": r"\rvert",
                  r"\vert": r"\vert"}[tok.text]
        self.norms += 1
        inner = self.expression()
        self.norms -= 1
        self.expect(closer, f"'{closer}'")
        kind = "abs" if tok.text in (r"\lvert", r"\vert") else "norm"
        if kind == "norm" and self.at("_"):
            under = self.next()
            which = "".join(t.text for t in self._group_tokens())
            if which not in ("2", "F"):
                self.fail(f"the {which}-norm is not read (only the Euclidean 2 and Frobenius F)",
                          under)
        return Norm(inner, kind, tok.offset)

    def _is_named_function(self) -> bool:
        """Is the font command here (``\\operatorname``, ``\\mathrm``) a function's name:
        ``\\operatorname{relu}``, ``\\mathrm{tr}``?"""
        if self.peek(1).text != "{":
            return False
        k, text = 2, ""
        while self.peek(k).text != "}" and self.peek(k).kind != "end":
            text += self.peek(k).text
            k += 1
        return text in _NAMED_FUNCTIONS or text == "tr"

    def _is_one(self) -> bool:
        return (self.peek(1).text == "{" and self.peek(2).text == "1"
                and self.peek(3).text == "}") or self.peek(1).text == "1"

    def call(self, fn: str, tok: Tok) -> Node:
        power = None
        if self.at("^"):  # \tanh^2(x)
            self.next()
            power = self._sub_parser(self._group_tokens()).whole()
        node: Node = Call(fn, self._argument(tok), 0, tok.offset)
        return Pow(node, power, tok.offset) if power is not None else node

    def _argument(self, tok: Tok) -> Node:
        """The argument of a function: parenthesised, or the next factor (\\log p_i), or a
        sum with what it covers (\\log \\sum_j e^{z_j})."""
        if self.at(r"\sum"):
            return self.sum()
        if self.at("(", "["):
            close = ")" if self.next().text == "(" else "]"
            inner = self.expression()
            self.expect(close, f"'{close}'")
            return inner
        if self.at("{"):
            return self._group_expression()
        if self._starts_factor():
            return self.postfix(self.atom())
        self.fail("expected the argument of the function", tok)

    def symbol(self) -> Node:
        """A name with its subscript (indices), or a function call of a declared function."""
        tok = self.next()
        bold = False
        if tok.kind == "cmd" and tok.text in _FONTS:
            inner = self._group_tokens()
            text = "".join(t.text.lstrip("\\") for t in inner)
            bold = True
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", text):
                self.fail(f"{tok.text}{{...}} is not a name", tok)
            name = text
        elif tok.kind == "cmd":
            name = tok.text[1:]
            if name == "ell":
                name = "l"
        else:
            name = tok.text
        vocabulary = self.vocabulary
        # e^{x}: the exponential (unless the file names something e)
        if name == "e" and not bold and self.at("^") and "e" not in vocabulary.tensors:
            self.next()
            return Call("exp", self._sub_parser(self._group_tokens()).whole(), 0, tok.offset)
        # W^{(1)}, W_1: the file's W1
        if self.at("^") and self.peek(1).text == "{" and self.peek(2).text == "(":
            k = 3
            digits = ""
            while self.peek(k).kind == "num":
                digits += self.peek(k).text
                k += 1
            if digits and name + digits in vocabulary.tensors and self.peek(k).text == ")":
                self.pos += k + 2
                name += digits
        if (self.at("_") and self.peek(1).kind == "num" and name + self.peek(1).text
                in vocabulary.tensors):
            self.next()
            name += self.next().text
        order = 0
        while self.at("'") or (self.at("^") and self.peek(1).text in (r"\prime",)):
            order += 1
            self.pos += 1 if self.at("'") else 2
        fn = self._function_name(name)
        if fn is not None and (order or self.at("(", "[")) and name not in vocabulary.tensors:
            return Call(fn, self._argument(tok), order, tok.offset)
        if name in vocabulary.reaches and self._applied_to_what_it_depends_on(name):
            return Sym(name, None, tok.offset)
        if order:
            self.fail(f"{name}' is a derivative of a function, but {name} is no function "
                      "of the context file", tok)
        if self.at("_"):
            under = self.next()
            indices = self._indices(self._group_tokens(), under)
            return Sym(name, indices, tok.offset)
        return Sym(name, None, tok.offset)

    def _applied_to_what_it_depends_on(self, name: str) -> bool:
        """``S(X)``, ``E(W)``: a defined tensor followed by its own inputs in brackets (the
        notation of a function's value); consumes the brackets when so."""
        if not self.at("("):
            return False
        k, names, expect_name = 1, [], True
        while True:
            t = self.peek(k)
            if expect_name and t.kind == "letter":
                names.append(t.text)
            elif expect_name and t.text in (r"\mathbf", r"\boldsymbol", r"\bm"):
                if self.peek(k + 1).text != "{" or self.peek(k + 3).text != "}":
                    return False
                names.append(self.peek(k + 2).text)
                k += 3
            elif not expect_name and t.text == ",":
                pass
            elif not expect_name and t.text == ")":
                break
            else:
                return False
            expect_name = not expect_name
            k += 1
        if not names or not set(names) <= self.vocabulary.reaches[name]:
            return False
        self.pos += k + 1
        return True

    def _function_name(self, name: str) -> str | None:
        if name in self.vocabulary.functions:
            return name
        if name == "sigma" and "sigma" not in self.vocabulary.tensors:
            return "sigmoid"
        return None

    def fraction(self) -> Node:
        tok = self.next()
        numerator = self._group_tokens()
        denominator = self._group_tokens()
        if not numerator or not denominator:
            self.fail(r"\frac needs a numerator and a denominator", tok)
        top, bottom = _differential(numerator), _differential(denominator)
        plain_d = (numerator[0].text == "d" and denominator[0].text == "d"
                   and "d" not in self.vocabulary.tensors)
        if plain_d:  # \frac{df}{dx}: a total derivative, written with a plain d
            top = bottom = 1
        if top and len(numerator) > top and numerator[top].text == "^":
            self.fail("derivatives of higher order are not read", numerator[top])
        if top:
            return self._derivative(tok, numerator[top:], denominator, bottom)
        if bottom:
            self.fail(r"a \partial in the denominator needs one in the numerator", tok,
                      wrong=True)
        a = self._sub_parser(numerator).whole()
        b = self._sub_parser(denominator).whole()
        return Elementwise("div", a, b, tok.offset)

    def _derivative(self, tok: Tok, body: list[Tok], denominator: list[Tok],
                    bottom: int) -> Node:
        if not bottom:
            self.fail(r"\frac{\partial ...}{...} is not a derivative: its denominator is not "
                      r"\partial of a variable", tok, wrong=True)
        var, indices = self._variable(denominator[bottom:], tok)
        if not body:  # \frac{\partial}{\partial W_{ij}} (expr): the operator form
            return Deriv(self.postfix(self.atom()), var, indices, tok.offset)
        return Deriv(self._sub_parser(body).whole(), var, indices, tok.offset)

    def _variable(self, tokens: list[Tok], tok: Tok) -> tuple[str, tuple[str, ...] | None]:
        """``W_{ij}``, ``\\mathbf{W}``, ``b_j``: the variable of a derivative."""
        if not tokens:
            self.fail("a derivative needs a variable", tok, wrong=True)
        parser = self._sub_parser(tokens)
        node = parser.whole()
        if isinstance(node, Sym):
            return node.name, node.indices
        if isinstance(node, Entry) and isinstance(node.arg, Sym) and node.arg.indices is None:
            return node.arg.name, node.indices
        if any(_is_differential(t) for t in tokens) or _differential(tokens):
            self.fail("derivatives of higher order are not read", tok)
        self.fail("the variable of a derivative is a tensor, its entry, or a name",
                  tokens[0], wrong=True)

    def environment(self) -> Node:
        tok = self.next()
        name = "".join(t.text for t in self._group_tokens())
        body: list[Tok] = []
        depth = 1
        while True:
            t = self.next()
            if t.kind == "end":
                self.fail(f"\\begin{{{name}}} without its \\end", tok)
            if t.text == r"\begin":
                depth += 1
            elif t.text == r"\end":
                depth -= 1
                if depth == 0:
                    self._group_tokens()
                    break
            body.append(t)
        rows = _split_tokens(body, r"\\")
        if name in ("bmatrix", "pmatrix", "matrix", "Bmatrix"):
            if len(rows) != 1 or len(_split_tokens(rows[0], "&")) != 1:
                self.fail(f"a {name} of several entries is not read", tok)
            return self._sub_parser(rows[0]).whole()
        if name == "cases":
            branches = []
            for row in rows:
                if not row:
                    continue
                cells = _split_tokens(row, "&")
                if len(cells) != 2:
                    self.fail("a case is  value & \\text{if } condition", row[0])
                branches.append((self._sub_parser(cells[0]).whole(), self._case_condition(cells[1])))
            return Cases(tuple(branches), tok.offset)
        self.fail(f"the environment {name} is not read", tok)

    def _case_condition(self, tokens: list[Tok]) -> Condition | None:
        words = []
        rest = []
        k = 0
        while k < len(tokens):
            t = tokens[k]
            if t.text == r"\text":
                sub = self._sub_parser(tokens[k + 1:])
                inner = sub._group_tokens()
                words.append(" ".join(x.text for x in inner).strip())
                k += 1 + sub.pos
                continue
            if t.text != ",":
                rest.append(t)
            k += 1
        said = " ".join(words).lower()
        if "otherwise" in said or "else" in said:
            return None
        if len(rest) == 3 and rest[1].text in _COMPARE:
            a, b = _index_name(rest[0]), _index_name(rest[2])
            if a and b:
                return Condition(a, _COMPARE[rest[1].text], b)
        self.fail("a case's condition compares two indices (i = k, i \\neq k)",
                  tokens[0] if tokens else None)


def _differential(tokens: list[Tok]) -> int:
    """How many tokens the differential at the start of ``tokens`` takes: ``\\partial`` 1,
    ``\\mathrm{d}`` (or ``\\operatorname{d}``, ``\\text{d}``) 4; 0 if none."""
    if tokens and tokens[0].text == r"\partial":
        return 1
    if (len(tokens) >= 4 and tokens[0].text in (r"\mathrm", r"\operatorname", r"\text")
            and [t.text for t in tokens[1:4]] == ["{", "d", "}"]):
        return 4
    return 0


def _is_differential(tok: Tok) -> bool:
    return tok.text == r"\partial"


def _index_name(tok: Tok) -> str | None:
    if tok.kind == "letter" and tok.text.islower():
        return tok.text
    if tok.text == r"\ell":
        return "l"
    return None


def _split_tokens(tokens: list[Tok], separator: str) -> list[list[Tok]]:
    out: list[list[Tok]] = [[]]
    depth = 0
    for t in tokens:
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
        if t.text == separator and depth == 0:
            out.append([])
        else:
            out[-1].append(t)
    return out


def read_side(text: str, start: int, vocabulary: Vocabulary,
                     macros: dict[str, str] | None = None) -> Node:
    """Read one side of a link: ``text`` is found at ``start`` in the document; ``macros``
    are the document's commands without arguments (``read_macros``)."""
    return _Parser(tokenize(text, start, macros), vocabulary).whole()


_NEWCOMMAND = re.compile(r"\\(?:re)?newcommand\*?\s*\{?\s*(\\[A-Za-z]+)\s*\}?\s*\{"
                         r"|\\def\s*(\\[A-Za-z]+)\s*\{")


def read_macros(text: str) -> dict[str, str]:
    """The document's commands defined without arguments: ``\\newcommand{\\R}{\\mathbb{R}}``,
    ``\\renewcommand``, ``\\def\\x{...}`` (a command with arguments is not expanded)."""
    out = {}
    for m in _NEWCOMMAND.finditer(text):
        depth, k = 1, m.end()
        while k < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[k], 0) if text[k - 1] != "\\" else 0
            k += 1
        if depth == 0:
            out[m.group(1) or m.group(2)] = text[m.end():k - 1]
    return out


def parse_condition(text: str) -> Condition | None:
    """``i = k``, ``i \\neq k`` (the inline math of "If $i = k$,"): None if not that."""
    tokens = [t for t in tokenize(text) if t.kind != "end"]
    if len(tokens) == 3 and tokens[1].text in _COMPARE:
        a, b = _index_name(tokens[0]), _index_name(tokens[2])
        if a and b:
            return Condition(a, _COMPARE[tokens[1].text], b)
    return None


# --- documents: display math, rows, chains ----------------------------------------------------

#: Relations that split a chain into links.
_RELATIONS = {"=": "=", ":=": "=", "=:": "=", r"\coloneqq": "=", r"\triangleq": "=", r"\Leftrightarrow": "iff", r"\iff": "iff", r"\Longleftrightarrow": "iff",
              r"\Rightarrow": "iff", r"\implies": "iff", r"\Longrightarrow": "iff"}
_DISPLAY_ENVS = ("equation", "align", "gather", "multline", "eqnarray", "displaymath", "flalign")
_INNER_ENVS = ("split", "aligned", "gathered", "alignedat", "multlined")
_DISPLAY = re.compile(
    r"(?<!\\)\$\$(?P<dollars>.*?)(?<!\\)\$\$"
    r"|(?<!\\)\\\[(?P<brackets>.*?)(?<!\\)\\\]"
    r"|\\begin\{(?P<env>" + "|".join(_DISPLAY_ENVS) + r")(?P<star>\*?)\}(?P<body>.*?)"
    r"\\end\{(?P=env)(?P=star)\}",
    re.DOTALL)
#: "If $i = k$," just before a display: the display holds under that condition.
_CONDITION_TEXT = re.compile(r"(?:\b(?:if|when|for)\s+)\$(?P<cond>[^$]+)\$\s*[,:;]?\s*$",
                             re.IGNORECASE)
#: A comparison in that inline math (``x \in \mathbb{R}^n`` is no condition).
_COMPARISON = re.compile(r"=|<|>|\\neq?\b|\\l[et]q?\b|\\g[et]q?\b")
#: A context switch inside a document: ``<!-- indexcalc: linear.idx -->``, ``% indexcalc: f.idx``.
CONTEXT = re.compile(r"(?:<!--|%)\s*indexcalc:\s*(?P<path>[^\s>]+\.idx)")


@dataclass
class Piece:
    """One expression of a chain: its text, where it starts in the document, and the
    relation that joins it to the piece before (None for the first)."""

    text: str
    offset: int
    relation: str | None


@dataclass
class Chain:
    pieces: list[Piece]
    condition: Condition | None = None
    context: str | None = None  # the context file named by the last switch before it
    display: tuple[int, int] = (0, 0)  # the display's span in the document
    #: the text of a condition that was stated but could not be read
    unread_condition: str = ""


@dataclass
class Display:
    start: int
    end: int
    chains: list[Chain] = field(default_factory=list)


def read_document(text: str) -> list[Display]:
    """The display math of a document, as chains of pieces with their offsets."""
    displays: list[Display] = []
    last_chain: Chain | None = None
    context: str | None = None
    previous_end = 0
    for m in _DISPLAY.finditer(text):
        group = next(g for g in ("dollars", "brackets", "body") if m.group(g) is not None)
        body, start = m.group(group), m.start(group)
        before = text[previous_end:m.start()]
        for switch in CONTEXT.finditer(before):
            context = switch.group("path")
            last_chain = None
        previous_end = m.end()
        display = Display(m.start(), m.end())
        condition_match = _CONDITION_TEXT.search(before)
        if condition_match and not _COMPARISON.search(condition_match.group("cond")):
            condition_match = None
        condition = parse_condition(condition_match.group("cond")) if condition_match else None
        unread = condition_match.group("cond") if condition_match and condition is None else ""
        for row, offset in _rows(body, start):
            row, row_condition = _row_condition(row)
            pieces = _pieces(row, offset)
            if not pieces:
                continue
            if pieces[0].relation is not None and last_chain is not None:
                last_chain.pieces.extend(pieces)
                continue
            if pieces[0].relation is not None:
                pieces[0].relation = None
            last_chain = Chain(pieces, row_condition or condition, context,
                               (display.start, display.end), unread)
            display.chains.append(last_chain)
        displays.append(display)
    return displays


_ENV_TOKEN = re.compile(r"\\(begin|end)\{([A-Za-z]+)\*?\}|\\\\\*?(?:\[[^\]]*\])?|\n|\\label\{[^}]*\}|\\tag\{[^}]*\}|%[^\n]*")


_ROW_CONDITION = re.compile(
    r"(?:,\s*)?(?:\\q?quad\s*|\\[,;]\s*)+(?:\\text\{\s*(?:if|for|when|where)\s*\}\s*)?"
    r"(?P<cond>[a-z]\s*(?:=|\\neq?|<|>|\\leq?|\\geq?)\s*[a-z])\s*[.,;]?\s*$")


def _row_condition(row: str) -> tuple[str, Condition | None]:
    """A condition on two indices at the end of a row (``= -p_k p_i, \\quad i \\neq k``):
    the row without it, and the condition (the row's chain holds where it does)."""
    m = _ROW_CONDITION.search(row)
    if m is None or "=" not in row[:m.start()]:
        return row, None
    condition = parse_condition(m.group("cond"))
    if condition is None:
        return row, None
    return row[:m.start()] + " " * (len(row) - m.start()), condition


def _rows(body: str, start: int) -> list[tuple[str, int]]:
    """The rows of a display: split at ``\\\\`` (outside cases and matrices) and at line
    breaks that end an expression (not where a line continues the one before: an open
    brace, or the next line starts with a relation or an operator).  Alignment ``&``,
    inner environments, labels and comments become spaces (offsets are kept)."""
    chars = list(body)
    cuts: list[int] = []
    depth = 0  # inside cases / matrix environments
    for m in _ENV_TOKEN.finditer(body):
        token = m.group()
        if m.group(1):
            env = m.group(2)
            if env in _INNER_ENVS or env in _DISPLAY_ENVS:
                chars[m.start():m.end()] = " " * (m.end() - m.start())
            elif m.group(1) == "begin":
                depth += 1
            else:
                depth -= 1
        elif token.startswith("\\\\") and depth == 0:  # \\ or \\[4pt]
            chars[m.start():m.end()] = " " * (m.end() - m.start())
            cuts.append(m.start())
        elif token == "\n" and depth == 0:
            cuts.append(-m.start() - 1)  # a soft cut, decided below
        elif token.startswith(("\\label", "\\tag", "%")):
            chars[m.start():m.end()] = " " * (m.end() - m.start())
    cleaned = "".join(chars)
    # & outside environments: alignment
    out = []
    depth = 0
    for k, c in enumerate(cleaned):
        if cleaned.startswith("\\begin{", k):
            depth += 1
        elif cleaned.startswith("\\end{", k):
            depth -= 1
        out.append(" " if c == "&" and depth == 0 and (k == 0 or cleaned[k - 1] != "\\") else c)
    cleaned = "".join(out)
    rows: list[tuple[str, int]] = []
    begin = 0
    for cut in cuts + [len(cleaned)]:
        soft = cut < 0
        at = -cut - 1 if soft else cut
        piece = cleaned[begin:at]
        if soft:
            following = cleaned[at + 1:].lstrip()
            if (_unbalanced(piece) or _ends_in_operator(piece)
                    or _starts_continuation(following)):
                continue  # the row goes on across the line break
        rows.append((piece, start + begin))
        begin = at + 1 if soft else _row_break_end(cleaned, at)
    merged: list[tuple[str, int]] = []
    for text, offset in rows:
        if not text.strip():
            continue
        if (merged and _starts_operator(text.lstrip())
                and not any(p.relation for p in _pieces(text, offset)[1:])):
            before, at = merged[-1]  # "&= A \\ &\quad - B": the expression goes on
            merged[-1] = (cleaned[at - start:offset - start + len(text)], at)
            continue
        merged.append((text, offset))
    return merged


def _row_break_end(cleaned: str, at: int) -> int:
    """Where the row after a ``\\\\`` (blanked, with its ``[4pt]``) begins."""
    return at + 2 + len(_BREAK_SPACING.match(cleaned, at + 2).group())


_BREAK_SPACING = re.compile(r" *")


#: Binary operators: a row that starts or ends with one goes on from, or to, another.
_OPERATORS = ("+", "-", r"\cdot", r"\odot", r"\oslash", r"\times")
#: Relations a line may end with, or start with, and still be one chain.
_CHAIN_RELATIONS = ("=", r"\Leftrightarrow", r"\iff", r"\Longleftrightarrow", r"\Rightarrow",
                    r"\implies")


def _starts_operator(text: str) -> bool:
    text = re.sub(r"^(?:\s|\\q?quad\b|\\[,;:! ]|\\hspace\{[^}]*\}|\\phantom\{[^}]*\})*", "", text)
    return text.startswith(_OPERATORS)


def _unbalanced(text: str) -> bool:
    return (text.count("{") - text.count(r"\{") != text.count("}") - text.count(r"\}")
            or text.count(r"\left") != text.count(r"\right")
            or len(re.findall(r"\\begin\{", text)) != len(re.findall(r"\\end\{", text)))


def _ends_in_operator(text: str) -> bool:
    return text.rstrip().endswith(_OPERATORS + _CHAIN_RELATIONS)


def _starts_continuation(text: str) -> bool:
    """The next line starts with a relation or an operator (not "-": a line may start with
    a negative value)."""
    return text.startswith(_CHAIN_RELATIONS + tuple(op for op in _OPERATORS if op != "-"))


_RELATION_AT = re.compile(r":=|=:|\\coloneqq\b|\\triangleq\b|=|\\Leftrightarrow\b|\\iff\b|\\Longleftrightarrow\b|\\Rightarrow\b"
                          r"|\\implies\b|\\Longrightarrow\b|\\begin\{[^}]*\}|\\end\{[^}]*\}"
                          r"|\\[{}]|[{}()\[\]]")
_TRAILING = re.compile(r"(?:\s|\\quad|\\qquad|\\,|\\;|[.,;])+$")
#: An annotation at the end of a row: ``\quad \text{(chain rule)}``, ``&& \text{by ...}``.
_ANNOTATION = re.compile(r"(?:\\q?quad|\\[,;]|\s|,)*\\(?:text|textrm|textit|mbox)\{[^{}]*\}"
                         r"(?:\s|[.,;]|[a-z](?![A-Za-z{]))*$")
_IN = re.compile(r"\\in\b")


def _pieces(row: str, offset: int) -> list[Piece]:
    """Split a row at its top-level relations."""
    pieces: list[Piece] = []
    depth = 0
    begin = 0
    relation: str | None = None
    for m in _RELATION_AT.finditer(row):
        token = m.group()
        if token in ("{", "(", "[", "\\{") or token.startswith("\\begin"):
            depth += 1
        elif token in ("}", ")", "]", "\\}") or token.startswith("\\end"):
            depth -= 1
        elif depth == 0:
            pieces.append(Piece(row[begin:m.start()], offset + begin, relation))
            relation = _RELATIONS.get(token, "=")
            begin = m.end()
    pieces.append(Piece(row[begin:], offset + begin, relation))
    out = []
    for p in pieces:
        text = p.text
        while _ANNOTATION.search(text):
            text = _ANNOTATION.sub("", text)
        cut = _IN.search(text)  # \in \mathbb{R}^{S x C}: what the value is, not a value
        if cut:
            text = text[:cut.start()]
        text = _TRAILING.sub("", text)
        lead = len(text) - len(text.lstrip())
        if text.strip() or p.relation is not None:
            out.append(Piece(text.strip(), p.offset + lead, p.relation))
    if out and not out[0].text and out[0].relation is None:
        out = out[1:]
        if out:
            out[0].relation = out[0].relation or "="
    return out


# --- printing a read expression in the file language -----------------------------------------

def to_text(node: Node, dims: frozenset[str] = frozenset()) -> str:
    """The expression in the file language (matrix operations in NumPy's spelling);
    ``dims`` are names that are numbers (so that ``1/S T`` is no matrix product)."""
    return _Printer(dims).text(node, 0)


class _Printer:
    """Levels: 1 sums and differences, 2 Hadamard products and quotients, 3 products,
    4 unary minus, 5 powers and postfix; a part below the level around it is bracketed."""

    def __init__(self, dims: frozenset[str]):
        self.dims = dims

    def matrixish(self, node: Node) -> bool:
        """Does the expression read as a whole matrix (a product of two is ``@``)?"""
        if isinstance(node, Sym):
            return node.indices is None and node.name not in self.dims
        if isinstance(node, Deriv):
            return node.indices is None
        if isinstance(node, (Ones, Transpose, Inverse)):
            return True
        if isinstance(node, Call) and node.fn == "diag":
            return True
        if isinstance(node, (Mul, Elementwise)):
            return self.matrixish(node.a) or self.matrixish(node.b)
        if isinstance(node, (Neg, Call)):
            return self.matrixish(node.arg)
        if isinstance(node, Add):
            return any(self.matrixish(t) for _, t in node.terms)
        return False

    def text(self, node: Node, outer: int) -> str:
        def wrap(text: str, level: int) -> str:
            return f"({text})" if level < outer else text

        sub = self.text
        if isinstance(node, Num):
            value = node.value
            return str(int(value)) if value == int(value) else repr(value)
        if isinstance(node, Sym):
            return node.name + (f"[{','.join(node.indices)}]" if node.indices else "")
        if isinstance(node, Ones):
            return "ones"
        if isinstance(node, Delta):
            return f"delta({node.a},{node.b})"
        if isinstance(node, Call):
            return f"{node.fn}{chr(39) * node.order}({sub(node.arg, 0)})"
        if isinstance(node, Neg):
            return wrap("-" + sub(node.arg, 3), 1)
        if isinstance(node, Add):
            parts = []
            for k, (sign, term) in enumerate(node.terms):
                body = sub(term, 2 if sign < 0 else 1)
                parts.append(("-" if sign < 0 else "") + body if k == 0 else
                             ("- " if sign < 0 else "+ ") + body)
            return wrap(" ".join(parts), 1)
        if isinstance(node, Mul):
            joint = " @ " if self.matrixish(node.a) and self.matrixish(node.b) else " "
            return wrap(f"{sub(node.a, 3)}{joint}{sub(node.b, 4)}", 3)
        if isinstance(node, Elementwise):
            if node.op == "kron":
                return f"np.kron({sub(node.a, 0)}, {sub(node.b, 0)})"
            op = "*" if node.op == "*" else "/"
            return wrap(f"{sub(node.a, 2)} {op} {sub(node.b, 4)}", 2)
        if isinstance(node, Pow):
            return wrap(f"{sub(node.base, 5)}^{sub(node.exponent, 5)}", 5)
        if isinstance(node, Transpose):
            return f"{sub(node.arg, 5)}.T"
        if isinstance(node, Inverse):
            return f"inv({sub(node.arg, 0)})"
        if isinstance(node, Trace):
            return f"trace({sub(node.arg, 0)})"
        if isinstance(node, Norm):
            return f"{'abs' if node.kind == 'abs' else 'norm'}({sub(node.arg, 0)})"
        if isinstance(node, Sum):
            head = ",".join(node.indices)
            if node.condition is not None:
                c = node.condition
                head = f"{c.a} {c.op} {c.b}"
            head = f"{{{head}}}" if (len(node.indices) > 1 or node.condition) else head
            return wrap(f"sum_{head} {sub(node.body, 3)}", 3)
        if isinstance(node, Deriv):
            where = f"[{','.join(node.indices)}]" if node.indices else ""
            if isinstance(node.num, Sym):
                num = node.num
                both = (num.indices or ()) + (node.indices or ())
                return f"d{num.name}_d{node.var}" + (f"[{','.join(both)}]" if both else "")
            return f"d({sub(node.num, 0)})/d{node.var}{where}"
        if isinstance(node, Entry):
            inner = sub(node.arg, 0)
            if not (isinstance(node.arg, (Sym, Deriv)) and node.arg.indices is None):
                inner = f"({inner})"
            return f"{inner}[{','.join(node.indices)}]"
        if isinstance(node, Cases):
            parts = []
            for value, cond in node.branches:
                test = "otherwise" if cond is None else f"[{cond.a} {cond.op} {cond.b}]"
                parts.append(f"{sub(value, 0)} if {test}")
            return "{" + "; ".join(parts) + "}"
        return type(node).__name__
