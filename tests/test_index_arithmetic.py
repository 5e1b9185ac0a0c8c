"""Index arithmetic (CONTRACT section 3): affine positions ``x[u+k]`` with zero padding,
constant indices ``w[0]``, comparisons of indices ``[u <= t]`` and bounded sums.

Convolutions are checked against NumPy's own ``np.convolve``/``np.correlate`` (an oracle
that shares no code with indexcalc): for ``y[u] = sum_k w[k] x[u+k]`` (a "valid"
correlation) and ``L = sum_u g[u] y[u]``, dL/dx is the "full" convolution of g with w and
dL/dw the valid correlation of x with g.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import derivation, derive_text, result
from indexcalc.problem import InputError
from indexcalc.render.printing import to_latex, to_text
from indexcalc.syntax.idx import parse_text
from indexcalc.terms import Affine, Grad, Index, Sum, Tensor

CONV = """
dims T=9, K=3
dims U = T - K + 1
input x[T], w[K]
y[u] = sum_k w[k] x[u+k]
L = loss(y)
grad L wrt x, w
"""


def _call(r, values: dict):
    fn = eval(r.numpy.source, {"np": np})  # noqa: S307 - the tool's own generated lambda
    return fn(*(values[a] for a in r.numpy.args))


def test_a_shifted_read_is_an_affine_position_of_the_tensors_dim():
    y = parse_text(CONV).definitions["y"].body
    (read,) = [t for t in y.walk() if isinstance(t, Tensor) and t.name == "x"]
    u, k = Index("u", "U"), Index("k", "K")
    assert read.indices == (Affine(((1, u), (1, k)), 0, "T"),)
    assert read.free == {u, k}


def test_positions_with_coefficients_offsets_and_constants():
    p = parse_text("""
dims T=9, K=3
dims U = (T - K) // 2 + 1
input x[T], w[K]
f = sum_{u,k} w[k] x[2*u+k-1] + w[0]
grad f wrt w
""")
    reads = {str(t.indices[0]) for t in p.definitions["f"].body.walk() if isinstance(t, Tensor)}
    assert reads == {"k", "2u+k-1", "0"}


@pytest.mark.parametrize("line, message, column", [
    ("f = sum_{u,k} w[k] x[u+k]", "cannot tell which dim index u ranges over", 10),
    ("f = w[-1]", "a constant index counts from 0", 7),
    ("f = w[3]", "w[...] has 3 entries along K (0 to 2); 3 is outside", 7),
    ("f = sum_k w[k] x[k+0.5]", "an index expression takes whole numbers", 20),
    ("f = sum_k w[k] x[k+]", "expected an index", 20),
    ("f = sum_t x[t] w[t]", "index t ranges over K here but over T", 18),
])
def test_bad_index_arithmetic_is_bad_input_at_its_place(line, message, column):
    with pytest.raises(InputError) as caught:
        parse_text(f"dims T=9, K=3\ninput x[T], w[K]\n{line}\ngrad f wrt w\n", "f.idx")
    assert message in str(caught.value)
    assert (caught.value.location.line, caught.value.location.column) == (3, column)


def test_an_index_of_a_dim_defined_from_another_may_index_that_dims_positions():
    """d[u] = x[u+1] - x[u] with U = T - 1: u ranges over U (both reads are in range)."""
    d = derive_text("""
dims T=8
dims U = T - 1
input x[T]
d[u] = x[u+1] - x[u]
f = sum_u d[u]^2
grad f wrt x
""")
    (r,) = d.results
    assert r.check.passed
    x = np.random.default_rng(1).normal(size=8)
    diff = np.diff(x)
    want = np.zeros(8)
    want[1:] += 2 * diff
    want[:-1] -= 2 * diff
    np.testing.assert_allclose(_call(r, {"x": x, "d": diff, "T": 8}), want, atol=1e-12)


def test_the_convolution_gradients_equal_numpys_convolve_and_correlate():
    d = derive_text(CONV)
    dx, dw = d.results
    assert dx.check.passed and dw.check.passed
    rng = np.random.default_rng(0)
    x, w, g = rng.normal(size=9), rng.normal(size=3), rng.normal(size=7)
    values = {"x": x, "w": w, "dL_dy": g, "T": 9, "K": 3, "U": 7}
    np.testing.assert_allclose(_call(dx, values), np.convolve(g, w, "full"), atol=1e-12)
    np.testing.assert_allclose(_call(dw, values), np.correlate(x, g, "valid"), atol=1e-12)


def test_a_dilated_convolutions_input_gradient_is_the_dilated_full_convolution():
    """y[u] = sum_k w[k] x[u+2k] (dilation 2): dL/dx is g convolved with w spread out by
    zeros (np.convolve with the dilated kernel), read off the contracted outer sum."""
    d = derive_text("""
