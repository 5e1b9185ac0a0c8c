"""Products evaluated in the cheapest order: a chain of matrix products that ends in a vector
is multiplied from that end, so no matrix-matrix product is formed where matrix-vector
products suffice.

This serves the generated code only; the displayed form keeps the form a person writes.
``S (x - mu)`` with ``S = L L^T`` is displayed so, and computed as ``L (L^T (x - mu))``:
O(D^2) work instead of O(D^3) (a Mahalanobis distance's gradient).  A defined tensor that is
itself a product of matrices is opened up where it meets a vector, so that its product is
never formed; it stays named (and computed once) everywhere else.  Associativity is the only
identity used, so the value is the same up to rounding, and the numeric check tests the code
as generated.
"""
from __future__ import annotations

from typing import Callable

from .ir import MatMul, Node, Ref, Transpose, map_children

#: The matrix form of a defined tensor, or None (an input, or no matrix form).
Definitions = Callable[[str], "Node | None"]


def reassociate(node: Node, definition: Definitions) -> Node:
    """``node`` with every product chain that has a vector at one end multiplied from it."""
    if isinstance(node, MatMul):
        chain = _chain(node, definition, open_definitions=True)
        if _has_vector_end(chain):
            return _fold(chain, definition)
        return MatMul(reassociate(node.a, definition), reassociate(node.b, definition))
    return map_children(node, lambda child: reassociate(child, definition))


def _fold(chain: list[Node], definition: Definitions) -> Node:
    chain = [reassociate(x, definition) for x in chain]
    if not _is_vector(chain[-1]):
        # v^T A B is (B^T A^T v)^T, and a 1-D array is its own transpose: one orientation,
        # so that equal products print alike and are computed once.
        chain = [_transpose(x) for x in reversed(chain)]
    acc = chain[-1]
    for x in reversed(chain[:-1]):
        acc = MatMul(x, acc)
    return acc


def _chain(node: Node, definition: Definitions, open_definitions: bool) -> list[Node]:
    """The factors of the product ``node``, left to right (transposes pushed inside)."""
    if isinstance(node, MatMul):
        return (_chain(node.a, definition, open_definitions)
                + _chain(node.b, definition, open_definitions))
    if isinstance(node, Transpose):
        inner = _chain(node.x, definition, open_definitions)
        if len(inner) > 1:
            return [_transpose(x) for x in reversed(inner)]
        return [_transpose(inner[0])]
    if open_definitions and isinstance(node, Ref) and node.grad is None:
        body = definition(node.name)
        if isinstance(body, (MatMul, Transpose)) and _is_chain_of_leaves(body):
            return _chain(body, definition, open_definitions)
    return [node]


def _is_chain_of_leaves(node: Node) -> bool:
    if isinstance(node, MatMul):
        return _is_chain_of_leaves(node.a) and _is_chain_of_leaves(node.b)
    if isinstance(node, Transpose):
        return _is_chain_of_leaves(node.x)
    return isinstance(node, Ref)


def _transpose(node: Node) -> Node:
    if isinstance(node, Transpose):
        return node.x
    if _is_vector(node):
        return node  # a 1-D array: @ reads it as the row or column that conforms
    return Transpose(node)


def _is_vector(node: Node) -> bool:
    return node.shape.ndim == 1


def _has_vector_end(chain: list[Node]) -> bool:
    return len(chain) > 2 and (_is_vector(chain[0]) or _is_vector(chain[-1]))


