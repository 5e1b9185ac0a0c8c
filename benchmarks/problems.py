"""Derivation files written by the benchmark: generated families and models not shipped.

Everything here is plain ``.idx`` text in the language of CONTRACT section 1, parsed with
``indexcalc.syntax.idx.parse_text`` exactly like a user's file.
"""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DERIVATIONS = REPO / "derivations"


def seed_files() -> list[Path]:
    """The shipped derivation files, in name order."""
    return sorted(DERIVATIONS.glob("*.idx"))


def dense_tanh_chain(k: int) -> str:
    """``k`` layers ``Z_k = H_{k-1} W_k^T + b_k``, ``H_k = tanh(Z_k)``; gradients for W1 and X."""
    inputs = ["X[S,M]", "W1[H,M]", "b1[H]"]
    inputs += [f"W{i}[H,H], b{i}[H]" for i in range(2, k + 1)]
    lines = [f"title: Chain of {k} dense+tanh layers", "dims S, M, H",
             "input " + ", ".join(inputs),
             "Z1[s,h] = X[s,m] W1[h,m] + b1[h]",
             "H1[s,h] = tanh(Z1[s,h])"]
    for i in range(2, k + 1):
        lines += [f"Z{i}[s,h] = H{i - 1}[s,g] W{i}[h,g] + b{i}[h]",
                  f"H{i}[s,h] = tanh(Z{i}[s,h])"]
    lines += [f"L = loss(H{k})", "grad L wrt W1, X"]
    return "\n".join(lines) + "\n"


#: The elementwise pieces the wide sum cycles through (each differentiates differently).
WIDE_SUM_PIECES = ("x[n]", "x[n]^2", "tanh(x[n])", "sin(x[n])", "exp(x[n])")


def wide_sum(k: int) -> str:
    """A scalar over ``k`` terms ``sum_n a_k[n] * piece(x[n])``; the gradient with respect to x."""
    terms = [f"sum_n a{i}[n] * {WIDE_SUM_PIECES[(i - 1) % len(WIDE_SUM_PIECES)]}"
             for i in range(1, k + 1)]
    return "\n".join([
        f"title: Wide sum of {k} terms", "dims N",
        "input x[N], " + ", ".join(f"a{i}[N]" for i in range(1, k + 1)),
        "f = " + " + ".join(terms),
        "grad f wrt x",
    ]) + "\n"


TANH_LAYER = """\
title: Dense layer followed by tanh
dims S, M, N
input X[S,M], W[N,M], b[N]
Z[s,n] = X[s,m] W[n,m] + b[n]
H[s,n] = tanh(Z[s,n])
L = loss(H)
grad L wrt W, b, X
"""

LOGISTIC_REGRESSION = """\
title: Logistic regression (negative log-likelihood)
dims N, D
input X[N,D], w[D], t[N]
p[n] = sigmoid(X[n,d] w[d])
f = -sum_n (t[n] log(p[n]) + (1 - t[n]) log(1 - p[n]))
grad f wrt w
"""

LAYER_NORM = """\
title: Layer norm (over the features of each sample)
dims S, D
input X[S,D], eps
mu[s] = 1/D sum_d X[s,d]
v[s] = 1/D sum_d (X[s,d] - mu[s])^2
Y[s,d] = (X[s,d] - mu[s]) / sqrt(v[s] + eps)
L = loss(Y)
grad L wrt X
"""

BATCH_NORM = """\
title: Batch norm (over the samples of each feature) with scale and shift
dims S, D
input X[S,D], g[D], beta[D], eps
mu[d] = 1/S sum_s X[s,d]
v[d] = 1/S sum_s (X[s,d] - mu[d])^2
Y[s,d] = g[d] * (X[s,d] - mu[d]) / sqrt(v[d] + eps) + beta[d]
L = loss(Y)
grad L wrt X, g, beta
"""

ATTENTION = """\
title: Scaled dot-product attention (one head)
dims T, U, D, E
input Q[T,D], K[U,D], V[U,E]
A[t,u] = sum_d Q[t,d] K[u,d] / sqrt(D)
P[t,u] = exp(A[t,u]) / sum_k exp(A[t,k])
O[t,e] = sum_u P[t,u] V[u,e]
L = loss(O)
grad L wrt Q, K, V
"""

