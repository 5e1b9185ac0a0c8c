"""Generated code speed: the code indexcalc writes against the textbook formula.

For every case in ``cases.CASES``: derive the file, compile the result's ``numpy.source``
(a ``lambda`` that uses only ``np``), draw the inputs once, check that the generated code
and the textbook formula agree, then time them taking turns and keep the best of several
runs.  The ratio is generated / textbook.  When PyTorch is importable the same is done in
torch (``in_torch``): the function of the emitted torch module against the same textbook
formula run on tensors; and, for reference, the framework's own autograd.  Issue 10's
targets, for NumPy and for torch alike: a geometric mean at most 1.0x and no case above 2x.
"""
from __future__ import annotations

import ast
import inspect
import math
from dataclasses import dataclass

import numpy as np

from indexcalc.syntax.idx import parse_text
from indexcalc.pipeline import run

from . import in_torch
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
    torch_s: float | None = None  # autograd, a reference
    agrees: bool = False
    torch_agrees: bool | None = None
    max_rel_diff: float = math.inf
    error: str | None = None  # the case did not derive or its code did not run
    #: the emitted torch function and the textbook formula in torch (None: no torch)
    torch_generated_s: float | None = None
    torch_textbook_s: float | None = None
    #: both torch results equal the NumPy textbook result
    torch_code_agrees: bool | None = None

    @property
    def ratio(self) -> float:
        return self.generated_s / self.textbook_s

    @property
    def torch_ratio(self) -> float | None:
        if self.torch_generated_s is None or self.torch_textbook_s is None:
            return None
        return self.torch_generated_s / self.torch_textbook_s


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

def generated_result(derivation, case: Case):
    return next(r for r in derivation.results
                if r.kind == case.kind and r.of == case.of and r.wrt == case.wrt)


def prepare(case: Case, settings: Settings):
    """The case's derivation and generated result, its inputs, and the inputs by argument
    name (dims too)."""
    problem = parse_text(case.source, f"<{case.name}>")
    derivation = run(problem)
    result = generated_result(derivation, case)
    sizes = scaled(case.sizes, settings.size_scale)
    for name, formula in problem.dim_formulas.items():  # dims U = T - K + 1
        sizes[name] = formula.evaluate(sizes)
    arrays = draw_arrays(problem, sizes, case.draw, np.random.default_rng(0))
    values = {**arrays, **sizes}  # a dim no argument carries is an argument (CONTRACT 2)
    return derivation, result, arrays, values


def generated_call(result, values: dict):
    fn = eval(compile(result.numpy.source, "<generated>", "eval"), {"np": np})
    args = [values[a] for a in result.numpy.args]
    return lambda: fn(*args)


def textbook_call(case: Case, values: dict):
    args = [values[p] for p in inspect.signature(case.textbook).parameters]
    return lambda: case.textbook(*args)


def measure_case(case: Case, settings: Settings, torch) -> Timing:
    derivation, result, arrays, values = prepare(case, settings)
    calls = [generated_call(result, values), textbook_call(case, values)]
    expected = np.asarray(calls[1]())
    diff = _rel_diff(np.asarray(calls[0]()), expected)

    generated_s, textbook_s = best_of_interleaved(calls, settings.code_repeats,
                                                   settings.code_seconds)
    timing = Timing(case, result.numpy.source, generated_s, textbook_s,
                    agrees=diff < AGREE_RTOL, max_rel_diff=diff)
    if torch is None:
        return timing

    # PyTorch runs on its own, after: its OpenMP threads keep spinning for a while after a
    # call and would slow whichever NumPy call came next.
    tensors = in_torch.tensors(values, torch)
    torch_calls = [_bound(in_torch.emitted_function(derivation, result), result.numpy.args,
                          tensors),
                   _bound(in_torch.textbook_in_torch(case.textbook, torch),
                          list(inspect.signature(case.textbook).parameters), tensors)]
    timing.torch_code_agrees = all(
        _rel_diff(np.asarray(torch.as_tensor(call())), expected) < AGREE_RTOL
        for call in torch_calls)
    timing.torch_generated_s, timing.torch_textbook_s = best_of_interleaved(
        torch_calls, settings.code_repeats, settings.code_seconds)

    autograd = _torch_call(case, arrays, torch)
    if autograd is not None:
        timing.torch_agrees = _rel_diff(expected, autograd().numpy()) < AGREE_RTOL
        (timing.torch_s,) = best_of_interleaved([autograd], settings.code_repeats)
    return timing


def _bound(fn, params, values: dict):
    args = [values[p] for p in params]
    return lambda: fn(*args)


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
    _, _, _, values = prepare(case, settings)
    first, second = best_of_interleaved([textbook_call(case, values), textbook_call(case, values)],
                                        settings.code_repeats, settings.code_seconds)
    return first / second


