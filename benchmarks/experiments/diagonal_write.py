"""Experiment: the softmax Jacobian written into a diagonal view instead of through np.eye.

The generated code for ``jacobian Y wrt X`` (``derivations/softmax.idx``) contracts a dense
``np.eye(S)`` for the factor ``delta(s,t)`` between two output axes: S^2 C^2 multiplications
for a result whose non-zero part has S C^2 entries.  Writing that part into the diagonal of
a zero array (``np.einsum('scsd->scd', J)`` is a writable view) does only the S C^2 work.
Prints both times at the size of the benchmark case and whether the results are equal.
"""
from __future__ import annotations

import numpy as np

from indexcalc.parser import parse_file
from indexcalc.pipeline import run

from ..measure import best_of_interleaved
from ..problems import DERIVATIONS

S, C = 32, 64


def diagonal_write(X: np.ndarray) -> np.ndarray:
    """dY[s,c]/dX[t,d] = delta(s,t) Y[s,c] (delta(c,d) - Y[s,d]), the delta as a view."""
    e = np.exp(X)
    Y = e / e.sum(axis=-1)[:, None]
    J = np.zeros(X.shape + X.shape)
    np.einsum("scsd->scd", J)[...] = Y[:, :, None] * (np.eye(X.shape[1]) - Y[:, None, :])
    return J


def main() -> None:
    derivation = run(parse_file(str(DERIVATIONS / "softmax.idx")))
    result = next(r for r in derivation.results if r.kind == "jacobian")
    generated = eval(compile(result.numpy.source, "<generated>", "eval"), {"np": np})
    X = 0.1 * np.random.default_rng(0).standard_normal((S, C))
    print("generated:", result.numpy.source)
    print("equal:", np.allclose(generated(X), diagonal_write(X), rtol=1e-12, atol=1e-15))
    before, after = best_of_interleaved([lambda: generated(X), lambda: diagonal_write(X)], 15)
    print(f"S={S}, C={C}: generated {before * 1000:.2f} ms, diagonal view {after * 1000:.2f} ms "
          f"({before / after:.1f}x)")


if __name__ == "__main__":
    main()
