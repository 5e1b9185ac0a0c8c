"""The Python API (CONTRACT section 7): ``indexcalc.derive`` / ``indexcalc.load``.

A ``Derivation`` reads one engine run: its results (index and matrix forms, steps, the
checked NumPy function, the check) and its documents and modules, which must be exactly what
the command line prints for the same file (``cli.main`` is called in-process, as in
``test_cli``).  The NumPy function is compared with the textbook formulas of a tanh layer
written out here with NumPy, not with anything indexcalc computes.
"""
from __future__ import annotations

import doctest
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import indexcalc
import indexcalc.api
from indexcalc import cli
from conftest import need

# Not among derivations/: a linear layer with a bias, under a tanh.
TANH = """\
title: A linear layer with bias and tanh
dims S=5, M=4, N=3
input X[S,M], W[N,M], b[N]
Z[s,n] = sum_m X[s,m] W[n,m] + b[n]
H[s,n] = tanh(Z[s,n])
L = loss(H)
grad L wrt W, b, X
"""
SIZES = {"S": 5, "M": 4, "N": 3}

# A missing operand at the end of line 3: the error is at the end of the line.
BAD = "dims N\ninput x[N]\ny[i] = x[i] +\n"
BAD_LINE, BAD_COLUMN = 3, len("y[i] = x[i] +") + 1


@pytest.fixture(scope="module")
def d():
    return indexcalc.derive(TANH)


@pytest.fixture
def tanh_file(tmp_path):
    path = tmp_path / "tanh_layer.idx"
    path.write_text(TANH, encoding="utf-8")
    return path


def cli_output(capsys, *argv: str) -> str:
    """Standard output of ``indexcalc derive ARGV`` run in-process (which must succeed)."""
    capsys.readouterr()
    assert cli.main(["derive", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def textbook(X, W, b, G):
    """The gradients of a tanh layer by hand: D = G * (1 - tanh(Z)^2)."""
    Z = X @ W.T + b[None, :]
    D = G * (1.0 - np.tanh(Z) ** 2)
    return {"W": D.T @ X, "b": D.sum(axis=0), "X": D @ W}


def inputs(rng, S, M, N):
    return {"X": rng.normal(size=(S, M)), "W": rng.normal(size=(N, M)),
            "b": rng.normal(size=N), "dL_dH": rng.normal(size=(S, N))}


def load_module(source: str, name: str):
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"<emitted {name}>", "exec"), module.__dict__)  # noqa: S102
    return module


# --- the module docstring and the package surface -----------------------------------------

def test_the_module_doctest_runs():
    failed, attempted = doctest.testmod(indexcalc.api)
    assert attempted > 0
    assert failed == 0


def test_public_names_and_py_typed():
    for name in ("derive", "load", "InputError", "Derivation", "Result"):
        assert name in indexcalc.__all__
        assert getattr(indexcalc, name) is getattr(indexcalc.api, name)
    assert all(hasattr(indexcalc, name) for name in indexcalc.__all__)
    assert (Path(indexcalc.__file__).parent / "py.typed").is_file()


# --- results ------------------------------------------------------------------------------

def test_results_in_goal_order_with_their_names(d):
    assert isinstance(d, indexcalc.Derivation)
    assert d.title == "A linear layer with bias and tanh"
    assert [(r.kind, r.of, r.wrt, r.name) for r in d.results] == [
        ("grad", "L", "W", "dL_dW"), ("grad", "L", "b", "dL_db"), ("grad", "L", "X", "dL_dX")]
    assert all(isinstance(r, indexcalc.Result) for r in d.results)


def test_index_and_matrix_forms(d):
    W, b, X = d.results
    assert W.index == "dL_dW[i,j] = sum_s dL_dH[s,i] * (1 - H[s,i]^2) * X[s,j]"
    assert b.index == "dL_db[i] = sum_s dL_dH[s,i] * (1 - H[s,i]^2)"
    assert X.index == "dL_dX[i,j] = sum_n dL_dH[i,n] * (1 - H[i,n]^2) * W[n,j]"
    assert W.matrix == "(dL_dH * (1 - H ** 2)).T @ X"
    assert X.matrix == "(dL_dH * (1 - H ** 2)) @ W"
    assert dict(W.where)["H"] == "np.tanh(Z)" and [n for n, _ in W.where] == ["Z", "H"]
    assert W.index_latex.startswith(r"\frac{\partial L}{\partial W_{ij}} = ")
    assert r"\odot" in W.matrix_latex and "^{T}" in W.matrix_latex
    for r, data in zip(d.results, d.to_dict()["results"]):
        assert r.index_latex == data["index"]["latex"]
        assert r.matrix_latex == data["matrix"]["latex"]
        assert r.source == data["numpy"]["source"]
        assert list(r.args) == data["numpy"]["args"]


