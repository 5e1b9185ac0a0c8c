"""The LaTeX reader (CONTRACT section 6): each construct of the documents read correctly, or
refused with its place; display math split into chains and links.

Expressions are read in the context of seed 002's linear layer (question 1a-1c) or its
activation (1d), and printed back in the file language, so that a test states what the
reader understood.
"""
from __future__ import annotations

import pytest

from indexcalc.syntax import latex as lx

VOCABULARY = lx.Vocabulary(tensors=frozenset({"X", "W", "b", "Y", "L", "T", "x", "s", "p", "o",
                                              "y", "F", "gamma", "f", "yhat", "x_bar"}),
                           dims=frozenset({"S", "M", "N", "C"}), functions=frozenset({"h"}))


def read(text: str) -> str:
    return lx.to_text(lx.read_side(text, 0, VOCABULARY), VOCABULARY.dims)


def refused(text: str) -> lx.LatexError:
    with pytest.raises(lx.LatexError) as caught:
        lx.read_side(text, 0, VOCABULARY)
    return caught.value


# --- each construct, read ---------------------------------------------------------------------

@pytest.mark.parametrize("latex, text", [
    # derivatives (seed 002, 1a)
    (r"\frac{\partial L}{\partial W_{ij}}", "dL_dW[i,j]"),
    (r"\frac{\partial Y_{sn}}{\partial W_{ij}}", "dY_dW[s,n,i,j]"),
    (r"\frac{\partial L}{\partial \mathbf{W}}", "dL_dW"),
    (r"\left[\frac{\partial L}{\partial \mathbf{W}}\right]_{ij}", "dL_dW[i,j]"),
    (r"\begin{bmatrix}\frac{\partial L}{\partial \mathbf{b}}\end{bmatrix}_{j}", "dL_db[j]"),
    (r"\frac{\partial (e^{X_{sc}})}{\partial X_{ij}}", "d(exp(X[s,c]))/dX[i,j]"),
    (r"\frac{\partial}{\partial X_{ij}} \left( T_{sc} \ln X_{sc} \right)",
     "d(T[s,c] log(X[s,c]))/dX[i,j]"),
    (r"\nabla_s F", "dF_ds"),
    (r"\nabla_{\mathbf{W}} L", "dL_dW"),
    # sums, with and without limits (seed 002; seed 000; seed 001)
    (r"\sum_{s}^{S} \sum_{n}^{N} X_{sn}", "sum_s sum_n X[s,n]"),
    (r"\sum_{d=1}^D x_d W_{di}", "sum_d x[d] W[d,i]"),
    (r"\sum_{s,c} T_{sc}", "sum_{s,c} T[s,c]"),
    (r"\sum_{i\neq k} y_i p_k", "sum_{i != k} y[i] p[k]"),
    (r"\sum_m X_{sm} W_{nm} + b_n", "sum_m X[s,m] W[n,m] + b[n]"),
    # deltas, functions, primes
    (r"\delta_{ni}", "delta(n,i)"),
    (r"\delta_{si} \delta_{mj}", "delta(s,i) delta(m,j)"),
    (r"e^{X_{sc}}", "exp(X[s,c])"),
    (r"\exp (o_i)", "exp(o[i])"),
    (r"\log p_i", "log(p[i])"),
    (r"\ln X_{sc}", "log(X[s,c])"),
    (r"h'(X_{sn})", "h'(X[s,n])"),
    (r"h(X_{sn})", "h(X[s,n])"),
    (r"\sqrt{S}", "sqrt(S)"),
    (r"\tanh^2(X_{sn})", "tanh(X[s,n])^2"),
    (r"\sigma(X_{sn})", "sigmoid(X[s,n])"),
    # products and the index of a name
    (r"y_k (1 - p_k)", "y[k] (1 - p[k])"),
    (r"W_{k\ell}", "W[k,l]"),
    (r"W_{i,j}", "W[i,j]"),
    (r"[\mathbf{W}]_{ij}", "W[i,j]"),
    (r"\boldsymbol{\gamma}", "gamma"),
    (r"-\frac{1}{S} \frac{T_{ij}}{X_{ij}}", "-(1 / S) (T[i,j] / X[i,j])"),
    (r"a \cdot b" .replace("a", "x_i").replace("b", "x_j"), "x[i] x[j]"),
    # matrices (seed 002 1a-1f, 2a)
    (r"\left(\frac{\partial L}{\partial \mathbf{Y}}\right)^{T} \mathbf{X}", "dL_dY.T @ X"),
    (r"\mathbf{X}^\top \mathbf{Y}", "X.T @ Y"),
    (r"\mathbf{X}^\intercal \mathbf{Y}", "X.T @ Y"),
    (r"\mathbf{1}^T \left(\frac{\partial L}{\partial \mathbf{Y}} \right)", "ones.T @ dL_dY"),
    (r"\frac{\partial L}{\partial \mathbf{Y}} \odot h'(\mathbf{X})", "dL_dY * h'(X)"),
    (r"\mathbf{T} \oslash \mathbf{Y}", "T / Y"),
    (r"\mathbf{T} \otimes \mathbf{X}", "np.kron(T, X)"),
    (r"\mathbf{Y} \odot \Big(\mathbf{T} - \Big(\mathbf{T} \odot \mathbf{Y} \Big) \mathbf{1} "
     r"\mathbf{1}^T \Big)", "Y * (T - (T * Y) @ ones @ ones.T)"),
    (r"(x^\top (\nabla_s F))_{ij}", "(x.T @ dF_ds)[i,j]"),
    (r"\mathbf{W}^{-1}", "inv(W)"),
    # notation of lecture notes: total derivatives, norms, accents, diag
    (r"\frac{\mathrm{d} f}{\mathrm{d} x_k}", "df_dx[k]"),
    (r"\frac{df}{dx_k}", "df_dx[k]"),
    (r"\|\mathbf{x}\|^2", "norm(x)^2"),
    (r"\lVert \mathbf{W} \rVert_F^2", "norm(W)^2"),
    (r"|x_k|", "abs(x[k])"),
    (r"\frac{1}{2}\,\|\mathbf{x} - \mathbf{W}\mathbf{x}\|^2", "(1 / 2) norm(x - W @ x)^2"),
    (r"\|\mathbf{x}\| \, \|\mathbf{x}\|", "norm(x) norm(x)"),
    (r"\hat{y}_k", "yhat[k]"),
    (r"\bar{x}", "x_bar"),
    (r"\operatorname{diag}(\mathbf{x}) \mathbf{W}", "diag(x) @ W"),
    # spacing and sizing commands are dropped
    (r"\, X_{sn} \; \quad W_{nm} \!", "X[s,n] W[n,m]"),
    (r"\left( X_{sn} \right)", "X[s,n]"),
    (r"\big( X_{sn} \big)", "X[s,n]"),
])
def test_each_construct_is_read(latex, text):
    assert read(latex) == text


