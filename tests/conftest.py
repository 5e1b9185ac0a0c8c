"""Shared helpers for the engine, derivation, matrix and code-generation tests.

The helpers stay independent of the code under test where they serve as an oracle: the
generated lambda is compiled here with plain ``eval`` (it is a Python expression that uses only
``np`` and its arguments, CONTRACT section 2), and the finite differences below are written
from scratch rather than taken from ``indexcalc.check.numeric``.
"""
from __future__ import annotations

import ast
import functools
import importlib
import os
import textwrap
from pathlib import Path

import numpy as np

from indexcalc.syntax.idx import parse_file, parse_text
from indexcalc.pipeline import run
from indexcalc.terms import Index

DERIVATIONS = Path(__file__).resolve().parent.parent / "derivations"


def need(module: str):
    """``module`` imported, for tests that need an optional package (torch, jax, nbclient).

    Locally a missing package skips the test with the reason; under CI (``CI=1``, set by
    ``.ci/run``, which installs them) it is an error, so the tests cannot silently not run.
    """
    if os.environ.get("CI"):
        return importlib.import_module(module)
    import pytest

    return pytest.importorskip(module, reason=f"{module} is not installed (CI installs it)")


# --- problems and derivations -----------------------------------------------------------------

def problem(text: str, path: str = "test.idx"):
    """Parse a small derivation file written inside a test."""
    return parse_text(textwrap.dedent(text), path)


def derive_text(text: str):
    """Run the whole pipeline on a derivation file written inside a test."""
    return run(problem(text))


@functools.lru_cache(maxsize=None)
def derivation(name: str):
    """The pipeline's result for ``derivations/<name>.idx`` (computed once per session)."""
    return run(parse_file(str(DERIVATIONS / f"{name}.idx")))


def result(derived, wrt: str, kind: str | None = None):
    """The one result of ``derived`` with respect to ``wrt`` (and of ``kind``, if given)."""
    hits = [r for r in derived.results if r.wrt == wrt and (kind is None or r.kind == kind)]
    assert len(hits) == 1, [(r.kind, r.of, r.wrt) for r in derived.results]
    return hits[0]


def ix(name: str, dim: str) -> Index:
    return Index(name, dim)


# --- steps ------------------------------------------------------------------------------------

def assert_subsequence(wanted: list, seen: list) -> None:
    """``wanted`` occurs in ``seen`` in this order (other items may come between)."""
    it = iter(seen)
    for w in wanted:
        assert any(w == s for s in it), f"{w!r} missing (in order) from {seen!r}"


# --- the generated NumPy function -----------------------------------------------------------------

def compiled(res):
    """The generated lambda, compiled with nothing but ``np`` in scope."""
    return eval(compile(res.numpy.source, "<generated>", "eval"), {"np": np})  # noqa: S307


def call(res, **values):
    """Call the generated lambda, passing each of its arguments by name from ``values``."""
    missing = [a for a in res.numpy.args if a not in values]
    assert not missing, f"test gave no value for {missing} (args {res.numpy.args})"
    return np.asarray(compiled(res)(*(values[a] for a in res.numpy.args)), dtype=float)


def lambda_free_names(source: str) -> set[str]:
    """Names the lambda reads that are neither its parameters nor assigned inside it."""
    tree = ast.parse(source, mode="eval")
    fn = tree.body
    assert isinstance(fn, ast.Lambda), source
    # parameters of the lambda and of any lambda inside it (the registry's erf)
    params = {a.arg for n in ast.walk(fn) if isinstance(n, ast.Lambda) for a in n.args.args}
    assigned = {n.target.id for n in ast.walk(fn) if isinstance(n, ast.NamedExpr)}
    loaded = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return loaded - params - assigned


# --- an independent oracle ------------------------------------------------------------------------

def numeric_gradient(f, x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central finite differences of ``f`` (array -> array) at ``x``: shape f(x).shape + x.shape."""
    x = np.array(x, dtype=float)
    out_shape = np.shape(f(x))
    grad = np.zeros(out_shape + x.shape)
    for pos in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[pos] += step
        minus[pos] -= step
        grad[(Ellipsis,) + pos] = (np.asarray(f(plus)) - np.asarray(f(minus))) / (2 * step)
    return grad


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def assert_close(actual, expected, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def rng(seed: int = 1234) -> np.random.Generator:
    return np.random.default_rng(seed)
