"""Generated code speed: the NumPy lambda indexcalc writes against the textbook formula.

For every case in ``cases.CASES``: derive the file, compile the result's ``numpy.source``
(a ``lambda`` that uses only ``np``), draw the inputs once, check that the generated code,
the textbook formula (and PyTorch, when importable) agree, then time them taking turns and
keep the best of several runs.  The ratio is generated / textbook; issue 10's targets are
a geometric mean at most 1.0x and no case above 2x.
"""
from __future__ import annotations

import ast
import inspect
import math
from dataclasses import dataclass

import numpy as np

from indexcalc.syntax.idx import parse_text
from indexcalc.pipeline import run

from .cases import CASES, Case
from .measure import best_of_interleaved, geometric_mean, ms
from .report import Table, Target
from .settings import Settings

GEOMEAN_LIMIT = 1.0
WORST_LIMIT = 2.0
AGREE_RTOL = 1e-8


@dataclass
class Timing:
    case: Case
    source: str = ""
    generated_s: float = math.nan
    textbook_s: float = math.nan
    torch_s: float | None = None
    agrees: bool = False
    torch_agrees: bool | None = None
    max_rel_diff: float = math.inf
    error: str | None = None  # the case did not derive or its code did not run

    @property
    def ratio(self) -> float:
        return self.generated_s / self.textbook_s


def try_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# --- inputs ----------------------------------------------------------------------------------

def scaled(sizes: dict[str, int], scale: float) -> dict[str, int]:
    return {d: max(2, int(round(n * scale))) for d, n in sizes.items()}


def draw_arrays(problem, sizes: dict[str, int], draw: dict[str, str],
                rng: np.random.Generator) -> dict[str, np.ndarray | float]:
    """Every input and every upstream gradient ``d<loss>_d<arg>`` of the problem."""
    shapes = {name: tuple(sizes[d] for d in t.dims) for name, t in problem.inputs.items()}
    for d in problem.definitions.values():
        if d.is_opaque_loss:
            for arg in d.loss_args:
                shapes[f"d{d.name}_d{arg}"] = tuple(sizes[x] for x in problem.tensor_dims(arg))
    return {name: _draw(shape, draw.get(name, "normal"), rng) for name, shape in shapes.items()}


def _draw(shape: tuple[int, ...], kind: str, rng: np.random.Generator):
    if not shape:
        return 1.0 if kind == "one" else 1e-5  # scalar inputs are the eps of the norms
    if kind == "positive":
        return rng.uniform(0.1, 1.0, shape)
    if kind == "binary":
        return (rng.random(shape) < 0.5).astype(float)
    if kind in ("onehot rows", "onehot cols"):
        return _one_hot(shape, len(shape) - 1 if kind == "onehot rows" else 0, rng)
    return 0.1 * rng.standard_normal(shape)


def _one_hot(shape: tuple[int, ...], axis: int, rng: np.random.Generator) -> np.ndarray:
    """Zeros with one 1 at a random place along ``axis``: every row (or column) sums to 1."""
    out = np.zeros(shape)
    other = shape[:axis] + shape[axis + 1:]
    hot = np.asarray(rng.integers(0, shape[axis], size=other))
    np.put_along_axis(out, np.expand_dims(hot, axis), 1.0, axis)
    return out


# --- one case --------------------------------------------------------------------------------

def generated_result(problem, case: Case):
    derivation = run(problem)
    return next(r for r in derivation.results
                if r.kind == case.kind and r.of == case.of and r.wrt == case.wrt)


def prepare(case: Case, settings: Settings):
    """The case's generated result, its inputs, and the inputs by argument name (dims too)."""
    problem = parse_text(case.source, f"<{case.name}>")
    result = generated_result(problem, case)
    sizes = scaled(case.sizes, settings.size_scale)
    arrays = draw_arrays(problem, sizes, case.draw, np.random.default_rng(0))
    values = {**arrays, **sizes}  # a dim no argument carries is an argument (CONTRACT 2)
    return result, arrays, values


def generated_call(result, values: dict):
    fn = eval(compile(result.numpy.source, "<generated>", "eval"), {"np": np})
    args = [values[a] for a in result.numpy.args]
    return lambda: fn(*args)


def textbook_call(case: Case, values: dict):
    args = [values[p] for p in inspect.signature(case.textbook).parameters]
    return lambda: case.textbook(*args)


def measure_case(case: Case, settings: Settings, torch) -> Timing:
    result, arrays, values = prepare(case, settings)
    calls = [generated_call(result, values), textbook_call(case, values)]
    diff = _rel_diff(np.asarray(calls[0]()), np.asarray(calls[1]()))

    generated_s, textbook_s = best_of_interleaved(calls, settings.code_repeats)

    # PyTorch runs on its own, after: its OpenMP threads keep spinning for a while after a
    # call and would slow whichever NumPy call came next.
    torch_call = _torch_call(case, arrays, torch)
    torch_s = torch_agrees = None
    if torch_call is not None:
        torch_agrees = _rel_diff(np.asarray(calls[0]()), torch_call().numpy()) < AGREE_RTOL
        (torch_s,) = best_of_interleaved([torch_call], settings.code_repeats)
    return Timing(case, result.numpy.source, generated_s, textbook_s, torch_s,
                  diff < AGREE_RTOL, torch_agrees, diff)