def test_cases_are_read_with_their_conditions():
    node = lx.read_side(r"\begin{cases} p_k (1 - p_k) & \text{if }\; i=k \\ - p_k p_i & "
                               r"\text{if }\; i\neq k \end{cases}", 0, VOCABULARY)
    assert read.__name__ and lx.to_text(node) == \
        "{p[k] (1 - p[k]) if [i == k]; -p[k] p[i] if [i != k]}"


# --- what is not read is refused, with its place ----------------------------------------------

@pytest.mark.parametrize("latex, at, message", [
    (r"X_{s1}", 4, "numbered entry"),
    (r"\left[\sum_{s} Y_{s1}, \dots \right]", 19, "numbered entry"),
    (r"X \dots Y", 2, "elided"),
    (r"\text{for all } i", 0, "text inside the math"),
    (r"\foo{X}", 0, r"\foo is not read"),
    (r"\begin{bmatrix} a & b \end{bmatrix}", 0, "several entries"),
    (r"\frac{\partial^2 L}{\partial W_{ij}^2}", 14, "higher order"),
    (r"\sum_{s=2}^{S} X_s", 8, "from other than 1"),
    (r"\nabla (u^T A)", 7, r"\nabla needs the variable"),
    (r"(X_{sn}", 7, "expected ')'"),
])
def test_what_is_not_read_is_refused_with_its_place(latex, at, message):
    error = refused(latex)
    assert message in error.message
    assert error.offset == at
    assert not error.wrong


