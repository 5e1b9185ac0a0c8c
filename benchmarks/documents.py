"""Checking worked solutions: each seed document of ``examples/`` against its context files.

In-process: read the context file, then ``check.document.check_document`` on the document
(reading it, every context switch, the worlds, every link); median of the runs after a
warm-up.  The command line: ``python -m indexcalc check FILE --against DOC``, a fresh
interpreter per run.  Issue 12's target: each document checks in under 2 s.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

from indexcalc.check.document import NOT_UNDERSTOOD, check_document, load_context
from indexcalc.syntax.idx import parse_file

from .measure import median_seconds, ms
from .problems import REPO
from .report import Table, Target
from .settings import Settings

LIMIT_S = 2.0
#: Each seed document and the context file it starts in.
DOCUMENTS = (("seed000", "single.idx"), ("seed001", "softmax_cross_entropy.idx"),
             ("seed002", "linear.idx"))


def measure(settings: Settings) -> list[tuple[str, int, int, float, float]]:
    """(document, links, links read, in-process median s, CLI median s) per document."""
    out = []
    for folder, context in DOCUMENTS:
        doc = REPO / "examples" / folder / "document.md"
        file = REPO / "examples" / folder / context
        text = doc.read_text(encoding="utf-8")

        def once():
            return check_document(text, str(doc), parse_file(str(file)), load_context(str(doc)))
        report = once()
        inside = median_seconds(once, settings.derive_repeats)
        walls = []
        for _ in range(settings.cli_repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "indexcalc", "check", str(file), "--against",
                            str(doc)], cwd=REPO, capture_output=True)
            walls.append(time.perf_counter() - start)
        read = len(report.links) - report.count(NOT_UNDERSTOOD)
        out.append((f"{folder}/document.md", len(report.links), read, inside,
                    statistics.median(walls)))
    return out


def targets(rows) -> list[Target]:
    worst = max(rows, key=lambda r: r[4])
    links = sum(r[1] for r in rows)
    read = sum(r[2] for r in rows)
    return [Target("each seed document checked (CLI wall)", f"{worst[4]:.2f} s ({worst[0]})",
                   f"< {LIMIT_S:g} s", worst[4] < LIMIT_S),
            Target("links of seeds 000-002 read", f"{read} of {links} ({100 * read / links:.0f}%)",
                   ">= 80%", read >= 0.8 * links)]


def table(rows, settings: Settings) -> Table:
    return Table(
        "Checking worked solutions: the seed documents",
        ["document", "links", "read", "in-process median (ms)", "CLI wall median (s)", "target"],
        [[name, str(links), str(read), ms(inside), f"{wall:.2f}",
          "PASS" if wall < LIMIT_S else "FAIL"] for name, links, read, inside, wall in rows],
        [f"indexcalc check FILE --against DOC on examples/seed00*; in-process: context file "
         f"and document read and every link decided, median of {settings.derive_repeats} "
         f"runs after one; CLI: median of {settings.cli_repeats} fresh interpreters; "
         f"target < {LIMIT_S:g} s per document (issue 12)"])
