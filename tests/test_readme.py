"""The README's Python example runs as written, and prints what its comments say."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_api_example_runs_as_written():
    (block,) = python_blocks()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    lines = printed.getvalue().splitlines()
    # The comments beside the first two prints and the last one are their output.
    comments = re.findall(r"print\([^#\n]*#\s*(.+)", block)
    assert lines[0] == comments[0]  # the index form
    assert lines[1] == comments[1]  # the matrix form
    assert lines[2].startswith("True ")  # the check
    assert any(step.startswith("chain rule:") for step in map(str.strip, lines))
    assert lines[-1] == comments[-1]  # the InputError's place and message
