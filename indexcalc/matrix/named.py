"""Naming what a textbook names: a softmax written inline becomes ``S`` in the display.

A file may write the softmax into the loss (seed 003: ``log(sum_j exp(sum_m W[m,j] X[m,n]))``)
instead of defining it; the derived gradient then holds ``exp(U) ⊘ (1 1^T exp(U))`` in
full.  A textbook writes ``X (S - Y)^T`` with ``S = softmax(W^T X)``.  ``name_softmaxes``
finds the structure, not a name: an elementwise quotient of ``exp(A)`` by the broadcast sum
of ``exp(A)`` over one axis (or of ``exp(A^T)``: the softmax transposed), and replaces each
by a reference to a fresh name, returned with its definition for ``matrix.where``.  Only the
displayed form is named (the generated code computes the quotient where it stands), and
the check evaluates the displayed form with its ``where`` as printed.
"""
from __future__ import annotations

from .. import naming
from .ir import Apply, Broadcast, HadamardDiv, Node, Ref, SumAxis, Transpose, map_children
from .recognize import factor, transpose

#: Names tried for a softmax, in order (the documents' S and P), then P2, P3, ...
SOFTMAX_NAMES = ("S", "P", "A")


def name_softmaxes(expr: Node, taken: set[str]) -> tuple[Node, list[tuple[str, Node]]]:
    """``expr`` with every inline softmax replaced by a named reference, and the named
    definitions in order; ``taken`` are the names the file uses."""
    named: dict[Node, str] = {}
    order: list[tuple[str, Node]] = []

    def name_for(softmax: Node) -> str:
        if softmax not in named:
            used = set(taken) | set(named.values())
            fresh = next((n for n in SOFTMAX_NAMES if n not in used), None) or \
                naming.fresh_variant("P", used)  # P2, P3, ... without end
            named[softmax] = fresh
            order.append((fresh, softmax))
        return named[softmax]

    def visit(node: Node) -> Node:
        node = map_children(node, visit)
        found = _softmax(node)
        if found is None:
            return node
        softmax, transposed = found
        ref = Ref(name_for(softmax), softmax.shape.dims)
        return Transpose(ref) if transposed else ref

    named_expr = visit(expr)
    if order:  # S^T - Y^T, once S is a name, reads (S - Y)^T
        named_expr = factor(named_expr)
    return named_expr, order


def _softmax(node: Node) -> tuple[Node, bool] | None:
    """``(softmax, transposed)`` if ``node`` is ``exp(A) ⊘ (exp(A) summed over an axis,
    broadcast back)``, or the same of ``A^T``; else None."""
    if not (isinstance(node, HadamardDiv) and isinstance(node.b, Broadcast)
            and isinstance(node.b.x, SumAxis) and node.shape.ndim == 2):
        return None
    top, summed = node.a, node.b.x
    if not (_is_exp(top) and _is_exp(summed.x) and summed.x.shape.ndim == 2):
        return None
    inner = summed.x  # exp(A), summed over ``summed.axis``
    # the sum over axis 0 is a row: it runs along the columns of exp(A) (along 0)
    along_same = 0 if summed.axis == 0 else 1
    if top == inner and node.b.along == along_same:
        return node, False
    if top == _transposed(inner) and node.b.along == 1 - along_same:
        own = HadamardDiv(inner, Broadcast(summed, inner.shape, along_same))
        return own, True
    return None


def _is_exp(node: Node) -> bool:
    return isinstance(node, Apply) and node.fn == "exp" and node.order == 0


def _transposed(node: Node) -> Node:
    """``exp(A)^T`` as the recognizer writes it: ``exp(A^T)``, with ``(B C)^T = C^T B^T``."""
    return Apply(node.fn, transpose(node.x), node.order)
