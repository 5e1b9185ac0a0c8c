"""Gradients with a known textbook NumPy formula, to time the generated code against.

Each ``Case`` names one result of one derivation file, the array sizes to time it at, the
hand-written formula (a function whose parameter names are argument names of the generated
lambda: inputs and upstream gradients ``dL_dY``) and, for the optional PyTorch column, the
scalar whose autograd gradient is the same result.

The formulas take the same inputs as the generated code, so where the gradient needs a
forward quantity (the softmax ``Y``, the ``tanh`` output ``H``) the textbook function
computes it too, the usual way and with the same arithmetic as the definition (no max
subtraction in the softmax, as in the .idx files).  ``core`` marks the cases the issue's
brief lists; the others are further seed results and the three models.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .problems import (
    ATTENTION, BATCH_NORM, DERIVATIONS, LAYER_NORM, LOGISTIC_REGRESSION, TANH_LAYER,
)


def _file(name: str) -> str:
    return (DERIVATIONS / name).read_text(encoding="utf-8")


def softmax_rows(z):
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def softmax_cols(z):
    e = np.exp(z)
    return e / e.sum(0, keepdims=True)


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # .idx text
    of: str
    wrt: str
    sizes: dict[str, int]
    formula: str  # as shown in the table
    textbook: Callable[..., np.ndarray]
    #: scalar whose gradient with respect to ``wrt`` is the result (torch tensors by name)
    torch_loss: Callable[[dict], object] | None = None
    kind: str = "grad"
    core: bool = False
    #: how to draw an input other than N(0, 0.1^2): "onehot rows", "onehot cols",
    #: "positive", "binary", and for a scalar "one" (else 1e-5, an eps)
    draw: dict[str, str] = field(default_factory=dict)


# --- textbook formulas ---------------------------------------------------------------------

def tanh_delta(dL_dH, X, W, b):
    H = np.tanh(X @ W.T + b)
    return dL_dH * (1 - H**2)


def layer_norm_dx(dL_dY, X, eps):
    mu = X.mean(1, keepdims=True)
    sigma = np.sqrt(((X - mu) ** 2).mean(1, keepdims=True) + eps)
    Y = (X - mu) / sigma
    return (dL_dY - dL_dY.mean(1, keepdims=True) - Y * (dL_dY * Y).mean(1, keepdims=True)) / sigma


def _batch_norm_forward(X, eps):
    mu = X.mean(0)
    sigma = np.sqrt(((X - mu) ** 2).mean(0) + eps)
    return (X - mu) / sigma, sigma


def batch_norm_dx(dL_dY, X, g, eps):
    xhat, sigma = _batch_norm_forward(X, eps)
    return g / sigma * (dL_dY - dL_dY.mean(0) - xhat * (dL_dY * xhat).mean(0))


def batch_norm_dg(dL_dY, X, eps):
    xhat, _ = _batch_norm_forward(X, eps)
    return (dL_dY * xhat).sum(0)


def _attention_da(dL_dO, Q, K, V):
    P = softmax_rows(Q @ K.T / np.sqrt(Q.shape[1]))
    dP = dL_dO @ V.T
    return P * (dP - (dP * P).sum(1, keepdims=True))


def attention_dq(dL_dO, Q, K, V):
    return _attention_da(dL_dO, Q, K, V) @ K / np.sqrt(Q.shape[1])


def attention_dk(dL_dO, Q, K, V):
    return _attention_da(dL_dO, Q, K, V).T @ Q / np.sqrt(Q.shape[1])


def attention_dv(dL_dO, Q, K):
    return softmax_rows(Q @ K.T / np.sqrt(Q.shape[1])).T @ dL_dO


def softmax_jacobian(X):
    """J[s,c,t,d] = delta_st Y_sc (delta_cd - Y_sd): per-row blocks on the diagonal s = t."""
    Y = softmax_rows(X)
    S, C = Y.shape
    J = np.zeros((S, C, S, C))
    rows = np.arange(S)
    J[rows, :, rows, :] = Y[:, :, None] * (np.eye(C) - Y[:, None, :])
    return J


def softmax_vector_jacobian(o):
    e = np.exp(o)
    p = e / e.sum()
    return np.diag(p) - np.outer(p, p)


# --- PyTorch forward passes (imported lazily; only used when torch is installed) ----------

def _upstream(out, g):
    return (out * g).sum()


def _torch():
    import torch
    return torch


def t_linear(t):
    return _upstream(t["X"] @ t["W"].T + t["b"], t["dL_dY"])


def t_tanh(t):
    return _upstream(_torch().tanh(t["X"] @ t["W"].T + t["b"]), t["dL_dH"])


def t_layer_norm(t):
    torch = _torch()
    X = t["X"]
    return _upstream(torch.nn.functional.layer_norm(X, X.shape[1:], eps=float(t["eps"])),
                     t["dL_dY"])


def t_batch_norm(t):
    X = t["X"]
    mu = X.mean(0)
    var = ((X - mu) ** 2).mean(0)
    return _upstream(t["g"] * (X - mu) / (var + float(t["eps"])).sqrt() + t["beta"], t["dL_dY"])


def t_attention(t):
    torch = _torch()
    Q, K = t["Q"], t["K"]
    P = torch.softmax(Q @ K.T / Q.shape[1] ** 0.5, dim=1)
    return _upstream(P @ t["V"], t["dL_dO"])


def t_softmax_ce(t):
    torch = _torch()
    return -(t["T"] * torch.log_softmax(t["Z"], dim=1)).sum() / t["Z"].shape[0]



# --- recurrent cells, a Mahalanobis distance, a CRF partition function, an RBF kernel -----
# (issue 10, item 6: kinds of problems on which the generated code once raised the order of
# the work)

GRU = """\
title: GRU cell
dims B, I, H
input x[B,I], h[B,H], Wz[H,I], Uz[H,H], bz[H], Wr[H,I], Ur[H,H], br[H], Wn[H,I], Un[H,H], bn[H]
Zg[b,k] = sigmoid(sum_i x[b,i] Wz[k,i] + sum_j h[b,j] Uz[k,j] + bz[k])
R[b,k] = sigmoid(sum_i x[b,i] Wr[k,i] + sum_j h[b,j] Ur[k,j] + br[k])
A[b,k] = sum_j h[b,j] Un[k,j]
N[b,k] = tanh(sum_i x[b,i] Wn[k,i] + R[b,k] A[b,k] + bn[k])
Hn[b,k] = (1 - Zg[b,k]) N[b,k] + Zg[b,k] h[b,k]
L = loss(Hn)
grad L wrt Un, Wz, h
"""

LSTM = """\
title: LSTM cell
dims B, I, H
input x[B,I], h[B,H], c[B,H], Wf[H,I], Uf[H,H], bf[H], Wi[H,I], Ui[H,H], bi[H], Wo[H,I], Uo[H,H], bo[H], Wg[H,I], Ug[H,H], bg[H]
F[b,k] = sigmoid(sum_i x[b,i] Wf[k,i] + sum_j h[b,j] Uf[k,j] + bf[k])
In[b,k] = sigmoid(sum_i x[b,i] Wi[k,i] + sum_j h[b,j] Ui[k,j] + bi[k])
O[b,k] = sigmoid(sum_i x[b,i] Wo[k,i] + sum_j h[b,j] Uo[k,j] + bo[k])
G[b,k] = tanh(sum_i x[b,i] Wg[k,i] + sum_j h[b,j] Ug[k,j] + bg[k])
C[b,k] = F[b,k] c[b,k] + In[b,k] G[b,k]
Hn[b,k] = O[b,k] tanh(C[b,k])
L = loss(Hn)
grad L wrt Wf, c, h
"""

MAHALANOBIS = """\
title: Mahalanobis distance with a factor L
dims D
input x[D], mu[D], L[D,D]
S[i,j] = sum_k L[i,k] L[j,k]
f = sum_{i,j} (x[i] - mu[i]) S[i,j] (x[j] - mu[j])
grad f wrt x, L
"""

CRF = """\
title: CRF log-partition over three positions
dims S
input u[S], v[S], w[S], A[S,S], B[S,S]
Z = log(sum_{i,j,k} exp(u[i] + A[i,j] + v[j] + B[j,k] + w[k]))
grad Z wrt A, u
"""

RBF = """\
title: RBF kernel matrix
dims N, M, D
input X[N,D], Z[M,D], ell
K[n,m] = exp(-sum_d (X[n,d] - Z[m,d])^2 / (2 ell^2))
L = loss(K)
grad L wrt X, ell
"""


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _gru(x, h, Wz, Uz, bz, Wr, Ur, br, Wn, Un, bn):
    z = sigmoid(x @ Wz.T + h @ Uz.T + bz)
    r = sigmoid(x @ Wr.T + h @ Ur.T + br)
    a = h @ Un.T
    n = np.tanh(x @ Wn.T + r * a + bn)
    return z, r, a, n


def gru_dun(dL_dHn, x, h, Wz, Uz, bz, Wr, Ur, br, Wn, Un, bn):
    z, r, a, n = _gru(x, h, Wz, Uz, bz, Wr, Ur, br, Wn, Un, bn)
    return (dL_dHn * (1 - z) * (1 - n**2) * r).T @ h


def gru_dwz(dL_dHn, x, h, Wz, Uz, bz, Wr, Ur, br, Wn, Un, bn):
    z, r, a, n = _gru(x, h, Wz, Uz, bz, Wr, Ur, br, Wn, Un, bn)
    return (dL_dHn * (h - n) * z * (1 - z)).T @ x


def gru_dh(dL_dHn, x, h, Wz, Uz, bz, Wr, Ur, br, Wn, Un, bn):
    z, r, a, n = _gru(x, h, Wz, Uz, bz, Wr, Ur, br, Wn, Un, bn)
    dn = dL_dHn * (1 - z) * (1 - n**2)
    dz = dL_dHn * (h - n) * z * (1 - z)
    dr = dn * a * r * (1 - r)
    return dz @ Uz + dr @ Ur + (dn * r) @ Un + dL_dHn * z


def _lstm(x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo, Wg, Ug, bg):
    f = sigmoid(x @ Wf.T + h @ Uf.T + bf)
    i = sigmoid(x @ Wi.T + h @ Ui.T + bi)
    o = sigmoid(x @ Wo.T + h @ Uo.T + bo)
    g = np.tanh(x @ Wg.T + h @ Ug.T + bg)
    C = f * c + i * g
    return f, i, o, g, C


def lstm_dc_state(dL_dHn, x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo, Wg, Ug, bg):
    """The gradient reaching the new cell state C."""
    f, i, o, g, C = _lstm(x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo, Wg, Ug, bg)
    return dL_dHn * o * (1 - np.tanh(C) ** 2), (f, i, o, g, C)


def lstm_dwf(dL_dHn, x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo, Wg, Ug, bg):
    dC, (f, i, o, g, C) = lstm_dc_state(dL_dHn, x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo,
                                        Wg, Ug, bg)
    return (dC * c * f * (1 - f)).T @ x


def lstm_dc(dL_dHn, x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo, Wg, Ug, bg):
    dC, (f, *_) = lstm_dc_state(dL_dHn, x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo, Wg, Ug, bg)
    return dC * f


def lstm_dh(dL_dHn, x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo, Wg, Ug, bg):
    dC, (f, i, o, g, C) = lstm_dc_state(dL_dHn, x, h, c, Wf, Uf, bf, Wi, Ui, bi, Wo, Uo, bo,
                                        Wg, Ug, bg)
    df, di, dg = dC * c * f * (1 - f), dC * g * i * (1 - i), dC * i * (1 - g**2)
    do = dL_dHn * np.tanh(C) * o * (1 - o)
    return df @ Uf + di @ Ui + do @ Uo + dg @ Ug


def crf_parts(u, v, w, A, B):
    """Forward messages: exp(u_i + A_ij + v_j) and beta_j = sum_k exp(B_jk + w_k)."""
    left = np.exp(u[:, None] + A + v[None, :])
    beta = np.exp(B + w[None, :]).sum(1)
    return left, beta


def crf_da(u, v, w, A, B):
    left, beta = crf_parts(u, v, w, A, B)
    marginal = left * beta[None, :]
    return marginal / marginal.sum()


def crf_du(u, v, w, A, B):
    left, beta = crf_parts(u, v, w, A, B)
    alpha = left @ beta
    return alpha / alpha.sum()


def _rbf(X, Z, ell):
    sq = (X**2).sum(1)[:, None] + (Z**2).sum(1)[None, :] - 2 * X @ Z.T
    return np.exp(-sq / (2 * ell**2)), sq


def rbf_dx(dL_dK, X, Z, ell):
    K, _ = _rbf(X, Z, ell)
    GK = dL_dK * K
    return (GK @ Z - GK.sum(1)[:, None] * X) / ell**2


def rbf_dell(dL_dK, X, Z, ell):
    K, sq = _rbf(X, Z, ell)
    return np.asarray((dL_dK * K * sq).sum() / ell**3)


RNN = {"B": 256, "I": 512, "H": 512}

#: A valid 1-D convolution layer (issue 11's sizes: N=32, C=16, T=256, K=5; O=16 filters).
CONV1D = """
dims N, C, O, T, K
dims U = T - K + 1
input x[N,C,T], W[O,C,K]
y[n,o,u] = sum_{c,k} W[o,c,k] x[n,c,u+k]
L = loss(y)
grad L wrt x, W
"""
CONV_SIZES = {"N": 32, "C": 16, "O": 16, "T": 256, "K": 5}


def conv_dx(dL_dy, W):
    """The full correlation: pad the upstream gradient by K-1 at both ends and correlate
    its windows with the flipped kernel."""
    K = W.shape[2]
    padded = np.pad(dL_dy, ((0, 0), (0, 0), (K - 1, K - 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, K, axis=2)
    return np.einsum("notj,ocj->nct", windows, np.flip(W, axis=2), optimize=True)


def conv_dw(dL_dy, x, W):
    windows = np.lib.stride_tricks.sliding_window_view(x, W.shape[2], axis=2)
    return np.einsum("nou,ncuk->ock", dL_dy, windows, optimize=True)


def t_conv1d(t):
    return _upstream(_torch().nn.functional.conv1d(t["x"], t["W"]), t["dL_dy"])


# --- the cases -----------------------------------------------------------------------------

LINEAR = dict(source=_file("linear_layer.idx"), of="L", sizes={"S": 512, "M": 1024, "N": 1024},
              torch_loss=t_linear, core=True)
TANH = dict(source=TANH_LAYER, of="L", sizes={"S": 512, "M": 1024, "N": 1024},
            torch_loss=t_tanh, core=True)
BATCH = dict(source=BATCH_NORM, of="L", sizes={"S": 512, "D": 1024}, torch_loss=t_batch_norm)
ATTN = dict(source=ATTENTION, of="L", sizes={"T": 512, "U": 512, "D": 64, "E": 64},
            torch_loss=t_attention)

CASES: tuple[Case, ...] = (
    # The brief's list.
    Case("linear layer dL/dW", wrt="W", formula="G.T @ X",
         textbook=lambda dL_dY, X: dL_dY.T @ X, **LINEAR),
    Case("linear layer dL/db", wrt="b", formula="G.sum(0)",
         textbook=lambda dL_dY: dL_dY.sum(0), **LINEAR),
    Case("linear layer dL/dX", wrt="X", formula="G @ W",
         textbook=lambda dL_dY, W: dL_dY @ W, **LINEAR),
    Case("softmax backward dL/dX", _file("softmax.idx"), "L", "X", {"S": 512, "C": 1024},
         "Y * (G - (G*Y).sum(1, keepdims=True))",
         lambda dL_dY, X: (Y := softmax_rows(X)) * (dL_dY - (dL_dY * Y).sum(1, keepdims=True)),
         lambda t: _upstream(_torch().softmax(t["X"], dim=1), t["dL_dY"]), core=True),
    Case("softmax + cross-entropy dL/dZ", _file("softmax_cross_entropy.idx"), "L", "Z",
         {"S": 512, "C": 1024}, "(Y - T) / S",
         lambda Z, T: (softmax_rows(Z) - T) / Z.shape[0], t_softmax_ce, core=True,
         draw={"T": "onehot rows"}),
    Case("tanh layer dL/dW", wrt="W", formula="(G * (1 - H**2)).T @ X",
         textbook=lambda dL_dH, X, W, b: tanh_delta(dL_dH, X, W, b).T @ X, **TANH),
    Case("tanh layer dL/db", wrt="b", formula="(G * (1 - H**2)).sum(0)",
         textbook=lambda dL_dH, X, W, b: tanh_delta(dL_dH, X, W, b).sum(0), **TANH),
    Case("tanh layer dL/dX", wrt="X", formula="(G * (1 - H**2)) @ W",
         textbook=lambda dL_dH, X, W, b: tanh_delta(dL_dH, X, W, b) @ W, **TANH),
    Case("seed 003 softmax regression dE/dW", _file("softmax_columns.idx"), "E", "W",
         {"M": 1024, "K": 512, "N": 512}, "X @ (S - Y).T, S = softmax(W.T @ X)",
         lambda X, Y, W: X @ (softmax_cols(W.T @ X) - Y).T,
         lambda t: -(t["Y"] * _torch().log_softmax(t["W"].T @ t["X"], dim=0)).sum(),
         core=True, draw={"Y": "onehot cols"}),
    Case("logistic regression df/dw", LOGISTIC_REGRESSION, "f", "w", {"N": 8192, "D": 1024},
         "X.T @ (p - t), p = sigmoid(X @ w)",
         lambda X, w, t: X.T @ (1 / (1 + np.exp(-(X @ w))) - t),
         lambda t: _torch().nn.functional.binary_cross_entropy_with_logits(
             t["X"] @ t["w"], t["t"], reduction="sum"),
         core=True, draw={"t": "binary"}),
    # Further seed results with a textbook formula.
    Case("cross-entropy dL/dX (seed 002 1f)", _file("cross_entropy.idx"), "L", "X",
         {"S": 512, "C": 1024}, "-(T / X) / S", lambda X, T: -(T / X) / X.shape[0],
         lambda t: -(t["T"] * t["X"].log()).sum() / t["X"].shape[0],
         draw={"X": "positive", "T": "onehot rows"}),
    Case("scores dL/dW (seed 000)", _file("scores_batch.idx"), "L", "W",
         {"N": 512, "D": 1024, "C": 1024}, "X.T @ G", lambda dL_ds, X: X.T @ dL_ds,
         lambda t: _upstream(t["X"] @ t["W"], t["dL_ds"])),
    Case("scores dL/dX (seed 000)", _file("scores_batch.idx"), "L", "X",
         {"N": 512, "D": 1024, "C": 1024}, "G @ W.T", lambda dL_ds, W: dL_ds @ W.T,
         lambda t: _upstream(t["X"] @ t["W"], t["dL_ds"])),
    Case("softmax Jacobian dY/dX (einsum fallback)", _file("softmax.idx"), "Y", "X",
         {"S": 32, "C": 64}, "blocks Y_s (I - 1 Y_s^T) on the diagonal s = t",
         softmax_jacobian, kind="jacobian"),
    Case("vector softmax Jacobian dp/do (seed 001)", _file("softmax_single.idx"), "p", "o",
         {"K": 2048}, "np.diag(p) - np.outer(p, p)", softmax_vector_jacobian, kind="jacobian"),
    Case("vector softmax + CE dL/do (seed 001)", _file("softmax_single.idx"), "L", "o",
         {"K": 2048}, "p - y", lambda o, y: (e := np.exp(o)) / e.sum() - y,
         lambda t: -(t["y"] * _torch().log_softmax(t["o"], dim=0)).sum(),
         draw={"y": "onehot cols"}),
    # The models.
    Case("layer norm dL/dX", LAYER_NORM, "L", "X", {"S": 512, "D": 1024},
         "(G - mean(G) - Y * mean(G*Y)) / sigma", layer_norm_dx, t_layer_norm),
    Case("batch norm dL/dX", wrt="X", formula="g/sigma * (G - mean(G) - xhat * mean(G*xhat))",
         textbook=batch_norm_dx, **BATCH),
    Case("batch norm dL/dg", wrt="g", formula="(G * xhat).sum(0)", textbook=batch_norm_dg,
         **BATCH),
    Case("batch norm dL/dbeta", wrt="beta", formula="G.sum(0)",
         textbook=lambda dL_dY: dL_dY.sum(0), **BATCH),
    Case("attention dL/dQ", wrt="Q", formula="dA @ K / sqrt(D), dA = P * (dP - rowsum(dP*P))",
         textbook=attention_dq, **ATTN),
    Case("attention dL/dK", wrt="K", formula="dA.T @ Q / sqrt(D)", textbook=attention_dk, **ATTN),
    Case("attention dL/dV", wrt="V", formula="P.T @ G", textbook=attention_dv, **ATTN),
    # Issue 10's further kinds.
    Case("GRU cell dL/dUn", GRU, "L", "Un", RNN, "(G * (1 - z) * (1 - n**2) * r).T @ h",
         gru_dun),
    Case("GRU cell dL/dWz", GRU, "L", "Wz", RNN, "(G * (h - n) * z * (1 - z)).T @ x", gru_dwz),
    Case("GRU cell dL/dh", GRU, "L", "h", RNN, "dz @ Uz + dr @ Ur + (dn * r) @ Un + G * z",
         gru_dh),
    Case("LSTM cell dL/dWf", LSTM, "L", "Wf", RNN, "(dC * c * f * (1 - f)).T @ x, "
         "dC = G * o * (1 - tanh(C)**2)", lstm_dwf),
    Case("LSTM cell dL/dc", LSTM, "L", "c", RNN, "dC * f", lstm_dc),
    Case("LSTM cell dL/dh", LSTM, "L", "h", RNN, "df @ Uf + di @ Ui + do @ Uo + dg @ Ug",
         lstm_dh),
    Case("Mahalanobis df/dx", MAHALANOBIS, "f", "x", {"D": 2048}, "2 L @ (L.T @ (x - mu))",
         lambda x, mu, L: 2 * (L @ (L.T @ (x - mu)))),
    Case("Mahalanobis df/dL", MAHALANOBIS, "f", "L", {"D": 2048},
         "2 outer(x - mu, L.T @ (x - mu))",
         lambda x, mu, L: 2 * np.outer(x - mu, (x - mu) @ L)),
    Case("CRF log-partition dZ/dA", CRF, "Z", "A", {"S": 1024},
         "exp(u + A + v) * beta / Z, beta = exp(B + w) 1", crf_da),
    Case("CRF log-partition dZ/du", CRF, "Z", "u", {"S": 1024}, "alpha / Z, alpha = exp(u + A + v) beta",
         crf_du),
    # Issue 11: index arithmetic.
    Case("1-D convolution dL/dx", CONV1D, "L", "x", CONV_SIZES,
         "full correlation of G with W (padded sliding windows)", conv_dx, t_conv1d),
    Case("1-D convolution dL/dW", CONV1D, "L", "W", CONV_SIZES,
         "einsum of G with x's sliding windows", conv_dw, t_conv1d),
    Case("RBF kernel dL/dX", RBF, "L", "X", {"N": 1024, "M": 1024, "D": 64},
         "((G K) Z - rowsum(G K) X) / ell^2", rbf_dx, draw={"ell": "one"}),
    Case("RBF kernel dL/dell", RBF, "L", "ell", {"N": 1024, "M": 1024, "D": 64},
         "sum(G K sq) / ell^3", rbf_dell, draw={"ell": "one"}),
)
