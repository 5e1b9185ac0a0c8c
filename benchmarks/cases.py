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
    #: "positive", "binary"
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
)
