"""Tests of the command line: exit status 0/1/2/3, -o, --pdf, and ``python -m indexcalc``.

Most tests call ``cli.main([...])`` in-process (so a failed check or an internal error can
be simulated by replacing ``pipeline.run``); two run ``python -m indexcalc`` for real.
Everything that reads a derivation file needs the parser and skips without it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import indexcalc
import indexcalc.pipeline
from indexcalc import cli
from indexcalc.derivation import CheckResult

REPO = Path(__file__).resolve().parent.parent

LINEAR = """\
title: Gradients of a linear layer
dims S=8, M=5, N=3
input X[S,M], W[N,M], b[N]
Y[s,n] = sum_m X[s,m] * W[n,m] + b[n]
L = loss(Y)
grad L wrt W, b, X
"""

BAD = """\
dims S
input X[S]
Y[s] = X[s] * Z[s]
"""


@pytest.fixture
def parser():
    return pytest.importorskip("indexcalc.syntax.idx")


@pytest.fixture
def linear_file(parser, tmp_path):
    path = tmp_path / "linear.idx"
    path.write_text(LINEAR, encoding="utf-8")
    return path


@pytest.fixture
def bad_file(parser, tmp_path):
    path = tmp_path / "bad.idx"
    path.write_text(BAD, encoding="utf-8")
    return path


def replace_check(monkeypatch, index: int, check: CheckResult) -> None:
    """Make ``pipeline.run`` report ``check`` for its result number ``index``."""
    real_run = indexcalc.pipeline.run

    def run(problem, **options):
        derivation = real_run(problem, **options)
        results = list(derivation.results)
        results[index] = dataclasses.replace(results[index], check=check)
        return dataclasses.replace(derivation, results=tuple(results))

    monkeypatch.setattr(indexcalc.pipeline, "run", run)


@pytest.fixture
def failing_check(monkeypatch):
    """``pipeline.run`` whose second result failed its numeric check."""
    replace_check(monkeypatch, 1, CheckResult(False, 0.31, "3 entries"))


@pytest.fixture
def crashing_run(monkeypatch):
    def run(problem, **options):
        raise RuntimeError("boom in the engine")

    monkeypatch.setattr(indexcalc.pipeline, "run", run)


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- exit 0 ------------------------------------------------------------------------------

def test_derive_prints_text_by_default(linear_file, capsys):
    assert cli.main(["derive", str(linear_file)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Gradients of a linear layer\n")
    assert "dL_dW[i,j] = sum_s dL_dY[s,i] * X[s,j]" in out
    assert err == ""


@pytest.mark.parametrize("fmt", ["latex", "markdown", "text", "json"])
def test_every_format(linear_file, capsys, fmt):
    assert cli.main(["derive", str(linear_file), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        data = json.loads(out)  # nothing else on standard output
        assert [r["wrt"] for r in data["results"]] == ["W", "b", "X"]
        assert all(r["check"]["passed"] for r in data["results"])
    else:
        assert "check passed" in out


def test_output_file_is_written_and_stdout_stays_empty(linear_file, tmp_path, capsys):
    out_path = tmp_path / "out" / "linear.json"
    out_path.parent.mkdir()
    assert cli.main(["derive", str(linear_file), "--format", "json", "-o", str(out_path)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(out_path.read_text())["title"] == "Gradients of a linear layer"
    assert files_in(out_path.parent) == ["linear.json"]  # no temporary file left behind


# --- exit 1 ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["latex", "markdown", "text"])
def test_failed_check_exits_1_and_still_prints_saying_failed(linear_file, failing_check,
                                                              capsys, fmt):
    assert cli.main(["derive", str(linear_file), "--format", fmt]) == 1
    out, err = capsys.readouterr()
    assert "check FAILED" in out
    assert out.count("check passed") == 2
    assert "check FAILED" in err and "grad of L with respect to b" in err


def test_failed_check_in_json_and_in_the_output_file(linear_file, failing_check, tmp_path,
                                                     capsys):
    out_path = tmp_path / "linear.json"
    assert cli.main(["derive", str(linear_file), "-f", "json", "-o", str(out_path)]) == 1
    checks = [r["check"] for r in json.loads(out_path.read_text())["results"]]
    assert checks[1] == {"passed": False, "max_rel_error": 0.31, "status": "failed",
                         "method": "", "detail": "3 entries"}
    assert checks[0]["passed"] and checks[0]["status"] == "passed"
    assert checks[0]["method"] == "complex step"
    assert "with respect to b" in capsys.readouterr().err


@pytest.fixture
def unchecked_result(monkeypatch):
    """``pipeline.run`` whose first result could not be checked."""
    replace_check(monkeypatch, 0, CheckResult(
        False, float("nan"), "every compared value underflowed to zero", checked=False))


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex", "json"])
def test_a_result_not_checked_exits_1_and_never_says_passed(linear_file, unchecked_result,
                                                             capsys, fmt):
    assert cli.main(["derive", str(linear_file), "--format", fmt]) == 1
    out, err = capsys.readouterr()
    assert err == ("indexcalc: not checked: grad of L with respect to W: every compared "
                   "value underflowed to zero\n")
    if fmt == "json":
        check = json.loads(out)["results"][0]["check"]
        assert check["status"] == "not checked" and check["passed"] is False
        assert check["max_rel_error"] is None
    else:
        assert "not checked" in out and "underflowed to zero" in out
        assert out.count("check passed") == 2 and "FAILED" not in out


# --- exit 2 ------------------------------------------------------------------------------

def test_bad_input_exits_2_with_location_and_caret(bad_file, capsys):
    assert cli.main(["derive", str(bad_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{bad_file}:3:")
    assert ": error: " in err and "^" in err
    assert "Traceback" not in err


def test_missing_file_exits_2(parser, tmp_path, capsys):
    assert cli.main(["derive", str(tmp_path / "nowhere.idx")]) == 2
    assert "nowhere.idx" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["derive"], ["derive", "x.idx", "--format", "html"],
                                  ["frobnicate", "x.idx"], ["derive", "x.idx", "--bogus"]])
def test_usage_errors_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys):
    assert cli.main(["--help"]) == 0
    assert cli.main(["--version"]) == 0
    assert f"indexcalc {indexcalc.__version__}" in capsys.readouterr().out


def test_nothing_is_written_on_bad_input(bad_file, tmp_path, capsys):
    out_path = tmp_path / "result.tex"
    out_path.write_text("previous contents")
    assert cli.main(["derive", str(bad_file), "-f", "latex", "-o", str(out_path), "--pdf"]) == 2
    assert out_path.read_text() == "previous contents"
    assert files_in(tmp_path) == ["bad.idx", "result.tex"]


def test_unwritable_output_exits_2(linear_file, tmp_path, capsys):
    assert cli.main(["derive", str(linear_file), "-o", str(tmp_path / "no" / "dir.txt")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_pdf_without_pdflatex_exits_2(linear_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    out_path = tmp_path / "linear.tex"
    assert cli.main(["derive", str(linear_file), "-o", str(out_path), "--pdf"]) == 2
    assert "pdflatex" in capsys.readouterr().err
    assert not out_path.exists()


def test_pdf_output_named_pdf_is_a_usage_error(linear_file, tmp_path, capsys):
    assert cli.main(["derive", str(linear_file), "-o", str(tmp_path / "x.pdf"), "--pdf"]) == 2
    assert "x.tex" in capsys.readouterr().err
    assert files_in(tmp_path) == ["linear.idx"]


# --- exit 3 ------------------------------------------------------------------------------

def test_internal_error_exits_3_with_one_short_message(linear_file, crashing_run, tmp_path,
                                                       capsys):
    out_path = tmp_path / "out.txt"
    assert cli.main(["derive", str(linear_file), "-o", str(out_path)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"indexcalc {indexcalc.__version__}: internal error: "
                          "RuntimeError: boom in the engine\n")
    assert "please report this with the input file" in err
    assert "Traceback" not in err
    assert not out_path.exists()


def test_debug_shows_the_traceback(linear_file, crashing_run, capsys):
    assert cli.main(["derive", str(linear_file), "--debug"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "internal error: RuntimeError: boom in the engine" in err


# --- --pdf -------------------------------------------------------------------------------

def test_pdf_is_written_next_to_the_output(linear_file, tmp_path, capsys):
    if cli.shutil.which("pdflatex") is None:
        if os.environ.get("CI"):
            pytest.fail("pdflatex is missing on CI: .ci/run should have installed it")
        pytest.skip("pdflatex is not installed")
    out_path = tmp_path / "linear.tex"
    assert cli.main(["derive", str(linear_file), "-f", "latex", "-o", str(out_path),
                     "--pdf"]) == 0
    assert out_path.read_text().startswith("\\documentclass{article}")
    assert (tmp_path / "linear.pdf").read_bytes().startswith(b"%PDF")
    assert files_in(tmp_path) == ["linear.idx", "linear.pdf", "linear.tex"]
    assert "linear.pdf" in capsys.readouterr().err


# --- python -m indexcalc -----------------------------------------------------------------

def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    return subprocess.run([sys.executable, "-m", "indexcalc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)


def test_python_m_indexcalc_json(linear_file, tmp_path):
    done = run_module("derive", linear_file.name, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["numpy"]["args"] == ["dL_dY", "X"]


def test_python_m_indexcalc_bad_input(bad_file, tmp_path):
    done = run_module("derive", bad_file.name, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("bad.idx:3:") and "Traceback" not in done.stderr


def test_the_option_choices_are_the_stages_own():
    """The command line names formats and frameworks without importing the stages."""
    from indexcalc.check import frameworks
    from indexcalc.emit import module
    from indexcalc.render import document, report

    assert set(cli.FORMATS) == set(document.FORMATS)
    assert set(cli.REPORT_FORMATS) == set(report.FORMATS)
    assert cli.FRAMEWORKS == module.FRAMEWORKS
    assert cli.CHECK_FRAMEWORKS == frameworks.FRAMEWORKS