def _rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return math.inf
    scale = max(float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


def _torch_call(case: Case, arrays: dict, torch):
    """Forward and backward through autograd for the one gradient, float64 on the CPU."""
    if torch is None or case.torch_loss is None:
        return None
    tensors = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else torch.tensor(v)
               for k, v in arrays.items()}
    leaf = tensors[case.wrt].requires_grad_()

    def call():
        (grad,) = torch.autograd.grad(case.torch_loss(tensors), leaf)
        return grad

    return call


def measure_all(settings: Settings) -> list[Timing]:
    torch = try_torch()
    timings = []
    for case in CASES:
        try:
            timings.append(measure_case(case, settings, torch))
        except Exception as error:  # a finding for the table, not a reason to stop
            timings.append(Timing(case, error=f"{type(error).__name__}: {error}"))
    return timings


def noise_gauge(settings: Settings, case: Case = CASES[0]) -> float:
    """An A/A test: one case's textbook formula timed against itself, as the other cases are
    timed.  A perfect tie is 1; the distance from 1 is what noise alone does to a ratio."""
    _, _, values = prepare(case, settings)
    first, second = best_of_interleaved([textbook_call(case, values), textbook_call(case, values)],
                                        settings.code_repeats)
    return first / second


# --- table and targets -----------------------------------------------------------------------

def table(timings: list[Timing], gauge: float, settings: Settings) -> Table:
    with_torch = any(t.torch_s is not None for t in timings)
    headers = ["gradient", "set", "textbook formula", "generated (ms)", "textbook (ms)",
               "ratio", "agree"]
    if with_torch:
        headers += ["PyTorch autograd (ms)", "torch agrees"]
    rows = []
    for t in timings:
        if t.error is not None:
            rows.append([t.case.name, "brief" if t.case.core else "more", t.case.formula,
                         "-", "-", "-", f"ERROR: {t.error}"] + (["-", "-"] if with_torch else []))
            continue
        row = [t.case.name, "brief" if t.case.core else "more", t.case.formula,
               ms(t.generated_s), ms(t.textbook_s), f"{t.ratio:.2f}",
               "yes" if t.agrees else f"NO ({t.max_rel_diff:.1e})"]
        if with_torch:
            row += ["-" if t.torch_s is None else ms(t.torch_s),
                    "-" if t.torch_agrees is None else ("yes" if t.torch_agrees else "NO")]
        rows.append(row)
    ran = [t for t in timings if t.error is None]
    core = [t.ratio for t in ran if t.case.core]
    notes = [
        f"best of {settings.code_repeats} runs each, taking turns, same inputs (float64); "
        "sizes in `benchmarks/cases.py`"
        + (f" scaled by {settings.size_scale}" if settings.size_scale != 1 else "") + ".",
        f"geometric mean of the ratio: {geometric_mean([t.ratio for t in ran]):.3f} over "
        f"all {len(ran)} cases, {geometric_mean(core):.3f} over the {len(core)} cases of "
        "the brief.",
        "agree: generated and textbook results equal to a relative 1e-8 of the largest entry.",
        f"noise gauge: the {CASES[0].name} textbook formula timed against itself gives "
        f"{gauge:.3f} (a tie is 1.000).",
        _einsum_note(timings),
    ]
    if with_torch:
        notes.append("PyTorch: forward + `torch.autograd.grad` for the one gradient, float64, "
                     "CPU; a reference, not a target.")
    else:
        notes.append("PyTorch not installed: no autograd column.")
    return Table("Generated code speed (generated / textbook)", headers, rows, notes)


def _einsum_note(timings: list[Timing]) -> str:
    """Whether every einsum that contracts two or more operands asks for an optimised path."""
    calls = [(t.case.name, c) for t in timings if t.error is None
             for c in _einsum_calls(t.source)]
    if not calls:
        return "no case uses the einsum fallback."
    contracting = [(name, c) for name, c in calls if len(c.args) > 2]
    optimised = [(name, c) for name, c in contracting
                 if any(k.arg == "optimize" and getattr(k.value, "value", None) is True
                        for k in c.keywords)]
    names = ", ".join(sorted({name for name, _ in calls}))
    return (f"einsum fallback used by: {names}; {len(optimised)} of the {len(contracting)} "
            "calls with two or more operands pass optimize=True (single-operand calls, "
            "transposes and traces, have no path to optimise).")


def _einsum_calls(source: str) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(source, mode="eval"))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "einsum"]


def worst(timings: list[Timing]) -> Timing | None:
    ran = [t for t in timings if t.error is None]
    return max(ran, key=lambda t: t.ratio) if ran else None


def targets(timings: list[Timing]) -> list[Target]:
    ran = [t for t in timings if t.error is None]
    mean = geometric_mean([t.ratio for t in ran])
    slowest = worst(timings)
    return [
        Target("generated code, geometric mean of generated/textbook",
               f"{mean:.3f}x over {len(ran)} cases", f"<= {GEOMEAN_LIMIT}x",
               bool(ran) and mean <= GEOMEAN_LIMIT),
        Target("generated code, worst case",
               f"{slowest.ratio:.2f}x ({slowest.case.name})" if slowest else "no case ran",
               f"<= {WORST_LIMIT}x", slowest is not None and slowest.ratio <= WORST_LIMIT),
        Target("generated code runs and agrees with the textbook formula",
               f"{sum(t.agrees for t in timings)}/{len(timings)} cases", "all",
               all(t.agrees for t in timings)),
    ]