def test_steps_args_source_and_check(d):
    for r, data in zip(d.results, d.to_dict()["results"]):
        assert r.steps, r.name
        for step in r.steps:
            assert isinstance(step, indexcalc.Step)
            assert all(isinstance(s, str) and s for s in (step.rule, step.text, step.latex))
        assert [(s.rule, s.text, s.latex) for s in r.steps] == [
            (s["rule"], s["text"], s["latex"]) for s in data["steps"]]
        assert r.steps[0].rule == "chain rule"
        assert "derivative of tanh" in [s.rule for s in r.steps]
        assert r.source.startswith(f"lambda {', '.join(r.args)}: ")
        assert set(r.args) == {"dL_dH", "X", "W", "b"}
        assert r.check.passed is True and bool(r.check)
        assert r.check.status == "passed" and r.check.method == "complex step"
        assert 0 <= r.check.max_rel_error < 1e-6
        assert r.check.frameworks == {}
    assert d.passed is True


def test_result_by_name_or_by_wrt(d):
    assert d.result("dL_dW") is d.result("W") is d.results[0]
    assert d.result("dL_dX") is d.result("X") is d.results[2]
    with pytest.raises(KeyError) as info:
        d.result("V")
    message = str(info.value)
    assert "'V'" in message
    assert all(name in message for name in ("dL_dW", "dL_db", "dL_dX"))


@pytest.mark.parametrize("sizes", [SIZES, {"S": 2, "M": 7, "N": 1}],
                         ids=["declared sizes", "other sizes"])
def test_function_equals_the_textbook_gradients(d, sizes):
    arrays = inputs(np.random.default_rng(7), **sizes)
    expected = textbook(arrays["X"], arrays["W"], arrays["b"], arrays["dL_dH"])
    for r in d.results:
        got = r.function(*(arrays[a] for a in r.args))
        assert got.shape == arrays[r.wrt].shape
        np.testing.assert_allclose(got, expected[r.wrt], rtol=1e-12, atol=1e-12)
    assert d.results[0].function is d.results[0].function  # compiled once


# --- documents and modules: what the command line prints ------------------------------------

def test_json_and_dict_equal_the_cli(d, tanh_file, capsys):
    out = cli_output(capsys, str(tanh_file), "--format", "json")
    assert d.to_json() == out
    assert d.to_dict() == json.loads(out)
    assert d.to_dict()["results"][0]["check"]["passed"] is True


@pytest.mark.parametrize("fmt", ["latex", "markdown", "text"])
def test_documents_equal_the_cli(d, tanh_file, capsys, fmt):
    assert getattr(d, fmt)() == cli_output(capsys, str(tanh_file), "--format", fmt)


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax"])
def test_emit_equals_the_cli(d, tanh_file, capsys, framework):
    assert d.emit(framework) == cli_output(capsys, str(tanh_file), "--emit", framework)


def test_emit_default_is_numpy_and_unknown_is_refused(d):
    assert d.emit() == d.emit("numpy")
    with pytest.raises(ValueError):
        d.emit("tensorflow")


def test_emitted_numpy_module_equals_the_functions(d):
    module = load_module(d.emit("numpy"), "emitted_tanh_layer")
    assert module.INPUTS == ("X", "W", "b")
    arrays = inputs(np.random.default_rng(11), **SIZES)
    np.testing.assert_allclose(
        module.forward(arrays["X"], arrays["W"], arrays["b"]),
        np.tanh(arrays["X"] @ arrays["W"].T + arrays["b"]), rtol=1e-14, atol=1e-14)
    for r in d.results:
        args = [arrays[a] for a in r.args]
        np.testing.assert_allclose(getattr(module, r.name)(*args), r.function(*args),
                                   rtol=1e-13, atol=1e-13)


def test_load_equals_derive(d, tanh_file):
    loaded = indexcalc.load(tanh_file)
    assert loaded.to_json() == d.to_json()
    assert indexcalc.load(str(tanh_file)).text() == d.text()
    assert [r.name for r in loaded.results] == [r.name for r in d.results]


# --- bad input ----------------------------------------------------------------------------

