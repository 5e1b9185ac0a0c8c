"""A shape checker for the LaTeX matrix forms the printer emits (a test oracle).

``latex_shape(latex, shapes)`` reads a matrix form such as
``\\left(\\frac{\\partial L}{\\partial \\mathbf{Y}}\\right)^{T} \\mathbf{X}`` and returns its
shape (rows, cols) in a strictly 2-D view: a vector tensor is a column (n, 1), a scalar is
(1, 1).  Every product, elementwise operation and sum is checked; nothing is broadcast except
a scalar.  It is written from scratch, independent of the printer it checks: a tokenizer, a
recursive-descent parser to a small tree, then shape inference.  The sizes of ``\\mathbf{1}``
and ``\\mathbf{I}`` are unknowns ("?1", "?2", ...) solved by unification.  Anything it cannot
read raises LatexSyntaxError rather than being guessed at.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

Dim = str  # a dim name ("S"), "1", or an unknown ("?3")


class ShapeError(Exception):
    """The matrix form does not conform: a product, elementwise operation or sum of bad shapes."""


class LatexSyntaxError(Exception):
    """The LaTeX is outside the subset the checker reads."""


_GREEK = set(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
    "pi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma "
    "Upsilon Phi Psi Omega".split())
_GREEK_ALIASES = {"lambda": ("lam",), "epsilon": ("eps",), "Lambda": ("Lam",)}  # name_latex's
_FUNCTIONS = {"exp", "log", "ln", "tanh", "sin", "cos", "sigma"}  # elementwise, take (...)
_SPACES = {",", ";", ":", "!", " "}  # \, \; \: \! and "\ " are only spacing
_SIZES = {"big", "Big", "bigg", "Bigg"}
_CLOSING = {"(": ")", "[": "]", "|": "|"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | \\(?P<word>mathrm|operatorname)\{(?P<text>(?:[A-Za-z0-9]|\\_)+)\}
  | \\(?P<size>left|right|(?:big|Big|bigg|Bigg)[lr]?)\s*(?P<delim>[()\[\]|])
  | \\(?P<cmd>[A-Za-z]+|.)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z]\d*)
  | (?P<sym>[{}()\[\]|^'+\-/_])
""", re.VERBOSE)


@dataclass(frozen=True)
class Tok:
    kind: str  # cmd word num name sym open close bar
    text: str
    start: int
    end: int
    size: str = ""  # for brackets: "auto" (\left \right), "big", or "" (plain)


def tokenize(latex: str) -> list[Tok]:
    toks, pos = [], 0
    while pos < len(latex):
        m = _TOKEN.match(latex, pos)
        if not m:
            raise LatexSyntaxError(f"unexpected character {latex[pos]!r} at {pos} in {latex!r}")
        a, pos = m.start(), m.end()
        if m["ws"] or m["cmd"] in _SPACES:
            continue
        if m["word"]:
            toks.append(Tok("word:" + m["word"], m["text"].replace("\\_", "_"), a, pos))
        elif m["size"]:
            size, d = m["size"], m["delim"]
            if size in ("left", "right") or size[-1] in "lr":
                kind = "open" if size == "left" or size.endswith("l") else "close"
            else:  # \big( : the side is that of the bracket itself; \big| has none
                kind = "bar" if d == "|" else ("open" if d in "([" else "close")
            toks.append(Tok(kind, d, a, pos, "auto" if size in ("left", "right") else "big"))
        elif m["sym"] and m["sym"] in "()[]|":
            d = m["sym"]
            toks.append(Tok("bar" if d == "|" else ("open" if d in "([" else "close"), d, a, pos))
        else:
            kind = next(k for k in ("cmd", "num", "name", "sym") if m[k] is not None)
            toks.append(Tok(kind, m[kind], a, pos))
    return toks


# --- the tree ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    op: str  # tensor ones eye scalar | mul odot oslash div add sub neg T fn diag pow hpow
    args: tuple = ()
    src: str = ""  # the LaTeX it came from, for the error messages
    dims: tuple = ()  # for "tensor": the tensor's dims


