"""Products in the generated code are multiplied from a vector end (issue 10, item 6): the
order of the work never rises above what matrix-vector products need."""
from __future__ import annotations

import numpy as np

from conftest import compiled, derive_text, result
from indexcalc.matrix import ir
from indexcalc.matrix.chains import reassociate

MAHALANOBIS = """
dims D
input x[D], mu[D], L[D,D]
S[i,j] = sum_k L[i,k] L[j,k]
f = sum_{i,j} (x[i] - mu[i]) S[i,j] (x[j] - mu[j])
grad f wrt x, L
"""


def matrix_products(node: ir.Node) -> list[ir.MatMul]:
    """The products of two matrices in ``node``."""
    return [n for n in ir.walk(node) if isinstance(n, ir.MatMul)
            and n.a.shape.ndim == 2 and n.b.shape.ndim == 2]


def test_a_chain_ending_in_a_vector_is_multiplied_from_the_vector():
    A, B, C = (ir.Ref(n, ("N", "N")) for n in "ABC")
    x = ir.Ref("x", ("N",))
    chain = ir.MatMul(ir.MatMul(A, B), ir.MatMul(C, x))
    fast = reassociate(chain, lambda name: None)
    assert matrix_products(chain) and not matrix_products(fast)
    row = ir.MatMul(ir.MatMul(x, A), ir.Transpose(ir.MatMul(B, C)))  # x^T A (B C)^T
    assert not matrix_products(reassociate(row, lambda name: None))


def test_a_chain_of_matrices_alone_is_left_as_written():
    A, B = ir.Ref("A", ("N", "N")), ir.Ref("B", ("N", "N"))
    assert reassociate(ir.MatMul(A, ir.Transpose(B)), lambda name: None) == \
        ir.MatMul(A, ir.Transpose(B))


def test_the_mahalanobis_gradient_never_forms_l_l_transpose():
    """df/dx = S r + S^T r with S = L L^T, r = x - mu: displayed with S, computed as
    L (L^T r) + (r^T L) L^T, two matrix-vector products each (textbook: 2 L L^T r)."""
    derived = derive_text(MAHALANOBIS)
    grad_x = result(derived, "x")
    assert grad_x.matrix.where == (("S", "L @ L.T"),)  # the displayed form keeps S
    assert "S" not in grad_x.numpy.args and ":= L @ L.T" not in grad_x.numpy.source
    rng = np.random.default_rng(2)
    D = 50
    x, mu, L = rng.normal(size=D), rng.normal(size=D), rng.normal(size=(D, D))
    got = compiled(grad_x)(*(dict(x=x, mu=mu, L=L)[a] for a in grad_x.numpy.args))
    np.testing.assert_allclose(got, 2 * L @ (L.T @ (x - mu)), rtol=1e-10)
