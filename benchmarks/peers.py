"""Peer reference: the linear layer's gradients through SymPy's own differentiation.

``Y[s,n] = Sum_m X[s,m] W[n,m] + b[n]`` with ``IndexedBase``/``Idx``; the unspecified loss
is written as its first-order model ``L = Sum_{s,n} G[s,n] Y[s,n]`` (``G`` = dL/dY, the
upstream gradient of indexcalc's ``loss(Y)``).  Timed: ``diff(L, W[i,j]).doit()``, SymPy's
cache cleared before every run so each run does the work.  Beside it, indexcalc's engine
on ``derivations/linear_layer.idx`` (derive only, a fresh ``Engine`` per run) and the whole
pipeline.  A reference line, not a target.
"""
from __future__ import annotations

from dataclasses import dataclass

from indexcalc.calculus.engine import Engine
from indexcalc.syntax.idx import parse_text
from indexcalc.pipeline import run
from indexcalc.render.printing import to_text

from .measure import median_seconds, ms
from .problems import DERIVATIONS
from .report import Table
from .settings import Settings

LINEAR_LAYER = DERIVATIONS / "linear_layer.idx"


@dataclass
class PeerRow:
    tool: str
    gradient: str
    seconds: float
    result: str


def sympy_rows(settings: Settings) -> list[PeerRow]:
    """SymPy's indexed differentiation of the linear layer; none without SymPy (the extra
    'bench')."""
    try:
        from sympy import Idx, IndexedBase, Sum, diff, symbols
    except ImportError:
        return []
    from sympy.core.cache import clear_cache

    S, M, N = symbols("S M N", integer=True, positive=True)
    s, m, n = Idx("s", S), Idx("m", M), Idx("n", N)
    X, W, b, G = (IndexedBase(name) for name in "XWbG")
    L = Sum(G[s, n] * (Sum(X[s, m] * W[n, m], m) + b[n]), s, n)
    entries = {"W": W[Idx("i", N), Idx("j", M)], "b": b[Idx("i", N)],
               "X": X[Idx("i", S), Idx("j", M)]}

    rows = []
    for name, entry in entries.items():
        def derive(entry=entry):
            clear_cache()
            return diff(L, entry).doit()

        seconds = median_seconds(derive, settings.peer_repeats)
        rows.append(PeerRow(f"SymPy {_sympy_version()} diff + doit", f"dL/d{name}", seconds,
                            _describe(derive())))
    return rows


def _sympy_version() -> str:
    import sympy
    return sympy.__version__


def _describe(expr) -> str:
    text = str(expr)
    left = [w for w in ("KroneckerDelta", "Piecewise") if w in text]
    verdict = "deltas not contracted: " + " and ".join(left) + " left" if left else "contracted"
    return f"`{text}` ({verdict})"


def indexcalc_rows(settings: Settings) -> list[PeerRow]:
    text = LINEAR_LAYER.read_text(encoding="utf-8")
    problem = parse_text(text, str(LINEAR_LAYER))
    rows = []
    derivation = run(problem)
    for goal, result in zip(problem.goals, derivation.results):
        seconds = median_seconds(lambda goal=goal: Engine(problem).derive(goal),
                                 settings.peer_repeats)
        rows.append(PeerRow("indexcalc engine (derive only)", f"d{goal.of}/d{goal.wrt}",
                            seconds,
                            f"`{to_text(result.index)}` = `{result.matrix.text}`"))
    seconds = median_seconds(lambda: run(parse_text(text, str(LINEAR_LAYER))),
                             settings.peer_repeats)
    rows.append(PeerRow("indexcalc parse + full pipeline", "all three", seconds,
                        "steps, matrix forms, NumPy, numeric checks"))
    return rows


def table(rows: list[PeerRow], settings: Settings) -> Table:
    return Table(
        "Peer reference: the linear layer through SymPy",
        ["tool", "gradient", "median (ms)", "result"],
        [[r.tool, r.gradient, ms(r.seconds), r.result] for r in rows],
        [f"median of {settings.peer_repeats} runs after a warm-up; SymPy's cache cleared "
         "before each run. SymPy models `loss(Y)` as `Sum_{s,n} G[s,n] Y[s,n]`."])
