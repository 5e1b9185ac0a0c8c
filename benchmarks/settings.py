"""How much to measure: the full run and the ``--quick`` smoke run."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    #: in-process derivation runs per file (median, after one warm-up run)
    derive_repeats: int
    #: CLI runs (median), each a fresh interpreter
    cli_repeats: int
    #: sizes K of the generated chains and wide sums
    scaling_sizes: tuple[int, ...]
    #: runs per K (median); peak memory is one further run under tracemalloc
    scaling_repeats: int
    #: runs of each implementation of a gradient (best of), at least; and more until
    #: the runs of one comparison took ``code_seconds``
    code_repeats: int
    code_seconds: float
    #: multiplies every array size of the generated-code cases
    size_scale: float
    #: SymPy runs per gradient (median)
    peer_repeats: int


FULL = Settings(derive_repeats=7, cli_repeats=5, scaling_sizes=(1, 2, 4, 8, 16, 32),
                scaling_repeats=3, code_repeats=15, code_seconds=1.0,
                size_scale=1.0, peer_repeats=5)

QUICK = Settings(derive_repeats=2, cli_repeats=2, scaling_sizes=(1, 2, 4, 8),
                 scaling_repeats=3, code_repeats=3, code_seconds=0.0,
                 size_scale=0.25, peer_repeats=1)