def test_bad_text_raises_input_error_with_its_place():
    with pytest.raises(indexcalc.InputError) as info:
        indexcalc.derive(BAD)
    error = info.value
    assert (error.path, error.line, error.column) == ("<input>", BAD_LINE, BAD_COLUMN)
    assert isinstance(error.message, str) and error.message
    assert str(error) == error.message
    rendered = error.render().splitlines()
    assert rendered[0] == f"<input>:{BAD_LINE}:{BAD_COLUMN}: error: {error.message}"
    assert rendered[1] == "    y[i] = x[i] +"
    assert rendered[2] == "    " + " " * (BAD_COLUMN - 1) + "^"


def test_bad_text_is_named_by_path():
    with pytest.raises(indexcalc.InputError) as info:
        indexcalc.derive(BAD, path="layer.idx")
    assert (info.value.path, info.value.line, info.value.column) == (
        "layer.idx", BAD_LINE, BAD_COLUMN)
    assert info.value.render().startswith(f"layer.idx:{BAD_LINE}:{BAD_COLUMN}: error: ")


def test_unknown_tensor_points_at_it():
    with pytest.raises(indexcalc.InputError) as info:
        indexcalc.derive("dims N\ninput x[N]\ny[i] = x[i] * z[i]\n")
    error = info.value
    assert (error.line, error.column) == (3, len("y[i] = x[i] * ") + 1)
    assert "z" in error.message
    assert error.location == indexcalc.Location("<input>", 3, 15, "y[i] = x[i] * z[i]")


def test_bad_file_names_its_path(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_text(BAD, encoding="utf-8")
    with pytest.raises(indexcalc.InputError) as info:
        indexcalc.load(path)
    assert (info.value.path, info.value.line, info.value.column) == (
        str(path), BAD_LINE, BAD_COLUMN)
    assert info.value.render().startswith(f"{path}:{BAD_LINE}:{BAD_COLUMN}: error: ")


# --- display ------------------------------------------------------------------------------

def test_reprs_are_one_line(d):
    text = repr(d)
    assert text.startswith("<Derivation A linear layer with bias and tanh:") and text.endswith(">")
    assert "\n" not in text and len(text) < 200
    assert all(f"{name} (passed)" in text for name in ("dL_dW", "dL_db", "dL_dX"))
    for r in d.results:
        text = repr(r)
        assert text.startswith("<Result ") and text.endswith(" (passed)>")
        assert "\n" not in text and len(text) < 200
        assert r.index in text


def test_jupyter_displays(d):
    assert d._repr_markdown_() == d.markdown()
    for r in d.results:
        markdown = r._repr_markdown_()
        assert f"$${r.index_latex}$$" in markdown
        assert f"$${r.matrix_latex}$$" in markdown
        assert "**passed**" in markdown
        latex = r._repr_latex_()
        assert latex.startswith("$") and latex.endswith("$")
        assert r.index_latex in latex and r.matrix_latex in latex
    latex = d._repr_latex_()
    assert latex.startswith("$") and latex.endswith("$")
    assert all(r._repr_latex_() in latex for r in d.results)


# --- a result that is not checked ------------------------------------------------------------

def test_a_result_the_check_cannot_judge_is_not_passed():
    # exp(10^6 x^2) overflows at every random input: nothing finite to compare.
    d = indexcalc.derive("dims N=3\ninput x[N]\nf = sum_i exp(1000000 * x[i]^2)\n"
                         "grad f wrt x\n")
    (r,) = d.results
    assert r.check.status == "not checked"
    assert r.check.passed is False and not r.check
    assert r.check.max_rel_error is None
    assert "not finite" in r.check.detail
    assert d.passed is False
    assert repr(r).endswith("(not checked)>")
    assert "**not checked**" in r._repr_markdown_()
    assert d.to_dict()["results"][0]["check"]["status"] == "not checked"


# --- check_with ---------------------------------------------------------------------------

def test_check_with_a_string_is_one_framework(tanh_file, capsys):
    need("torch")
    d = indexcalc.derive(TANH, check_with="torch")
    for r in d.results:
        assert list(r.check.frameworks) == ["torch"]
        torch_check = r.check.frameworks["torch"]
        assert torch_check["passed"] is True and torch_check["status"] == "passed"
        assert 0 <= torch_check["max_rel_error"] <= 1e-8
    assert d.to_json() == indexcalc.derive(TANH, check_with=("torch",)).to_json()
    assert d.to_json() == cli_output(capsys, str(tanh_file), "-f", "json",
                                     "--check-with", "torch")
    assert indexcalc.load(tanh_file, check_with="torch").to_json() == d.to_json()