class _Parser:
    """expr := [+-] term ([+-] term)*;  term := factor ((juxtaposition|\\cdot|\\odot|\\oslash|/)
    factor)*, left to right;  factor := atom [^exponent];  atom := name, number, \\frac, ..."""

    def __init__(self, latex: str, shapes: dict[str, tuple[str, ...]]):
        self.latex, self.toks, self.i = latex, tokenize(latex), 0
        self.shapes = dict(shapes)
        self.dims = {d for dims in shapes.values() for d in dims}
        self.bars = 0  # inside how many plain |...|: there a bar closes

    # token helpers
    def peek(self, k: int = 0) -> Tok | None:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else None

    def is_(self, kind: str, text: str | None = None, k: int = 0) -> bool:
        t = self.peek(k)
        return t is not None and t.kind == kind and (text is None or t.text == text)

    def take(self, kind: str, text: str | None = None) -> Tok:
        if not self.is_(kind, text):
            t = self.peek()
            got = f"{t.text!r} at {t.start}" if t else "the end"
            raise LatexSyntaxError(f"expected {text or kind}, got {got} in {self.latex!r}")
        self.i += 1
        return self.toks[self.i - 1]

    def node(self, op: str, args: tuple, start: int, dims: tuple = ()) -> Node:
        end = self.toks[self.i - 1].end
        return Node(op, args, self.latex[self.toks[start].start:end], dims)

    def parse(self) -> Node:
        tree = self.expr()
        if self.peek() is not None:
            raise LatexSyntaxError(f"cannot read from {self.peek().text!r} at "
                                   f"{self.peek().start} in {self.latex!r}")
        return tree

    # grammar
    def expr(self) -> Node:
        start = self.i
        if self.is_("sym", "-") or self.is_("sym", "+"):
            sign = self.take("sym").text
            left = self.term()
            if sign == "-":
                left = self.node("neg", (left,), start)
        else:
            left = self.term()
        while self.is_("sym", "+") or self.is_("sym", "-"):
            op = "add" if self.take("sym").text == "+" else "sub"
            left = self.node(op, (left, self.term()), start)
        return left

    def term(self) -> Node:
        start, left = self.i, self.factor()
        while True:
            if self.is_("cmd", "odot") or self.is_("cmd", "oslash") or self.is_("cmd", "cdot"):
                op = {"odot": "odot", "oslash": "oslash", "cdot": "mul"}[self.take("cmd").text]
            elif self.is_("sym", "/"):
                op = "div"
                self.i += 1
            elif self.starts_atom():
                op = "mul"
            else:
                return left
            left = self.node(op, (left, self.factor()), start)

    def starts_atom(self) -> bool:
        t = self.peek()
        if t is None:
            return False
        if t.kind == "cmd":
            return t.text not in {"odot", "oslash", "cdot", "right"}
        if t.kind == "sym":
            return t.text == "{"
        return t.kind != "close" and not (t.kind == "bar" and self.bars)

    def factor(self) -> Node:
        start, base = self.i, self.atom()
        if not self.is_("sym", "^"):
            return base
        self.take("sym", "^")
        if self.is_("name", "T") or self.is_("cmd", "top"):  # ^T, ^\top
            self.i += 1
            return self.node("T", (base,), start)
        if self.is_("num") or self.is_("name"):  # ^2, ^x: a single-token exponent
            return self.node("pow", (base, self.atom()), start)
        self.take("sym", "{")
        if (self.is_("name", "T") or self.is_("cmd", "top")) and self.is_("sym", "}", 1):
            self.i += 2
            return self.node("T", (base,), start)
        hadamard = self.is_("cmd", "circ")
        if hadamard:
            self.i += 1
        exponent = self.expr()
        self.take("sym", "}")
        node = self.node("hpow" if hadamard else "pow", (base, exponent), start)
        if self.is_("sym", "^"):
            raise LatexSyntaxError(f"double superscript after {node.src!r}")
        return node

    def atom(self) -> Node:
        start, t = self.i, self.peek()
        if t is None:
            raise LatexSyntaxError(f"unexpected end of {self.latex!r}")
        if t.kind == "num":
            self.i += 1
            return self.node("scalar", (), start)
        if t.kind == "sym" and t.text == "{":  # a TeX group is only grouping
            self.i += 1
            inner = self.expr()
            self.take("sym", "}")
            return inner
        if t.kind in ("open", "bar"):
            return self.bracketed(start)
        if t.kind == "cmd":
            if t.text in ("mathbf", "boldsymbol"):
                return self.bold(start)
            if t.text == "frac":
                self.i += 1
                if self.is_("sym", "{") and self.is_("cmd", "partial", 1):
                    return self.gradient(start)
                num, den = self.group(), self.group()
                return self.node("div", (num, den), start)
            if t.text == "sqrt":
                self.i += 1
                return self.node("fn", (self.group(),), start)
            if t.text in _FUNCTIONS and not (t.text == "sigma" and "sigma" in self.shapes):
                self.i += 1
                return self.apply(start)
        if t.kind == "word:operatorname" and t.text == "diag":
            self.i += 1
            return self.node("diag", (self.argument(),), start)
        return self.plain_name(start)

    def plain_name(self, start: int) -> Node:
        """A name without bold: a scalar, a dim, a declared function or a constant."""
        t = self.take(self.peek().kind)
        candidates = self.candidates(t)
        if candidates is None:
            raise LatexSyntaxError(f"cannot read {t.text!r} at {t.start} in {self.latex!r}")
        known = [n for n in candidates if n in self.shapes or n in self.dims]
        if len(known) > 1:
            raise LatexSyntaxError(f"{self.latex[t.start:t.end]!r} could be any of {known}")
        if known:
            dims = self.shapes.get(known[0], ())
            if dims:
                raise LatexSyntaxError(f"tensor {known[0]!r} of dims {dims} printed without bold "
                                       f"at {t.start} in {self.latex!r}")
            return self.node("scalar", (), start)
        if self.is_("sym", "'") or self.is_("open"):  # h(X), h'\left(X\right): elementwise
            return self.apply(start)
        if (t.kind, t.text) in (("cmd", "pi"), ("name", "e")):  # the constants
            return self.node("scalar", (), start)
        if t.kind == "name" and re.fullmatch(r"[A-Z]", t.text):  # a dim used as a number
            return self.node("scalar", (), start)
        raise LatexSyntaxError(f"unknown name {self.latex[t.start:t.end]!r} at {t.start} "
                               f"in {self.latex!r}")

    def candidates(self, t: Tok) -> list[str] | None:
        """The file-language names a printed name may stand for (None: not a name)."""
        if t.kind in ("name", "word:mathrm", "word:operatorname"):
            return [t.text]
        if t.kind == "cmd" and t.text in _GREEK:
            return [t.text, *_GREEK_ALIASES.get(t.text, ())]
        return None

    def tensor(self, t: Tok, start: int, bold: bool) -> Node:
        """A tensor name (inside \\mathbf, or the denominator of a gradient)."""
        candidates = self.candidates(t)
        if candidates is None:
            raise LatexSyntaxError(f"expected a tensor name, got {t.text!r} at {t.start}")
        known = [n for n in candidates if n in self.shapes]
        if len(known) != 1:
            what = f"could be any of {known}" if known else "is not a known tensor"
            raise LatexSyntaxError(f"{self.latex[t.start:t.end]!r} {what} (in {self.latex!r})")
        dims = tuple(self.shapes[known[0]])
        if bold != (len(dims) > 0):
            raise LatexSyntaxError(f"tensor {known[0]!r} of dims {dims} printed "
                                   f"{'in bold' if bold else 'without bold'} in {self.latex!r}")
        if len(dims) > 2:
            raise ShapeError(f"tensor {known[0]!r} of dims {dims} has no 2-D shape")
        return self.node("tensor", (), start, dims)

    def bold(self, start: int) -> Node:
        self.take("cmd")
        self.take("sym", "{")
        t = self.take(self.peek().kind if self.peek() else "name")
        self.take("sym", "}")
        if t.kind == "num" and t.text == "1":
            return self.node("ones", (), start)
        if t.kind == "name" and t.text == "I":
            if "I" in self.shapes:  # never guess between the identity and a tensor I
                raise LatexSyntaxError(f"\\mathbf{{I}} is ambiguous: a tensor I exists")
            return self.node("eye", (), start)
        return self.tensor(t, start, bold=True)

    def gradient(self, start: int) -> Node:
        """\\frac{\\partial L}{\\partial \\mathbf{Y}}: the shape of Y, whatever the loss."""
        for kind, text in (("sym", "{"), ("cmd", "partial")):
            self.take(kind, text)
        if self.peek() is None or self.candidates(self.take(self.peek().kind)) is None:
            raise LatexSyntaxError(f"expected the loss's name after \\partial in {self.latex!r}")
        for kind, text in (("sym", "}"), ("sym", "{"), ("cmd", "partial")):
            self.take(kind, text)
        if self.is_("cmd", "mathbf") or self.is_("cmd", "boldsymbol"):
            self.i += 1
            self.take("sym", "{")
            wrt, bold = self.take(self.peek().kind), True
            self.take("sym", "}")
        else:
            wrt, bold = self.take(self.peek().kind), False
        self.take("sym", "}")
        return self.tensor(wrt, start, bold)

    def group(self) -> Node:
        self.take("sym", "{")
        inner = self.expr()
        self.take("sym", "}")
        return inner

    def bracketed(self, start: int) -> Node:
        """( ... ), \\left( ... \\right), \\big[ ... \\big]; |...| is the absolute value."""
        o = self.take(self.peek().kind)
        self.bars += o.kind == "bar"
        inner = self.expr()
        self.bars -= o.kind == "bar"
        c = self.peek()
        if c is None or c.kind not in ("close", "bar") or c.text != _CLOSING[o.text] \
                or c.size != o.size:
            raise LatexSyntaxError(f"{self.latex[o.start:o.end]!r} at {o.start} is not closed "
                                   f"in {self.latex!r}")
        self.i += 1
        return self.node("fn", (inner,), start) if o.text == "|" else inner

    def argument(self) -> Node:
        if not self.is_("open", "("):
            raise LatexSyntaxError(f"expected a bracketed argument at "
                                   f"{self.peek().start if self.peek() else 'the end'} in {self.latex!r}")
        return self.bracketed(self.i)

    def apply(self, start: int) -> Node:
        """An elementwise function (after its name): primes, then the bracketed argument."""
        while self.is_("sym", "'"):
            self.i += 1
        return self.node("fn", (self.argument(),), start)


