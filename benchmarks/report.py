"""Tables and targets, laid out as console text and as Markdown.

Sections build ``Table`` and ``Target`` values from their measurements; this module only
lays them out.  The Markdown names the machine but no date, so two runs differ only in
their numbers.
"""
from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import environment


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


@dataclass
class Target:
    name: str
    measured: str
    limit: str
    passed: bool | None  # None: not measured in this run (--quick)

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "not measured"}[self.passed]


def machine() -> list[tuple[str, str]]:
    """What the numbers depend on: processor, cores, Python and library versions."""
    try:
        import torch
        threads = torch.get_num_threads()
        torch_version = f"{torch.__version__} ({threads} thread{'s' if threads != 1 else ''})"
    except ImportError:
        torch_version = "not installed"
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"
    return [
        ("indexcalc source", _source_revision()),
        ("CPU", _cpu_model()),
        ("CPU count", str(os.cpu_count())),
        ("OS", f"{platform.system()} {platform.machine()}"),
        ("Python", platform.python_version()),
        ("NumPy", f"{np.__version__} ({_blas()})"),
        ("BLAS / OpenMP threads", os.environ.get("OPENBLAS_NUM_THREADS", "library default")),
        ("allocator", environment.ALLOCATOR),
        ("SymPy", _sympy_version()),
        ("PyTorch", torch_version),
        ("load average (1 min) at start", load),
    ]


def _source_revision() -> str:
    """The commit measured, and whether indexcalc/ had uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "indexcalc"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"commit {commit}" + (" + uncommitted changes in indexcalc/" if dirty else "")


def _blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except (TypeError, KeyError):  # older NumPy: no mode="dicts"
        return "BLAS unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def targets_table(targets: list[Target]) -> Table:
    return Table("Targets", ["target", "measured", "limit", "result"],
                 [[t.name, t.measured, t.limit, t.verdict] for t in targets])


# --- console -------------------------------------------------------------------------------

def to_text(table: Table) -> str:
    widths = [max(len(h), *(len(r[k]) for r in table.rows)) if table.rows else len(h)
              for k, h in enumerate(table.headers)]
    lines = [table.title, "=" * len(table.title),
             "  ".join(h.ljust(w) for h, w in zip(table.headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in table.rows]
    lines += [f"  * {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


# --- Markdown ------------------------------------------------------------------------------

def to_markdown(table: Table, level: int = 2) -> str:
    lines = ["#" * level + " " + table.title, "",
             "| " + " | ".join(table.headers) + " |",
             "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    text = text.replace("|", "\\|")
    if "`" not in text:  # outside code spans, <built-in ...> would read as an HTML tag
        text = text.replace("<", "&lt;").replace(">", "&gt;")
    return f"**{text}**" if text == "FAIL" else text


def document(tables: list[Table], machine_rows: list[tuple[str, str]], *, command: str,
             appendix: str = "") -> str:
    parts = [
        "# Benchmarks\n",
        f"Written by `{command}` (see `benchmarks/__init__.py`); every number below comes "
        "from that one run. Re-run it to refresh this page; only the numbers change.\n",
        "## Machine\n",
        "| | |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in machine_rows),
    ]
    parts += [to_markdown(t) for t in tables]
    if appendix:
        parts.append(appendix.rstrip() + "\n")
    return "\n".join(parts)


def _sympy_version() -> str:
    """SymPy is only the reference peer (the extra 'bench'); the rest runs without it."""
    try:
        import sympy
    except ImportError:
        return "not installed (pip install -e '.[bench]' to time it)"
    return sympy.__version__
