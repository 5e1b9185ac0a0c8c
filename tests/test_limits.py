"""The run's time and memory budget (issue 9, item 2), through the real command line.

A run past either limit ends with exit status 3 and one message naming the resource, the
stage and the goal, nothing on standard output and nothing written.  No test here asserts
how fast anything is: the limits are made tiny so that ordinary files exceed them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from indexcalc import limits

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "indexcalc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)


def chain(depth: int) -> str:
    """The nested chain of issue 9, whose cost grows quickly with its depth."""
    lines = ["dims N", "input y0[N]"]
    lines += [f"y{k}[i] = sin(y{k - 1}[i]) * sum_j y{k - 1}[j] * y{k - 1}[i]"
              for k in range(1, depth + 1)]
    lines += [f"f = sum_i y{depth}[i]", "grad f wrt y0"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def chain_file(tmp_path):
    path = tmp_path / "chain.idx"
    path.write_text(chain(6))
    return path


def assert_stopped(done, out: Path, resource: str):
    assert done.returncode == 3, done.stderr
    assert done.stdout == "" and not out.exists()
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"indexcalc: the run exceeded its {resource} limit")
    assert f"--{resource}-limit" in line
    return line


def test_past_the_time_limit_the_run_names_its_stage_and_goal(tmp_path):
    deep = tmp_path / "deep.idx"
    deep.write_text(chain(9) + BIG.replace("dims N=1000, M=1000", "dims N2=1000, M2=1000")
                    .replace("[N,M]", "[N2,M2]").replace("grad L wrt X", "grad L wrt X, y0"))
    out = tmp_path / "out.txt"
    done = run_cli("derive", str(deep), "-o", str(out), "--time-limit", "0.2", cwd=tmp_path)
    line = assert_stopped(done, out, "time")
    assert "(0.2 s)" in line
    stages = ("reading the file", "the derivation", "the matrix form", "the code generation",
              "the numeric check", "rendering")
    assert any(f" in {stage}" in line for stage in stages), line
    if " in reading the file" not in line:
        assert " of grad f wrt y0;" in line or " of grad L wrt " in line


#: Arrays of a million entries (8 MB each), little work per entry: past a 4 MB budget
#: whatever the derivation costs (the nested chain no longer does: it is linear in depth).
BIG = """\
dims N=1000, M=1000
input X[N,M]
Y[n,m] = tanh(X[n,m])
L = sum_{n,m} Y[n,m] * Y[n,m]
grad L wrt X
"""


def test_past_the_memory_limit_the_run_says_so(tmp_path):
    chain_file = tmp_path / "big.idx"
    chain_file.write_text(BIG)
    out = tmp_path / "out.txt"
    # 4M, not less: at 1M an allocation could fail even while the error was being printed
    # ("lost sys.stderr", exit 1), seen once in a fresh clone
    done = run_cli("derive", str(chain_file), "-o", str(out), "--memory-limit", "4M",
                   cwd=tmp_path)
    line = assert_stopped(done, out, "memory")
    assert "(4 MB)" in line


def test_within_the_limits_the_same_file_derives(chain_file, tmp_path):
    out = tmp_path / "out.json"
    done = run_cli("derive", str(chain_file), "-o", str(out), "--format", "json",
                   "--time-limit", "120", "--memory-limit", "4G", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.exists()


@pytest.mark.parametrize("flag,value,words", [
    ("--time-limit", "0", "must be positive"),
    ("--time-limit", "soon", "not a number of seconds"),
    ("--memory-limit", "lots", "not a memory size"),
    ("--memory-limit=-2G", None, "must be positive"),
])
def test_bad_limits_are_usage_errors(chain_file, tmp_path, flag, value, words):
    done = run_cli("derive", str(chain_file), flag, *([value] if value else []), cwd=tmp_path)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("text,size", [
    ("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5GB", 3 * 2**29), ("300k", 300 * 2**10),
    ("64", 64 * 2**20), ("2GiB", 2 * 2**30),
])
def test_memory_sizes(text, size):
    assert limits.parse_memory(text) == size


def run_stuck(tmp_path, before_sleep: str = "") -> subprocess.CompletedProcess:
    """A run whose main thread never sees the alarm (the signal is blocked, standing in for
    one long C call) in the numeric check of grad f wrt x, with a 0.5 s budget and grace."""
    script = textwrap.dedent(f"""
        import signal, time
        from indexcalc import limits
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}})
        limits.GRACE_SECONDS = 0.5
        budget = limits.Budget(seconds=0.5)
        with budget.enforce():
            with budget.stage("the numeric check", "grad f wrt x"):
                {before_sleep}
                time.sleep(30)
        print("not reached")
    """)
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_a_run_stuck_in_one_c_call_is_still_ended(tmp_path):
    """The watchdog ends the run anyway, shortly after the limit, with exit status 3 and
    the budget's message."""
    done = run_stuck(tmp_path)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "indexcalc: the run exceeded its time limit (0.5 s) in the numeric check of "
        "grad f wrt x; a larger limit can be given with --time-limit")


def test_the_budget_is_not_mistaken_for_a_failed_computation():
    """BudgetExceeded passes through ``except Exception`` (the check's handler of a lambda
    that raised), so a run out of time is never reported as a failed check."""
    assert not issubclass(limits.BudgetExceeded, Exception)
    budget = limits.Budget(seconds=0.0)
    with budget.active(), pytest.raises(limits.BudgetExceeded) as stopped:
        with budget.stage("the derivation", "grad L wrt W"):
            pass
    assert stopped.value.stage == "the derivation" and stopped.value.goal == "grad L wrt W"


def test_a_run_past_its_limit_says_so_once(tmp_path):
    """The main thread reported the excess but was slow to end (freeing gigabytes); the
    watchdog then ended the run without a second copy of the message (the depth-11 chain
    printed it twice)."""
    done = run_stuck(tmp_path, 'budget.report(budget.exceeded("time").message())')
    assert done.returncode == 3
    assert done.stderr.count("exceeded its time limit") == 1, done.stderr
