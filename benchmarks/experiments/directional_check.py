"""Experiment: the numeric check along a few random directions instead of entry by entry.

``check.check`` compares up to 100 sampled entries, each by central differences, i.e. two
forward evaluations with the check's own interpreter per entry.  Checking a few random
directions ``v`` compares ``<grad, v>`` (or ``J v``) with ``(f(x + h v) - f(x - h v)) / 2h``:
two forward evaluations per direction, whatever the size of the wrt tensor.  A wrong
gradient passes only if its error happens to be orthogonal to every ``v`` (probability 0).

Prints the in-process time of every shipped file with both checks, whether every check
still passes, and whether a gradient off by 0.1% is still caught.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

import indexcalc.check as chk
import indexcalc.pipeline as pipeline
from indexcalc.derivation import CheckResult, NumpyFunction
from indexcalc.parser import parse_file
from indexcalc.pipeline import run

from ..problems import DERIVATIONS, seed_files

ORIGINAL = pipeline.check
DIRECTIONS = 4


def directional_check(goal, fn, problem, seed: int = 0) -> CheckResult:
    """Same contract as ``check.check``; Hessians keep the entry-wise check."""
    if goal.kind == "hessian":
        return ORIGINAL(goal, fn, problem, seed)
    world = chk.make_world(problem, seed)
    derived = np.asarray(chk.compile_lambda(fn)(*chk.lambda_arguments(fn, world)), dtype=float)
    x0 = np.array(chk._wrt_value(world, goal.wrt), dtype=float)
    rng = np.random.default_rng(seed + 1)
    got, expected = [], []
    for _ in range(DIRECTIONS):
        v = rng.standard_normal(x0.shape)
        plus = chk._forward(world, goal.of, goal.wrt, x0 + chk.STEP * v)
        minus = chk._forward(world, goal.of, goal.wrt, x0 - chk.STEP * v)
        expected.append((plus - minus) / (2 * chk.STEP))
        got.append(np.tensordot(derived, v, axes=x0.ndim) if x0.ndim else derived * v)
    got, expected = np.array(got), np.array(expected)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    error = float(np.max(np.abs(got - expected))) / scale
    return CheckResult(error < chk.TOLERANCE, error, f"{DIRECTIONS} random directions")


def medians(path, repeats: int = 11) -> tuple[list[float], list[bool]]:
    """Median time and all-checks-passed, entry-wise then directional; the two take turns."""
    times: list[list[float]] = [[], []]
    passed = [True, True]
    for _ in range(repeats + 1):  # the first round is the warm-up
        for k, check in enumerate((ORIGINAL, directional_check)):
            pipeline.check = check
            try:
                start = time.perf_counter()
                derivation = run(parse_file(str(path)))
                times[k].append(time.perf_counter() - start)
            finally:
                pipeline.check = ORIGINAL
            passed[k] = passed[k] and all(r.check.passed for r in derivation.results)
    return [statistics.median(t[1:]) for t in times], passed


def main() -> None:
    for path in seed_files():
        (before, after), (ok_before, ok_after) = medians(path)
        print(f"{path.name:28s} {before * 1000:6.1f} ms -> {after * 1000:6.1f} ms   "
              f"all checks pass: {ok_before} -> {ok_after}")
    problem = parse_file(str(DERIVATIONS / "linear_layer.idx"))
    wrong = NumpyFunction("lambda dL_dY, X: (dL_dY.T @ X) * 1.001", ("dL_dY", "X"))
    caught = not directional_check(problem.goals[0], wrong, problem).passed
    print("dL/dW off by 0.1% caught:", caught)


if __name__ == "__main__":
    main()