def test_a_derivative_symbol_without_a_variable_is_wrong_notation():
    """Seed 002, 1d: ``\\frac{\\partial Y_{sn}}{h'(X_{sn}) \\delta_{si} \\delta_{nj}}`` divides
    by h' where the chain rule multiplies: no reading makes it a derivative."""
    error = refused(r"\frac{\partial Y_{sn}}{h'(X_{sn}) \delta_{si} \delta_{nj}}")
    assert error.wrong and "not a derivative" in error.message
    assert refused(r"\frac{X}{\partial W}").wrong


# --- documents: displays, rows, chains, links -------------------------------------------------

def chains(text: str) -> list[list[tuple[str, str | None]]]:
    return [[(p.text, p.relation) for p in c.pieces]
            for d in lx.read_document(text) for c in d.chains]


def test_every_kind_of_display_is_found():
    text = "\n".join([
        "$$a = b$$",
        r"\[c = d\]",
        r"\begin{equation} e = f \end{equation}",
        r"\begin{equation*} g = h \end{equation*}",
        r"\begin{align} i &= j \\ &= k \end{align}",
        r"\begin{align*} l &= m \end{align*}",
        r"\begin{gather} n = o \end{gather}",
        r"$$\begin{split} p &= q \\ &= r \end{split}$$",
        r"$$\begin{aligned} s &= t \end{aligned}$$",
        "inline $u = v$ is not a display",
    ])
    assert chains(text) == [
        [("a", None), ("b", "=")], [("c", None), ("d", "=")], [("e", None), ("f", "=")],
        [("g", None), ("h", "=")], [("i", None), ("j", "="), ("k", "=")],
        [("l", None), ("m", "=")], [("n", None), ("o", "=")],
        [("p", None), ("q", "="), ("r", "=")], [("s", None), ("t", "=")]]


def test_rows_that_do_not_start_with_a_relation_start_a_chain():
    """Seed 002, 1c: one split environment holding three chains."""
    text = r"$$\begin{split} & A = B \\ & C = D = E \\ & F = G \Leftrightarrow H = I \end{split}$$"
    assert chains(text) == [[("A", None), ("B", "=")],
                            [("C", None), ("D", "="), ("E", "=")],
                            [("F", None), ("G", "="), ("H", "iff"), ("I", "=")]]


def test_line_breaks_separate_chains_unless_the_expression_goes_on():
    """Seed 002, 1a: three equations on three lines of one display; 1f: a chain whose
    second line starts with '='; seed 001: a line ending in '=' before \\begin{cases}."""
    text = "$$A = B\nC = D\n= E\nF = \nG + H\n+ K$$"
    assert chains(text) == [[("A", None), ("B", "=")],
                            [("C", None), ("D", "="), ("E", "=")],
                            [("F", None), ("G + H\n+ K", "=")]]


def test_a_display_that_starts_with_a_relation_continues_the_chain_before():
    """Seed 002, 1e: '$$= \\frac{\\partial L}{...} - ...$$' goes on from the display before."""
    text = "$$A = B$$\n\n$$= C$$"
    assert chains(text) == [[("A", None), ("B", "="), ("C", "=")]]


def test_trailing_punctuation_and_membership_are_not_values():
    text = r"$$A = B, \quad$$ $$C = D.$$ $$E = F \in \mathbb{R}^{S \times C}$$"
    assert chains(text) == [[("A", None), ("B", "=")], [("C", None), ("D", "=")],
                            [("E", None), ("F", "=")]]


def test_relations_inside_braces_do_not_split():
    text = r"$$A = \sum_{d=1}^{D} x_d$$"
    assert chains(text) == [[("A", None), (r"\sum_{d=1}^{D} x_d", "=")]]


def test_annotations_and_definitions_are_not_values():
    text = (r"$$\begin{aligned} A &:= B \quad \text{(chain rule)} \\ &= C && \text{by the "
            r"product rule}, \\ &= D, \quad \text{for all } i \end{aligned}$$")
    assert chains(text) == [[("A", None), ("B", "="), ("C", "="), ("D", "=")]]


