"""``python -m benchmarks [--quick] [--out PATH]``: measure everything, print, write Markdown.

Run from the repository root.  The full run writes ``docs/benchmarks.md``; ``--quick`` (a
smoke run: fewer repeats, smaller sizes) only prints, unless ``--out`` names a file.
Progress goes to standard error, the tables to standard output.  The exit status is 0
whatever the targets say: this is a measurement, not a test.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import environment  # noqa: F401  (first: threads and allocator, before NumPy loads)

from indexcalc.syntax.idx import parse_text
from indexcalc.pipeline import run

from . import codespeed, documents, latency, peers, scaling
from .problems import MODELS, REPO
from .profiling import profile_table
from .report import Table, document, machine, targets_table, to_text
from .settings import FULL, QUICK, Settings

DEFAULT_OUT = REPO / "docs" / "benchmarks.md"
FINDINGS = Path(__file__).resolve().parent / "findings.md"
#: The largest chain profiled when the chain targets fail (K=32 takes seconds under cProfile).
PROFILE_CHAIN_K = 16


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure indexcalc (derivation latency, scaling, generated code, SymPy "
                    "reference), print the tables and write them as Markdown.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: fewer repeats and smaller sizes; prints only, "
                             "unless --out is given")
    parser.add_argument("--out", metavar="PATH", type=Path,
                        help=f"write the Markdown here (default for a full run: "
                             f"{DEFAULT_OUT.relative_to(REPO)})")
    return parser.parse_args(argv)


def progress(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def measure(settings: Settings) -> list[Table]:
    """Run every section; the tables, the targets first."""
    progress("derivation latency: shipped files, models, command line")
    seeds = latency.seed_latencies(settings)
    models = latency.model_latencies(settings)
    cli_times, cli_statuses = latency.cli_times(settings)

    progress(f"scaling: K = {', '.join(map(str, settings.scaling_sizes))}")
    families = [scaling.measure_family(name, settings) for name in scaling.FAMILIES]

    progress("generated code speed")
    timings = codespeed.measure_all(settings)
    gauge = codespeed.noise_gauge(settings)

    progress("checking worked solutions: the seed documents")
    documents_rows = documents.measure(settings)

    progress("peer reference: SymPy")
    peer_rows = peers.sympy_rows(settings) + peers.indexcalc_rows(settings)

    targets = (latency.targets(seeds, models, cli_times) + scaling.targets(families)
               + codespeed.targets(timings) + documents.targets(documents_rows))
    tables = [
        targets_table(targets),
        latency.seed_table(seeds, settings),
        latency.model_table(models, settings),
        latency.cli_table(cli_times, cli_statuses),
        *(scaling.table(f, settings) for f in families),
        codespeed.table(timings, gauge, settings),
        *filter(None, [codespeed.torch_table(timings, settings)]),
        documents.table(documents_rows, settings),
        peers.table(peer_rows, settings),
    ]
    progress("profiles of failing targets")
    tables += failure_profiles(seeds, models, families)
    slowest = codespeed.worst(timings)
    if slowest is not None and slowest.ratio > codespeed.WORST_LIMIT:
        tables.append(generated_code_profile(slowest.case, settings))
    return tables


def failure_profiles(seeds, models, families) -> list[Table]:
    """A cProfile table for each derivation workload whose target failed."""
    out = []
    for lat in seeds:
        if lat.error is None and lat.median_s >= latency.file_limit_s(lat.name):
            text = (REPO / "derivations" / lat.name).read_text(encoding="utf-8")
            out.append(profile_table(lat.name, _derive(text)))
    for lat in models:
        if lat.error is None and lat.median_s >= latency.MODEL_LIMIT_S:
            out.append(profile_table(lat.name, _derive(MODELS[lat.name])))
    for family in families:
        point = family.point(scaling.CHAIN_TARGET_K)
        slow = point is not None and point.median_s >= scaling.CHAIN_LIMIT_S
        steep = family.exponent("median_s", tail=True) > scaling.EXPONENT_LIMIT
        sizes = [p.k for p in family.points if p.k <= PROFILE_CHAIN_K]
        if (slow or steep) and sizes:
            k = max(sizes)
            text = scaling.FAMILIES[family.name](k)
            out.append(profile_table(f"{family.name}, K = {k}", _derive(text)))
    return out


def generated_code_profile(case, settings: Settings, calls: int = 20) -> Table:
    _, result, _, values = codespeed.prepare(case, settings)
    call = codespeed.generated_call(result, values)

    def repeated():
        for _ in range(calls):
            call()

    table = profile_table(f"generated code of {case.name}, {calls} calls", repeated, top=6)
    table.notes.append(f"the generated code: `{result.numpy.source}`")
    return table


def _derive(text: str):
    return lambda: run(parse_text(text, "<profiled>"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    out = args.out if args.out is not None else (None if args.quick else DEFAULT_OUT)
    machine_rows = machine()
    start = time.perf_counter()
    tables = measure(settings)
    elapsed = time.perf_counter() - start
    for table in tables:
        print(to_text(table))
    progress(f"done in {elapsed:.0f} s")
    if out is not None:
        command = "python -m benchmarks" + (" --quick" if args.quick else "")
        appendix = FINDINGS.read_text(encoding="utf-8") if FINDINGS.exists() else ""
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(document(tables, machine_rows, command=command, appendix=appendix),
                       encoding="utf-8")
        progress(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