# --- table and targets -----------------------------------------------------------------------

def table(timings: list[Timing], gauge: float, settings: Settings) -> Table:
    headers = ["gradient", "set", "textbook formula", "generated (ms)", "textbook (ms)",
               "ratio", "agree"]
    rows = []
    for t in timings:
        if t.error is not None:
            rows.append([t.case.name, "brief" if t.case.core else "more", t.case.formula,
                         "-", "-", "-", f"ERROR: {t.error}"])
            continue
        rows.append([t.case.name, "brief" if t.case.core else "more", t.case.formula,
                     ms(t.generated_s), ms(t.textbook_s), f"{t.ratio:.2f}",
                     "yes" if t.agrees else f"NO ({t.max_rel_diff:.1e})"])
    ran = [t for t in timings if t.error is None]
    core = [t.ratio for t in ran if t.case.core]
    notes = [
        f"{_runs(settings)}, same inputs (float64); "
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
    return Table("Generated code speed: NumPy (generated / textbook)", headers, rows, notes)


def torch_table(timings: list[Timing], settings: Settings) -> Table | None:
    """The emitted torch functions against the textbook formulas in torch; None without
    PyTorch."""
    measured = [t for t in timings if t.torch_ratio is not None]
    if not measured:
        return None
    headers = ["gradient", "emitted torch (ms)", "textbook in torch (ms)", "ratio", "agree",
               "autograd (ms)", "autograd agrees"]
    rows = []
    for t in timings:
        if t.torch_ratio is None:
            rows.append([t.case.name, "-", "-", "-", "not run" if t.error is None
                         else f"ERROR: {t.error}", "-", "-"])
            continue
        rows.append([t.case.name, ms(t.torch_generated_s), ms(t.torch_textbook_s),
                     f"{t.torch_ratio:.2f}", "yes" if t.torch_code_agrees else "NO",
                     "-" if t.torch_s is None else ms(t.torch_s),
                     "-" if t.torch_agrees is None else ("yes" if t.torch_agrees else "NO")])
    notes = [
        "emitted torch: the result's function in the module of `indexcalc derive --emit "
        "torch`, imported from its source; textbook in torch: the NumPy column's formula "
        "with `np` bound to torch (`benchmarks/in_torch.py`).",
        f"{_runs(settings)}, the NumPy column's inputs "
        "as float64 CPU tensors, PyTorch's intra-op threads as in the machine table.",
        f"geometric mean of the ratio: "
        f"{geometric_mean([t.torch_ratio for t in measured]):.3f} over {len(measured)} cases.",
        "agree: both torch results equal the NumPy textbook result to a relative 1e-8.",
        "autograd: forward + `torch.autograd.grad` for the one gradient (a reference, not a "
        "target; none where the case has no torch forward pass).",
    ]
    return Table("Generated code speed: PyTorch (emitted / textbook)", headers, rows, notes)


def _runs(settings: Settings) -> str:
    more = (f" (more while the runs of one comparison take under {settings.code_seconds:g} s)"
            if settings.code_seconds else "")
    return f"best of {settings.code_repeats} runs each{more}, taking turns"


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
    out = _ratio_targets("NumPy", [(t.case.name, t.ratio) for t in ran])
    out.append(Target("generated NumPy code runs and agrees with the textbook formula",
                      f"{sum(t.agrees for t in timings)}/{len(timings)} cases", "all",
                      all(t.agrees for t in timings)))
    measured = [t for t in timings if t.torch_ratio is not None]
    if not measured:
        return out + [Target("emitted torch code against the textbook formula in torch",
                             "PyTorch not installed", "-", None)]
    out += _ratio_targets("torch", [(t.case.name, t.torch_ratio) for t in measured])
    out.append(Target("emitted torch code runs and agrees with the textbook formula",
                      f"{sum(bool(t.torch_code_agrees) for t in measured)}/{len(timings)} "
                      "cases", "all",
                      len(measured) == len(timings)
                      and all(t.torch_code_agrees for t in measured)))
    return out


def _ratio_targets(framework: str, ratios: list[tuple[str, float]]) -> list[Target]:
    mean = geometric_mean([r for _, r in ratios])
    slowest = max(ratios, key=lambda nr: nr[1]) if ratios else None
    return [
        Target(f"generated {framework} code, geometric mean of generated/textbook",
               f"{mean:.3f}x over {len(ratios)} cases", f"<= {GEOMEAN_LIMIT}x",
               bool(ratios) and mean <= GEOMEAN_LIMIT),
        Target(f"generated {framework} code, worst case",
               f"{slowest[1]:.2f}x ({slowest[0]})" if slowest else "no case ran",
               f"<= {WORST_LIMIT}x", slowest is not None and slowest[1] <= WORST_LIMIT),
    ]