def test_a_row_that_starts_with_an_operator_goes_on_from_the_row_before():
    text = r"$$\begin{aligned} A &= B \\ &\quad - C \\ &= D \end{aligned}$$"
    ((first, second, third),) = chains(text)
    assert second[0].split() == ["B", r"\quad", "-", "C"] and third == ("D", "=")


def test_a_condition_at_the_end_of_a_row_restricts_its_chain():
    (display,) = lx.read_document(r"$$A_{ik} = - p_k p_i, \quad i \neq k$$")
    (chain,) = display.chains
    assert chain.condition == lx.Condition("i", "!=", "k")
    assert [p.text for p in chain.pieces] == ["A_{ik}", "- p_k p_i"]


def test_a_condition_before_a_display_is_read():
    """Seed 001: 'If $i = k$,' before the chain for the diagonal of the softmax Jacobian."""
    (display,) = lx.read_document("If $i \\neq k$,\n\n$$A = B$$")
    assert display.chains[0].condition == lx.Condition("i", "!=", "k")


def test_a_context_switch_names_a_file():
    text = "$$A = B$$\n<!-- indexcalc: other.idx -->\n$$C = D$$\n% indexcalc: third.idx\n$$E = F$$"
    contexts = [c.context for d in lx.read_document(text) for c in d.chains]
    assert contexts == [None, "other.idx", "third.idx"]


def test_prose_before_a_display_is_a_condition_only_when_it_compares():
    (display,) = lx.read_document("For $W \\in \\mathbb{R}^{N \\times M}$,\n\n$$A = B$$")
    assert display.chains[0].condition is None and not display.chains[0].unread_condition
    (display,) = lx.read_document("If $x_i > 0$:\n\n$$A = B$$")  # on values: not read
    assert display.chains[0].unread_condition == "x_i > 0"


def test_a_row_break_with_spacing_is_no_display_and_no_value():
    text = "Title\\\\[4pt] notes\n\\begin{align*} A &= B \\\\[2pt] &= C \\end{align*}"
    assert chains(text) == [[("A", None), ("B", "="), ("C", "=")]]


def test_commands_the_document_defines_are_expanded():
    text = r"\newcommand{\R}{\mathbb{R}} \newcommand{\vx}{\mathbf{x}} \def\half{\frac{1}{2}}"
    macros = lx.read_macros(text)
    assert macros == {r"\R": r"\mathbb{R}", r"\vx": r"\mathbf{x}", r"\half": r"\frac{1}{2}"}
    node = lx.read_side(r"\half \vx^\top \vx", 0, VOCABULARY, macros)
    assert lx.to_text(node) == "(1 / 2) x.T @ x"


def test_a_sum_is_the_argument_of_a_function_written_without_brackets():
    assert read(r"\log\sum_{j=1}^{C} e^{X_{sj}}") == "log(sum_j exp(X[s,j]))"


@pytest.mark.parametrize("latex, text", [
    (r"\frac12 x_k", "(1 / 2) x[k]"),
    (r"\left. x_k \right.", "x[k]"),
    (r"x_k^2", "x[k]^2"),
])
def test_terse_latex(latex, text):
    assert read(latex) == text


def test_a_row_break_that_forbids_a_page_break_is_a_row_break():
    """indexcalc's own documents join a result's index and matrix forms with \\\\* (issue 14)."""
    text = "\\begin{align*} A &= B \\\\* \\Leftrightarrow\\quad C &= D \\end{align*}"
    assert [[(side.strip().replace("\\quad ", ""), relation) for side, relation in chain]
            for chain in chains(text)] == [[("A", None), ("B", "="), ("C", "iff"), ("D", "=")]]


def test_a_hadamard_power_is_read_as_the_elementwise_power():
    """X^{\\circ 2}, as the matrix forms print the square of every entry (issue 14)."""
    assert read(r"\mathbf{X}^{\circ 2}") == read(r"\mathbf{X}^{2}")
    assert read(r"\left(\mathbf{1} - \mathbf{Y}^{\circ 2}\right)") == read(r"\left(\mathbf{1} - \mathbf{Y}^{2}\right)")