dims T=11, K=3
dims U = T - 2*K + 2
input x[T], w[K]
y[u] = sum_k w[k] x[u+2*k]
L = loss(y)
grad L wrt x, w
""")
    dx, dw = d.results
    assert dx.check.passed and dw.check.passed
    assert to_text(dx.index) == "sum_k dL_dy[i-2k] * w[k]"
    rng = np.random.default_rng(1)
    x, w, g = rng.normal(size=11), rng.normal(size=3), rng.normal(size=7)
    spread = np.zeros(5)
    spread[::2] = w
    values = {"x": x, "w": w, "dL_dy": g, "T": 11, "K": 3, "U": 7}
    np.testing.assert_allclose(_call(dx, values), np.convolve(g, spread, "full"), atol=1e-12)


def test_the_steps_show_the_shifted_delta_its_contraction_and_the_full_correlation():
    dx = derive_text(CONV).results[0]
    steps = [s for b in dx.blocks for s in b.steps]
    text = {s.rule: to_text(s.after) for s in steps}
    assert text["derivative of an entry"] == "sum_k w[k] * delta(u+k,i)"
    assert text["contract deltas"] == "[0 <= i-u < K] * w[i-u]"
    assert "zero padding" in text and "change of summation index" in text
    assert to_text(dx.index) == "sum_k dL_dy[i-k] * w[k]"
    latex = to_latex(next(s.after for s in steps if s.rule == "contract deltas"))
    assert latex == "\\left[0 \\le i-u < K\\right] w_{i-u}"


def test_same_padding_reads_zeros_past_both_ends():
    d = derive_text("""