# --- shape inference --------------------------------------------------------------------------

def _short(src: str) -> str:
    return src if len(src) <= 100 else src[:97] + "..."


class _Shapes:
    """Shapes of the tree's nodes; unknown dims in a tiny union-find (``parent``)."""

    def __init__(self):
        self.parent: dict[str, str] = {}
        self.fresh = 0

    def unknown(self) -> Dim:
        self.fresh += 1
        return f"?{self.fresh}"

    def find(self, d: Dim) -> Dim:
        while d in self.parent:
            d = self.parent[d]
        return d

    def unify(self, a: Dim, b: Dim) -> bool:
        a, b = self.find(a), self.find(b)
        if a == b:
            return True
        if a.startswith("?") or b.startswith("?"):
            self.parent[a if a.startswith("?") else b] = b if a.startswith("?") else a
            return True
        return False  # two different known dims (1 is a known dim too)

    def resolve(self, shape):
        return tuple(self.find(d) for d in shape)

    def show(self, node: Node, shape) -> str:
        rows, cols = self.resolve(shape)
        return f"`{_short(node.src)}` ({rows} x {cols})"

    def scalar(self, shape) -> bool:
        return self.resolve(shape) == ("1", "1")

    def same(self, what: str, a: Node, sa, b: Node, sb):
        """Equal shapes (elementwise operations, sums), or a scalar on either side."""
        if self.scalar(sa):
            return sb
        if self.scalar(sb):
            return sa
        before = self.show(a, sa), self.show(b, sb)
        if not (self.unify(sa[0], sb[0]) and self.unify(sa[1], sb[1])):
            raise ShapeError(f"{what} of operands of different shapes: {before[0]} and {before[1]}")
        return sa

    def of(self, n: Node):
        if n.op == "tensor":
            return {0: ("1", "1"), 1: (n.dims[0], "1"), 2: n.dims}[len(n.dims)]
        if n.op == "ones":
            return (self.unknown(), "1")
        if n.op == "eye":
            d = self.unknown()
            return (d, d)
        if n.op == "scalar":
            return ("1", "1")
        shapes = [self.of(a) for a in n.args]
        if n.op == "neg" or n.op == "fn":
            return shapes[0]
        if n.op == "T":
            return shapes[0][::-1]
        a, b = n.args[0], n.args[-1]
        if n.op in ("add", "sub"):
            return self.same("sum" if n.op == "add" else "difference", a, shapes[0], b, shapes[1])
        if n.op in ("odot", "oslash"):
            what = "Hadamard product" if n.op == "odot" else "Hadamard division"
            return self.same(what, a, shapes[0], b, shapes[1])
        if n.op == "div":
            if not self.scalar(shapes[1]):
                raise ShapeError(f"division by a non-scalar: {self.show(a, shapes[0])} "
                                 f"over {self.show(b, shapes[1])}")
            return shapes[0]
        if n.op == "mul":
            sa, sb = shapes
            if self.scalar(sa) or self.scalar(sb):  # scaling
                return sb if self.scalar(sa) else sa
            before = self.show(a, sa), self.show(b, sb)
            if not self.unify(sa[1], sb[0]):
                raise ShapeError(f"matrix product of non-conforming operands: {before[0]} times "
                                 f"{before[1]}: inner dims {self.find(sa[1])} and {self.find(sb[0])}")
            return (sa[0], sb[1])
        if n.op == "diag":
            rows, cols = self.resolve(shapes[0])
            if rows != "1" and cols != "1":
                raise ShapeError(f"diag of a non-vector {self.show(a, shapes[0])}")
            d = cols if rows == "1" else rows
            return (d, d)
        if n.op == "hpow":
            if not self.scalar(shapes[1]):
                raise ShapeError(f"Hadamard power with a non-scalar exponent: {self.show(b, shapes[1])}")
            return shapes[0]
        if n.op == "pow":
            if self.scalar(shapes[0]):  # x^{2}, and e^{X} elementwise
                return shapes[1]
            if not self.scalar(shapes[1]):
                raise ShapeError(f"matrix {self.show(a, shapes[0])} to a non-scalar power "
                                 f"{self.show(b, shapes[1])}")
            before = self.show(a, shapes[0])
            if not self.unify(*shapes[0]):  # X^{2} without \circ: a matrix power
                raise ShapeError(f"matrix power of a non-square matrix {before}")
            return shapes[0]
        raise AssertionError(n.op)


def latex_shape(latex: str, shapes: dict[str, tuple[str, ...]]) -> tuple[Dim, Dim]:
    """The (rows, cols) of the matrix form ``latex``, given each tensor's dims in ``shapes``.

    Raises ShapeError on a non-conforming operation, LatexSyntaxError on what it cannot read.
    An unknown dim no context fixed comes back as "?k".
    """
    tree = _Parser(latex, shapes).parse()
    inference = _Shapes()
    return inference.resolve(inference.of(tree))