LSTM_CELL = """\
title: LSTM cell (one step, a batch as rows), both outputs into the loss
dims B, D, H
input x[B,D], h[B,H], c[B,H], Wi[H,D], Ui[H,H], Wf[H,D], Uf[H,H], Wo[H,D], Uo[H,H], Wg[H,D], Ug[H,H]
I[b,k] = sigmoid(sum_d x[b,d] Wi[k,d] + sum_j h[b,j] Ui[k,j])
F[b,k] = sigmoid(sum_d x[b,d] Wf[k,d] + sum_j h[b,j] Uf[k,j])
O[b,k] = sigmoid(sum_d x[b,d] Wo[k,d] + sum_j h[b,j] Uo[k,j])
G[b,k] = tanh(sum_d x[b,d] Wg[k,d] + sum_j h[b,j] Ug[k,j])
C2[b,k] = F[b,k] c[b,k] + I[b,k] G[b,k]
H2[b,k] = O[b,k] tanh(C2[b,k])
L = loss(H2, C2)
grad L wrt Wi, Ui, Wf, Uf, Wo, Uo, Wg, Ug, x, h, c
"""

GRU_CELL = """\
title: GRU cell (one step, a batch as rows)
dims B, D, H
input x[B,D], h[B,H], Wz[H,D], Uz[H,H], Wr[H,D], Ur[H,H], Wn[H,D], Un[H,H]
Z[b,k] = sigmoid(sum_d x[b,d] Wz[k,d] + sum_j h[b,j] Uz[k,j])
R[b,k] = sigmoid(sum_d x[b,d] Wr[k,d] + sum_j h[b,j] Ur[k,j])
N2[b,k] = tanh(sum_d x[b,d] Wn[k,d] + R[b,k] * sum_j h[b,j] Un[k,j])
H2[b,k] = (1 - Z[b,k]) * N2[b,k] + Z[b,k] * h[b,k]
L = loss(H2)
grad L wrt Wz, Uz, Wr, Ur, Wn, Un, x, h
"""

MULTI_HEAD_ATTENTION = """\
title: Multi-head self-attention with projections
dims T, D, E, A
input X[T,D], Wq[A,D,E], Wk[A,D,E], Wv[A,D,E], Wo[A,E,D]
Q[a,t,e] = sum_d X[t,d] Wq[a,d,e]
K[a,t,e] = sum_d X[t,d] Wk[a,d,e]
V[a,t,e] = sum_d X[t,d] Wv[a,d,e]
S[a,t,u] = sum_e Q[a,t,e] K[a,u,e] / sqrt(E)
P[a,t,u] = exp(S[a,t,u]) / sum_v exp(S[a,t,v])
O[a,t,e] = sum_u P[a,t,u] V[a,u,e]
Y[t,d] = sum_{a,e} O[a,t,e] Wo[a,e,d]
L = loss(Y)
grad L wrt X, Wq, Wk, Wv, Wo
"""


def nested_chain(k: int) -> str:
    """``y_k = sin(y_{k-1}) * (sum_j y_{k-1}[j]) * y_{k-1}``: each layer uses its input
    twice, so the gradient written out doubles with every layer (issue 13)."""
    lines = [f"title: Nested chain of depth {k}", "dims N", "input y0[N]"]
    lines += [f"y{i}[n] = sin(y{i - 1}[n]) * sum_j y{i - 1}[j] * y{i - 1}[n]"
              for i in range(1, k + 1)]
    lines += [f"f = sum_n y{k}[n]", "grad f wrt y0"]
    return "\n".join(lines) + "\n"


#: The models with their own latency target (issue 4: under 250 ms each; issue 13: each
#: result under 150 ms).
MODELS = {"attention": ATTENTION, "layer norm": LAYER_NORM, "batch norm": BATCH_NORM,
          "LSTM cell": LSTM_CELL, "GRU cell": GRU_CELL,
          "multi-head attention": MULTI_HEAD_ATTENTION}