dims T=8, K=3
input x[T], w[K]
z[t] = sum_k w[k] x[t+k-1]
L = loss(z)
grad L wrt x, w
""")
    dx, dw = d.results
    assert dx.check.passed and dw.check.passed
    rng = np.random.default_rng(2)
    x, w, g = rng.normal(size=8), rng.normal(size=3), rng.normal(size=8)
    values = {"x": x, "w": w, "dL_dz": g, "T": 8, "K": 3}
    full = np.convolve(g, w, "full")  # length 10; "same" drops one at each end
    np.testing.assert_allclose(_call(dx, values), full[1:-1], atol=1e-12)
    padded = np.concatenate([[0.0], x, [0.0]])
    np.testing.assert_allclose(_call(dw, values), np.correlate(padded, g, "valid"), atol=1e-12)


def test_generated_convolution_code_is_whole_array():
    """No Python loop over entries: a shifted read that can leave the range is a gather from
    the array with a zero appended (np.pad), at the position or, outside, at that zero; one
    the dims prove in range (the weight gradient's x[u+k]) is a plain gather."""
    for r in derivation("conv2d").results:
        assert r.check.passed
        assert " for " not in r.numpy.source
    dx = result(derivation("conv2d"), "x").numpy.source
    assert "np.pad(" in dx and "np.take(" in dx and "np.clip(" not in dx
    dw = result(derivation("conv1d"), "W").numpy.source
    assert "np.take(x, " in dw and "np.pad(" not in dw and "np.where(" not in dw


@pytest.mark.parametrize("name, kernel_dims", [("conv1d", {"K"}), ("conv2d", {"A", "B"})])
def test_shipped_convolutions_take_the_input_gradient_over_the_kernel(name, kernel_dims):
    """dL/dx of a valid convolution sums over the kernel taps, reading the upstream
    gradient at the shifted index (the full correlation), not over the output positions."""
    r = result(derivation(name), "x")
    sums = [t for t in r.index.walk() if isinstance(t, Sum)]
    assert sums and all(kernel_dims <= {i.dim for i in s.indices} for s in sums), to_text(r.index)
    reads = [t for t in r.index.walk() if isinstance(t, Grad)]
    assert reads and all(any(isinstance(p, Affine) for p in g.indices) for g in reads)
    rules = [s.rule for b in r.blocks for s in b.steps]
    assert {"contract deltas", "change of summation index", "zero padding"} <= set(rules)


def test_a_causal_mask_and_a_bounded_sum():
    d = derive_text("""
dims T=6
input a[T,T], x[T]
c[t] = sum_{u <= t} a[t,u]
m[t,u] = [u <= t] * a[t,u] * x[u]
f = sum_t c[t]^2 + sum_{t,u} m[t,u]
grad f wrt a, x
""")
    da, dx = d.results
    assert da.check.passed and dx.check.passed
    assert to_text(da.index) == "[j <= i] * (2 * c[i] + x[j])"
    rng = np.random.default_rng(3)
    a, x = rng.normal(size=(6, 6)), rng.normal(size=6)
    c = np.tril(a).sum(axis=1)
    want = np.tril(2 * c[:, None] + x[None, :])
    got = _call(da, {"a": a, "x": x, "c": c, "T": 6})
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_a_masked_softmax_folds_back_and_gets_the_textbook_form():
    """Causal attention's masked softmax P[t,u] = [u <= t] e^{S_tu} / sum_{v <= t} e^{S_tv}:
    the gradient folds the masked quotient back into P (the bracket and the shifted index
    match like any factor) and reads P * (G V^T - rowsum(P * G V^T)), the softmax
    Jacobian-vector product of an unmasked softmax (the mask is inside P)."""
    d = derive_text("""
dims T=5, E=2
input S[T,T], V[T,E]
P[t,u] = [u <= t] exp(S[t,u]) / sum_{v <= t} exp(S[t,v])
Y[t,e] = sum_u P[t,u] V[u,e]
L = loss(Y)
grad L wrt S
""")
    (r,) = d.results
    assert r.check.passed
    assert to_text(r.index) == (
        "P[i,j] * (sum_e dL_dY[i,e] * V[j,e] - sum_u (sum_e dL_dY[i,e] * V[u,e]) * P[i,u])")
    assert r.matrix is not None and r.matrix.text.startswith("P * (dL_dY @ V.T - ")


def test_a_sum_that_skips_the_diagonal():
    d = derive_text("""
dims N=5
input A[N,N], x[N]
f = sum_j sum_{i != j} A[i,j] x[i] x[j]
grad f wrt x
""")
    (r,) = d.results
    assert r.check.passed
    rng = np.random.default_rng(4)
    A, x = rng.normal(size=(5, 5)), rng.normal(size=5)
    off = A - np.diag(np.diag(A))
    np.testing.assert_allclose(_call(r, {"A": A, "x": x, "N": 5}), (off + off.T) @ x,
                               atol=1e-12)


def test_a_constant_index_differentiates_to_a_delta_with_a_number():
    d = derive_text("""
dims K=4
input w[K]
f = w[0] * w[2]
grad f wrt w
""")
    (r,) = d.results
    assert r.check.passed
    w = np.arange(1.0, 5.0)
    np.testing.assert_allclose(_call(r, {"w": w, "K": 4}), [3.0, 0.0, 1.0, 0.0])


def test_a_range_the_contraction_clips_stays_as_a_bracket_in_the_code():
    """u ranges over U = T - 1 (its letter's dim) and indexes a's T positions: the gradient
    keeps [0 <= l < U] for the column no u reaches."""
    d = derive_text("""
dims T=7
dims U = T - 1
input a[T,T]
c[t] = sum_{u <= t} a[t,u]
g = sum_t c[t]^2
grad g wrt a
""")
    (r,) = d.results
    assert r.check.passed
    assert "[0 <= l < U]" in to_text(r.index) or "[0 <= j < U]" in to_text(r.index)
    a = np.random.default_rng(5).normal(size=(7, 7))
    keep = np.tril(np.ones((7, 7)))
    keep[:, 6] = 0  # u < U = 6
    c = (a * keep).sum(axis=1)
    np.testing.assert_allclose(_call(r, {"a": a, "c": c, "T": 7}), 2 * c[:, None] * keep,
                               atol=1e-12)


def test_the_shorter_axis_is_read_off_the_dim_formulas():
    from indexcalc.calculus.rules import _shorter
    p = parse_text("dims T, K\ndims U = T - K + 1\n")
    assert _shorter(p, "K", "U") and not _shorter(p, "U", "K")
    assert not _shorter(p, "T", "U")  # U = T - K + 1 is never longer than T
