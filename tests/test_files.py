"""The user's files are never harmed (issue: limits that hold, item 1), through the real CLI.

The input is never overwritten (``-o`` naming it, directly or through a link, is refused
with exit 2); a device or FIFO given as ``-o`` is written to, never replaced by a regular
file; FILE must be a regular file or ``-`` (standard input), so a FIFO is refused at once
instead of hanging; ``-o -`` is standard output; a write error (ENOSPC) is exit 2 with the
path and the reason.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINEAR = (REPO / "derivations" / "linear_layer.idx").read_text()


def indexcalc(*args: str, cwd: Path, stdin: str | None = None, timeout: float = 120):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-m", "indexcalc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


@pytest.fixture
def layer(tmp_path) -> Path:
    path = tmp_path / "layer.idx"
    path.write_text(LINEAR)
    return path


def test_output_naming_the_input_is_refused_and_the_input_kept(layer, tmp_path):
    done = indexcalc("derive", layer.name, "-o", layer.name, cwd=tmp_path)
    assert done.returncode == 2 and "is the input file" in done.stderr
    assert layer.read_text() == LINEAR
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.idx"]


def test_output_naming_the_input_through_a_link_is_refused(layer, tmp_path):
    (tmp_path / "link.idx").symlink_to(layer.name)
    done = indexcalc("derive", "link.idx", "-o", layer.name, cwd=tmp_path)
    assert done.returncode == 2 and layer.read_text() == LINEAR


def test_a_device_as_output_is_written_not_replaced(layer, tmp_path):
    done = indexcalc("derive", layer.name, "-o", os.devnull, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_a_full_disk_is_exit_2_with_the_path_and_the_reason(layer, tmp_path):
    done = indexcalc("derive", layer.name, "-o", "/dev/full", cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot write /dev/full" in done.stderr and "space" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_a_fifo_as_input_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "pipe.idx")
    done = indexcalc("derive", "pipe.idx", cwd=tmp_path, timeout=60)  # it hung forever
    assert done.returncode == 2
    assert "not a regular file (a FIFO)" in done.stderr and done.stdout == ""


def test_a_fifo_as_output_is_written_to(layer, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    done = indexcalc("derive", layer.name, "--format", "json", "-o", fifo.name, cwd=tmp_path)
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(received[0])["title"].startswith("Gradients of a linear layer")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_dash_reads_standard_input_and_writes_standard_output(tmp_path):
    done = indexcalc("derive", "-", "--format", "json", "-o", "-", cwd=tmp_path, stdin=LINEAR)
    assert done.returncode == 0, done.stderr
    assert [r["wrt"] for r in json.loads(done.stdout)["results"]] == ["W", "b", "X"]
    assert list(tmp_path.iterdir()) == []


def test_bad_input_on_standard_input_is_located(tmp_path):
    done = indexcalc("derive", "-", cwd=tmp_path, stdin="dims N\ninput x[N]\nf = x[n] +\n")
    assert done.returncode == 2
    assert done.stderr.startswith("<stdin>:3:") and "^" in done.stderr
