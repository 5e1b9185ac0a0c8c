"""The command line's file habits (issue 10, item 5): ``-`` reads standard input, ``-o -``
is standard output, the format follows the output file's extension, and several FILEs in one
call give one document each (text and Markdown one after another, JSON one array, LaTeX and
modules one file each in ``-o DIR``), all or nothing.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from indexcalc import cli

pytest.importorskip("indexcalc.syntax.idx")

LINEAR = """\
title: A linear layer
dims S=4, M=3, N=2
input X[S,M], W[N,M]
Y[s,n] = sum_m X[s,m] W[n,m]
L = loss(Y)
grad L wrt W
"""

SQUARES = """\
title: A weighted sum of squares
dims N=3
input x[N], a[N]
f = sum_i a[i] x[i]^2
grad f wrt x
"""

BAD = "dims N\ninput x[N]\ny[i] = x[i] * z[i]\n"


@pytest.fixture
def files(tmp_path):
    linear, squares, bad = tmp_path / "linear.idx", tmp_path / "squares.idx", tmp_path / "bad.idx"
    linear.write_text(LINEAR, encoding="utf-8")
    squares.write_text(SQUARES, encoding="utf-8")
    bad.write_text(BAD, encoding="utf-8")
    return linear, squares, bad


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- the format follows the output file's extension -----------------------------------------

@pytest.mark.parametrize("suffix, fmt", [(".txt", "text"), (".md", "markdown"),
                                         (".tex", "latex"), (".json", "json"),
                                         (".TEX", "latex"), (".out", "text")])
def test_the_format_follows_the_extension(files, tmp_path, capsys, suffix, fmt):
    linear = files[0]
    out = tmp_path / f"result{suffix}"
    assert cli.main(["derive", str(linear), "-o", str(out)]) == 0
    assert cli.main(["derive", str(linear), "--format", fmt]) == 0
    assert out.read_text(encoding="utf-8") == capsys.readouterr().out


def test_format_overrides_the_extension(files, tmp_path):
    out = tmp_path / "result.tex"
    assert cli.main(["derive", str(files[0]), "--format", "json", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["title"] == "A linear layer"


def test_emit_writes_a_module_to_a_py_file(files, tmp_path, capsys):
    out = tmp_path / "linear_layer.py"
    assert cli.main(["derive", str(files[0]), "--emit", "numpy", "-o", str(out)]) == 0
    assert cli.main(["derive", str(files[0]), "--emit", "numpy"]) == 0
    source = out.read_text(encoding="utf-8")
    assert source == capsys.readouterr().out
    compile(source, str(out), "exec")


# --- standard input and output --------------------------------------------------------------

def test_dash_reads_standard_input(files, monkeypatch, capsys):
    assert cli.main(["derive", str(files[0]), "--format", "json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(LINEAR.encode())))
    assert cli.main(["derive", "-", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == from_file


def test_dash_output_is_standard_output(files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["derive", str(files[0]), "-o", "-"]) == 0
    assert "Gradient of L with respect to W" in capsys.readouterr().out
    assert listing(tmp_path) == ["bad.idx", "linear.idx", "squares.idx"]


def test_standard_input_is_read_only_once(files, capsys):
    assert cli.main(["derive", "-", "-"]) == 2
    assert "only once" in capsys.readouterr().err


# --- several FILEs ----------------------------------------------------------------------------

def test_several_files_print_one_text_document_after_another(files, capsys):
    linear, squares, _ = files
    assert cli.main(["derive", str(linear)]) == 0
    first = capsys.readouterr().out
    assert cli.main(["derive", str(squares)]) == 0
    second = capsys.readouterr().out
    assert cli.main(["derive", str(linear), str(squares)]) == 0
    assert capsys.readouterr().out == first + "\n" + second


def test_several_files_in_json_are_one_array_in_order(files, capsys):
    linear, squares, _ = files
    assert cli.main(["derive", str(squares), str(linear), "--format", "json"]) == 0
    documents = json.loads(capsys.readouterr().out)
    assert [d["title"] for d in documents] == ["A weighted sum of squares", "A linear layer"]
    assert cli.main(["derive", str(linear), "--format", "json"]) == 0
    assert documents[1] == json.loads(capsys.readouterr().out)


def test_several_files_to_one_markdown_file(files, tmp_path, capsys):
    linear, squares, _ = files
    out = tmp_path / "both.md"
    assert cli.main(["derive", str(linear), str(squares), "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    text = out.read_text(encoding="utf-8")
    assert text.index("A linear layer") < text.index("A weighted sum of squares")


@pytest.mark.parametrize("argv", [["--format", "latex"], ["--emit", "torch"], ["--emit", "numpy"]])
def test_several_latex_documents_or_modules_need_a_directory(files, capsys, argv):
    assert cli.main(["derive", str(files[0]), str(files[1]), *argv]) == 2
    assert "-o DIR" in capsys.readouterr().err


@pytest.mark.parametrize("argv, suffix", [(["--format", "latex"], ".tex"), ([], ".txt"),
                                          (["--emit", "jax"], ".py")])
def test_a_directory_gets_one_file_per_input(files, tmp_path, capsys, argv, suffix):
    linear, squares, _ = files
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["derive", str(linear), str(squares), "-o", str(out), *argv]) == 0
    assert capsys.readouterr().out == ""
    assert listing(out) == [f"linear{suffix}", f"squares{suffix}"]
    assert cli.main(["derive", str(squares), *argv]) == 0
    assert (out / f"squares{suffix}").read_text(encoding="utf-8") == capsys.readouterr().out


def test_a_directory_for_one_file(files, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["derive", str(files[0]), "-o", f"{out}/", "--format", "markdown"]) == 0
    assert listing(out) == ["linear.md"]


def test_a_missing_directory_is_a_usage_error(files, tmp_path, capsys):
    assert cli.main(["derive", str(files[0]), "-o", str(tmp_path / "nowhere") + "/"]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_two_files_with_one_name_would_collide(files, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = other / "linear.idx"
    twin.write_text(LINEAR, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["derive", str(files[0]), str(twin), "-o", str(out)]) == 2
    assert "both be written" in capsys.readouterr().err
    assert listing(out) == []


def test_bad_input_in_any_file_writes_nothing(files, tmp_path, capsys):
    linear, squares, bad = files
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["derive", str(linear), str(bad), str(squares), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3:" in err and "^" in err
    assert listing(out) == []
    assert cli.main(["derive", str(linear), str(bad)]) == 2
    assert capsys.readouterr().out == ""


def test_a_failed_check_in_one_file_exits_1_naming_the_file(files, monkeypatch, capsys):
    import dataclasses

    import indexcalc.pipeline
    from indexcalc.derivation import CheckResult

    real_run = indexcalc.pipeline.run

    def run(problem, **options):
        derivation = real_run(problem, **options)
        if derivation.title != "A weighted sum of squares":
            return derivation
        result = dataclasses.replace(derivation.results[0],
                                     check=CheckResult(False, 0.5, "planted"))
        return dataclasses.replace(derivation, results=(result,))

    monkeypatch.setattr(indexcalc.pipeline, "run", run)
    linear, squares, _ = files
    assert cli.main(["derive", str(linear), str(squares)]) == 1
    out, err = capsys.readouterr()
    assert f"{squares}: check FAILED: grad of f with respect to x" in err
    assert str(linear) not in err
    assert "A linear layer" in out and "check FAILED" in out


def test_several_files_with_pdf_need_a_directory_for_output(files, tmp_path, capsys):
    assert cli.main(["derive", str(files[0]), str(files[1]), "--pdf",
                     "-o", str(tmp_path / "both.md")]) == 2
    assert "directory" in capsys.readouterr().err
