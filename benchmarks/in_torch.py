"""The torch half of the generated-code section: emitted torch code against the textbook
formula written in torch.

* generated: the per-result function of the module ``indexcalc derive --emit torch`` writes
  (``indexcalc.emit.module.module_source``), executed as a user would import it;
* textbook: the same hand-written formula as the NumPy column (``cases.py``), run with
  ``np`` bound to ``TORCH_AS_NP``, a handful of NumPy names spelled in torch.  Each formula
  and the helpers it calls are rebound, not rewritten, so both columns time one formula.

Both take the same float64 CPU tensors; the result of each is compared with the NumPy
textbook formula's before anything is timed.
"""
from __future__ import annotations

import math
import types
from typing import Callable

from indexcalc.emit.module import module_source, result_name

from . import cases


class _TorchAsNumpy:
    """The NumPy functions the textbook formulas call, on torch tensors (float64)."""

    def __init__(self, torch):
        self._torch = torch
        for name in ("exp", "tanh", "log", "diag", "outer"):
            setattr(self, name, getattr(torch, name))

    def sqrt(self, x):
        return math.sqrt(x) if isinstance(x, (int, float)) else self._torch.sqrt(x)

    def eye(self, n):
        return self._torch.eye(n, dtype=self._torch.float64)

    def zeros(self, shape):
        return self._torch.zeros(shape, dtype=self._torch.float64)

    def arange(self, n):
        return self._torch.arange(n)

    def asarray(self, x):
        return self._torch.as_tensor(x, dtype=self._torch.float64)

    def einsum(self, spec, *operands, optimize=None):
        return self._torch.einsum(spec, *operands)

    def pad(self, x, widths):
        flat = [w for pair in reversed(widths) for w in pair]  # last axis first
        return self._torch.nn.functional.pad(x, flat)

    def flip(self, x, axis):
        return self._torch.flip(x, dims=(axis,))

    @property
    def lib(self):
        """``np.lib.stride_tricks.sliding_window_view(x, K, axis)`` as ``x.unfold``."""
        window = types.SimpleNamespace(sliding_window_view=lambda x, k, axis: x.unfold(axis, k, 1))
        return types.SimpleNamespace(stride_tricks=window)


def textbook_in_torch(fn: Callable, torch) -> Callable:
    """``fn`` (a formula of ``cases``) with ``np`` meaning torch, in it and in every helper
    of ``cases`` it calls."""
    namespace = dict(vars(cases))
    namespace["np"] = _TorchAsNumpy(torch)
    for name, value in vars(cases).items():
        if isinstance(value, types.FunctionType) and value.__globals__ is vars(cases):
            namespace[name] = _rebound(value, namespace)
    return _rebound(fn, namespace)


def _rebound(fn: types.FunctionType, namespace: dict) -> types.FunctionType:
    out = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__,
                             fn.__closure__)
    out.__kwdefaults__ = fn.__kwdefaults__
    return out


def emitted_function(derivation, result) -> Callable:
    """The result's function in the emitted torch module, imported from its source."""
    namespace: dict = {"__name__": "indexcalc_emitted"}
    exec(compile(module_source(derivation, "torch"), "<emitted torch module>", "exec"),
         namespace)
    return namespace[result_name(result)]


def tensors(values: dict, torch) -> dict:
    """Arrays as float64 CPU tensors (sharing memory); numbers and dims as they are."""
    import numpy as np
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
            for k, v in values.items()}
