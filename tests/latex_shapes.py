"""A shape checker for the LaTeX matrix forms the printer emits (a test oracle).

``latex_shape(latex, shapes)`` reads a form such as
``\\left(\\frac{\\partial L}{\\partial \\mathbf{Y}}\\right)^{T} \\mathbf{X}`` and returns its
shape (rows, cols) in a strictly 2-D view: a vector tensor is a column (n, 1), a scalar is
(1, 1).  Every product, elementwise operation and sum is checked and nothing but a scalar is
broadcast.  It is written from scratch, independent of the printer it checks: a tokenizer, a
recursive-descent parser to a small tree, then shape inference in which the sizes of
``\\mathbf{1}`` and ``\\mathbf{I}`` are unknowns ("?1", "?2", ...) solved by unification.
What it cannot read raises LatexSyntaxError: it never guesses.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

Dim = str  # a dim name ("S"), "1", or an unknown ("?3")


class ShapeError(Exception):
    """A product, elementwise operation or sum of non-conforming shapes."""


class LatexSyntaxError(Exception):
    """LaTeX outside the subset the checker reads."""


_GREEK = set(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi "
    "pi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma "
    "Upsilon Phi Psi Omega".split())
_ALIASES = {"lambda": ["lam"], "epsilon": ["eps"], "Lambda": ["Lam"]}  # as name_latex prints them
_FUNCTIONS = {"exp", "log", "ln", "tanh", "sin", "cos", "sigma"}  # elementwise, take (...)
_CLOSING = {"(": ")", "[": "]", "|": "|"}
_TOKEN = re.compile(r"""
    (?P<ws>\s+|\\[,;:!\ ])                                    # spacing only
  | \\(?P<word>mathrm|operatorname)\{(?P<text>(?:[A-Za-z0-9]|\\_)+)\}
  | \\(?P<size>left|right|(?:big|Big|bigg|Bigg)[lr]?)\s*(?P<delim>[()\[\]|])
  | \\(?P<cmd>[A-Za-z]+)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<name>[A-Za-z]\d*)                                     # X, W1: one letter, digits
  | (?P<sym>[{}^'+\-/_])
  | (?P<bracket>[()\[\]|])
""", re.VERBOSE)


@dataclass(frozen=True)
class Tok:
    kind: str  # cmd, word:mathrm, word:operatorname, num, name, sym, open, close, bar
    text: str
    start: int
    end: int
    size: str = ""  # of a bracket: "left" (\left, \right), "big" or "" (plain)


def tokenize(latex: str) -> list[Tok]:
    toks, pos = [], 0
    while pos < len(latex):
        m = _TOKEN.match(latex, pos)
        if not m:
            raise LatexSyntaxError(f"unexpected {latex[pos]!r} at {pos} in {latex!r}")
        start, pos = m.start(), m.end()
        if m["ws"]:
            continue
        if m["word"]:
            toks.append(Tok("word:" + m["word"], m["text"].replace("\\_", "_"), start, pos))
        elif m["size"] or m["bracket"]:
            size, d = m["size"] or "", m["delim"] or m["bracket"]
            if size in ("left", "right") or size[-1:] in ("l", "r"):  # the side is spelled out
                kind = "open" if size == "left" or size.endswith("l") else "close"
            else:  # the bracket says the side; | does not
                kind = "bar" if d == "|" else "open" if d in "([" else "close"
            toks.append(Tok(kind, d, start, pos,
                            "left" if size in ("left", "right") else "big" if size else ""))
        else:
            kind = next(k for k in ("cmd", "num", "name", "sym") if m[k] is not None)
            toks.append(Tok(kind, m[kind], start, pos))
    return toks


@dataclass(frozen=True)
class Node:
    op: str  # tensor ones eye scalar | mul odot oslash div add sub neg T fn diag tr pow hpow
    args: tuple = ()
    src: str = ""  # the LaTeX it came from, for the messages
    dims: tuple = ()  # of a tensor


class _Parser:
    """expr := [+-] term ([+-] term)*
    term := factor ((juxtaposition | \\cdot | \\odot | \\oslash | /) factor)*, left to right
    factor := atom [^ exponent];  atom := number, name, \\mathbf{..}, \\frac, (..), f(..), ..."""

    def __init__(self, latex: str, shapes: dict[str, tuple[str, ...]]):
        self.latex, self.toks, self.i, self.shapes = latex, tokenize(latex), 0, shapes
        self.dims = {d for dims in shapes.values() for d in dims}
        self.bars = 0  # how many plain |...| are open: inside one, a bar closes

    def fail(self, what: str, t: Tok | None = None):
        t = t or (self.toks[self.i] if self.i < len(self.toks) else None)
        where = f"{self.latex[t.start:t.end]!r} at {t.start}" if t else "the end"
        raise LatexSyntaxError(f"{what}: {where} in {self.latex!r}")

    def is_(self, kind: str, text: str | None = None, k: int = 0) -> bool:
        t = self.toks[self.i + k] if self.i + k < len(self.toks) else None
        return t is not None and t.kind == kind and text in (None, t.text)

    def take(self, kind: str | None = None, text: str | None = None) -> Tok:
        if self.i >= len(self.toks) or kind and not self.is_(kind, text):
            self.fail(f"expected {text or kind or 'more'}")
        self.i += 1
        return self.toks[self.i - 1]

    def node(self, op: str, args: tuple, start: int, dims: tuple = ()) -> Node:
        src = self.latex[self.toks[start].start:self.toks[self.i - 1].end]
        return Node(op, args, src, dims)

    def parse(self) -> Node:
        tree = self.expr()
        if self.i < len(self.toks):
            self.fail("cannot read on")
        return tree

    def expr(self) -> Node:
        start, sign = self.i, None
        if self.is_("sym", "-") or self.is_("sym", "+"):
            sign = self.take().text
        left = self.term()
        if sign == "-":
            left = self.node("neg", (left,), start)
        while self.is_("sym", "+") or self.is_("sym", "-"):
            op = "add" if self.take().text == "+" else "sub"
            left = self.node(op, (left, self.term()), start)
        return left

    def term(self) -> Node:
        start, left = self.i, self.factor()
        while True:
            if any(self.is_("cmd", c) for c in ("odot", "oslash", "cdot")):
                op = {"cdot": "mul"}.get(self.toks[self.i].text, self.toks[self.i].text)
                self.i += 1
            elif self.is_("sym", "/"):
                op, self.i = "div", self.i + 1
            elif self.starts_atom():
                op = "mul"  # juxtaposition
            else:
                return left
            left = self.node(op, (left, self.factor()), start)

    def starts_atom(self) -> bool:
        if self.i >= len(self.toks):
            return False
        t = self.toks[self.i]
        return (t.kind not in ("sym", "close", "bar") or t.text == "{"
                or t.kind == "bar" and not self.bars)

    def factor(self) -> Node:
        start, base = self.i, self.atom()
        if not self.is_("sym", "^"):
            return base
        self.i += 1
        if self.is_("name", "T") or self.is_("cmd", "top"):  # ^T, ^\top
            self.i += 1
            return self.node("T", (base,), start)
        if self.is_("num") or self.is_("name"):  # ^2: a one-token exponent
            return self.node("pow", (base, self.atom()), start)
        self.take("sym", "{")
        if (self.is_("name", "T") or self.is_("cmd", "top")) and self.is_("sym", "}", 1):
            self.i += 2
            return self.node("T", (base,), start)
        hadamard = self.is_("cmd", "circ")
        self.i += hadamard
        exponent = self.expr()
        self.take("sym", "}")
        return self.node("hpow" if hadamard else "pow", (base, exponent), start)

    def atom(self) -> Node:
        start = self.i
        t = self.take()
        if t.kind == "num":
            return self.node("scalar", (), start)
        if t.kind == "sym" and t.text == "{":  # a TeX group only groups
            self.i -= 1
            return self.group()
        if t.kind in ("open", "bar"):
            return self.bracketed(t, start)
        if t.kind == "cmd" and t.text in ("mathbf", "boldsymbol"):
            inner = self.group(self.take)
            if (inner.kind, inner.text) == ("num", "1"):
                return self.node("ones", (), start)
            if (inner.kind, inner.text) == ("name", "I"):
                if "I" in self.shapes:
                    self.fail("\\mathbf{I} could be the identity or the tensor I")
                return self.node("eye", (), start)
            return self.tensor(inner, start, bold=True)
        if t.kind == "cmd" and t.text == "frac":
            if self.is_("sym", "{") and self.is_("cmd", "partial", 1):
                return self.gradient(start)
            num = self.group()
            return self.node("div", (num, self.group()), start)
        if t.kind == "cmd" and t.text == "sqrt":
            return self.node("fn", (self.group(),), start)
        if t.kind == "cmd" and t.text in _FUNCTIONS and not self.names_known([t.text]):
            return self.apply(start)  # (a tensor sigma makes \sigma a name, below)
        if (t.kind, t.text) == ("word:operatorname", "diag"):
            return self.node("diag", (self.argument(),), start)
        if (t.kind, t.text) == ("word:operatorname", "tr"):
            return self.node("tr", (self.argument(),), start)
        return self.plain_name(t, start)

    def names(self, t: Tok) -> list[str]:
        """The file-language names a printed name may stand for."""
        if t.kind in ("name", "word:mathrm", "word:operatorname"):
            return [t.text]
        if t.kind == "cmd" and t.text in _GREEK:
            return [t.text, *_ALIASES.get(t.text, [])]
        self.fail("cannot read this as a name", t)

    def plain_name(self, t: Tok, start: int) -> Node:
        """A name not in bold: a scalar, a dim, a constant or an elementwise function."""
        known = self.names_known(self.names(t))
        if known and t.kind == "cmd" and t.text in _FUNCTIONS and self.is_("open"):
            self.fail(f"\\{t.text} could be a function or the scalar {known[0]}")
        if known:
            return self.tensor(t, start, bold=False)
        if self.is_("sym", "'") or self.is_("open"):  # h(X), h'\left(X\right), \operatorname{relu}
            return self.apply(start)
        constant = (t.kind, t.text) in (("cmd", "pi"), ("name", "e"))
        if constant or t.kind == "name" and re.fullmatch("[A-Z]", t.text):  # or a dim, as a number
            return self.node("scalar", (), start)
        self.fail("unknown name", t)

    def names_known(self, names: list[str]) -> list[str]:
        return [n for n in names if n in self.shapes or n in self.dims]

    def tensor(self, t: Tok, start: int, bold: bool) -> Node:
        known = self.names_known(self.names(t))
        if len(known) != 1:
            self.fail(f"could be any of {known}" if known else "not a known tensor", t)
        dims = tuple(self.shapes.get(known[0], ()))  # a dim is a scalar
        if bold != bool(dims):  # the printer's convention, relied on to tell names apart
            self.fail(f"tensor {known[0]} of dims {dims} {'in' if bold else 'not in'} bold", t)
        if len(dims) > 2:
            raise ShapeError(f"tensor {known[0]} of dims {dims} has no 2-D shape")
        return self.node("tensor", (), start, dims)

    def gradient(self, start: int) -> Node:
        """\\frac{\\partial L}{\\partial \\mathbf{Y}}: the shape of Y, whatever the loss."""
        self.take("sym", "{")
        self.take("cmd", "partial")
        self.names(self.take())  # the loss: any name
        for kind, text in (("sym", "}"), ("sym", "{"), ("cmd", "partial")):
            self.take(kind, text)
        bold = self.is_("cmd", "mathbf") or self.is_("cmd", "boldsymbol")
        self.i += bold
        wrt = self.group(self.take) if bold else self.take()
        self.take("sym", "}")
        return self.tensor(wrt, start, bold)

    def group(self, inside=None):
        """{ .. }: what ``inside`` reads there (an expression unless told)."""
        self.take("sym", "{")
        inner = (inside or self.expr)()
        self.take("sym", "}")
        return inner

    def bracketed(self, opening: Tok, start: int) -> Node:
        """( .. ), \\left( .. \\right), \\big[ .. \\big]: grouping; | .. | the absolute value."""
        self.bars += opening.kind == "bar"
        inner = self.expr()
        self.bars -= opening.kind == "bar"
        c = self.toks[self.i] if self.i < len(self.toks) else None
        if not (c and c.kind in ("close", "bar") and c.text == _CLOSING[opening.text]
                and c.size == opening.size):
            self.fail(f"{self.latex[opening.start:opening.end]!r} at {opening.start} not closed")
        self.i += 1
        return self.node("fn", (inner,), start) if opening.text == "|" else inner

    def argument(self) -> Node:
        if not self.is_("open", "("):
            self.fail("expected a bracketed argument")
        start = self.i
        return self.bracketed(self.take(), start)

    def apply(self, start: int) -> Node:
        """An elementwise function, after its name: primes, then the bracketed argument."""
        while self.is_("sym", "'"):
            self.i += 1
        return self.node("fn", (self.argument(),), start)


class _Shapes:
    """Shape inference over the tree; unknown dims live in a tiny union-find (``parent``)."""

    def __init__(self):
        self.parent: dict[Dim, Dim] = {}
        self.fresh = itertools.count(1)

    def find(self, d: Dim) -> Dim:
        while d in self.parent:
            d = self.parent[d]
        return d

    def unify(self, a: Dim, b: Dim) -> bool:
        """Make a and b one dim; False if they are two different known dims ("1" is known)."""
        a, b = self.find(a), self.find(b)
        if a != b and a.startswith("?"):
            self.parent[a] = b
        elif a != b and b.startswith("?"):
            self.parent[b] = a
        return a == b or "?" in a[:1] + b[:1]

    def resolve(self, shape) -> tuple[Dim, Dim]:
        return tuple(self.find(d) for d in shape)

    def show(self, node: Node, shape) -> str:
        src = node.src if len(node.src) <= 100 else node.src[:97] + "..."
        return "`{}` ({} x {})".format(src, *self.resolve(shape))

    def scalar(self, shape) -> bool:
        return self.resolve(shape) == ("1", "1")

    def of(self, n: Node) -> tuple[Dim, Dim]:
        if n.op == "tensor":  # a vector is a column
            return n.dims if len(n.dims) == 2 else (n.dims[0], "1") if n.dims else ("1", "1")
        if n.op in ("ones", "eye"):
            d = f"?{next(self.fresh)}"
            return (d, "1") if n.op == "ones" else (d, d)
        if n.op == "scalar":
            return ("1", "1")
        shapes = [self.of(a) for a in n.args]
        (a, sa), (b, sb) = (n.args[0], shapes[0]), (n.args[-1], shapes[-1])
        if n.op in ("neg", "fn"):  # elementwise
            return sa
        if n.op == "T":
            return sa[::-1]
        if n.op in ("add", "sub", "odot", "oslash"):  # equal shapes, or a scalar either side
            if self.scalar(sa) or self.scalar(sb):
                return sb if self.scalar(sa) else sa
            what = {"add": "sum", "sub": "difference", "odot": "Hadamard product",
                    "oslash": "Hadamard division"}[n.op]
            message = f"{what} of different shapes: {self.show(a, sa)} and {self.show(b, sb)}"
            if not (self.unify(sa[0], sb[0]) and self.unify(sa[1], sb[1])):
                raise ShapeError(message)
            return sa
        if n.op == "mul":
            if self.scalar(sa) or self.scalar(sb):  # scaling
                return sb if self.scalar(sa) else sa
            message = f"matrix product of {self.show(a, sa)} and {self.show(b, sb)}: " \
                      f"inner dims {self.find(sa[1])} and {self.find(sb[0])} differ"
            if not self.unify(sa[1], sb[0]):
                raise ShapeError(message)
            return (sa[0], sb[1])
        if n.op == "div" and not self.scalar(sb):
            raise ShapeError(f"division of {self.show(a, sa)} by a non-scalar {self.show(b, sb)}")
        if n.op == "div":
            return sa
        if n.op == "tr":  # the trace of a square matrix is a scalar
            if not self.unify(*sa):
                raise ShapeError(f"trace of a non-square {self.show(a, sa)}")
            return ("1", "1")
        if n.op == "diag":
            rows, cols = self.resolve(sa)
            if "1" not in (rows, cols):
                raise ShapeError(f"diag of a non-vector {self.show(a, sa)}")
            return (cols, cols) if rows == "1" else (rows, rows)
        if not self.scalar(sb) and not (n.op == "pow" and self.scalar(sa)):
            raise ShapeError(f"{self.show(a, sa)} to a non-scalar power {self.show(b, sb)}")
        if n.op == "hpow" or self.scalar(sa):  # X^{\circ 2}; x^{2}, e^{X}: elementwise
            return sb if self.scalar(sa) else sa
        message = f"matrix power of a non-square {self.show(a, sa)}"  # X^{2} without \circ
        if not self.unify(*sa):
            raise ShapeError(message)
        return sa


def latex_shape(latex: str, shapes: dict[str, tuple[str, ...]]) -> tuple[Dim, Dim]:
    """The (rows, cols) of the matrix form ``latex``, given each tensor's dims in ``shapes``.

    A dim no context fixes (say of a lone ``\\mathbf{1}``) comes back as "?k".
    Raises ShapeError on a non-conforming operation, LatexSyntaxError on what it cannot read.
    """
    inference = _Shapes()
    return inference.resolve(inference.of(_Parser(_plain_names(latex), shapes).parse()))


def _plain_names(latex: str) -> str:
    """The printer's spellings of names (``\\mathbf{W}^{(1)}``, ``\\mathbf{Xh}``) as the
    ones this reader knows (``\\mathbf{W1}``, ``\\mathbf{\\mathrm{Xh}}``)."""
    latex = re.sub(r"\\mathbf\{([A-Za-z])\}\^\{\((\d+)\)\}", r"\\mathbf{\1\2}", latex)
    latex = re.sub(r"\\left\(\\mathbf\{([A-Za-z]\d+)\}\\right\)", r"\\mathbf{\1}", latex)
    latex = re.sub(r"(?<![A-Za-z\\])([A-Za-z])\^\{\((\d+)\)\}", r"\1\2", latex)
    return re.sub(r"\\mathbf\{([A-Za-z][A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*)\}",
                  r"\\mathbf{\\mathrm{\1}}", latex)
