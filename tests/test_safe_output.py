"""Safe output: no input can inject TeX into the LaTeX/PDF or code into the NumPy lambda.

* A ``title:`` full of TeX commands (``\\input``, ``\\write18``, ``\\catcode``, ``^^5c``) comes
  out as those characters: in the LaTeX source (no command survives), and in the PDF typeset
  by ``indexcalc derive --pdf`` (pdflatex ``-no-shell-escape``), read back with ``pdftotext``.
* Names that reach LaTeX and Python are identifiers: the parser refuses any other name for a
  dim, input, function or definition, and names the generated code needs for itself.
* The generated lambda holds only the tool's constructs: read with ``ast``, every name is
  ``np``, an argument, ``float`` or a name it assigns (``_t<k>`` or a defined tensor), every
  attribute is a public one of an allowed set, every string is an einsum specification.
"""
from __future__ import annotations

import ast
import keyword
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from strategies import DrawnProblem, problems, profile  # noqa: E402

from indexcalc import cli, naming  # noqa: E402
from indexcalc.syntax.idx import parse_file, parse_text  # noqa: E402
from indexcalc.pipeline import run  # noqa: E402
from indexcalc.problem import InputError  # noqa: E402
from indexcalc.render.document import render  # noqa: E402
from indexcalc.functions import FUNCTIONS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

#: Everything TeX could be tricked with: commands, shell escape, catcodes, ^^ notation,
#: specials, a blank-line-free paragraph break attempt, csname and def.
HOSTILE_TITLE = (r"\input{/etc/passwd} \write18{touch pwned} \immediate\write18{ls} "
                 r"\catcode`\^^5c=12 ^^5cinput{/etc/passwd} ^^5c^^5c \csname input\endcsname"
                 r"{/etc/passwd} \def\x{y}\x $x^2$ & % ~ {} <b> | \\ \par \end{document}")

BODY = """\
dims S=3, M=4
input X[S,M], w[M]
f = sum_s log(1 + exp(-sum_m X[s,m] w[m]))
grad f wrt w
"""


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        if os.environ.get("CI") and program == "pdflatex":
            pytest.fail("pdflatex is missing on CI: .ci/run should have installed it")
        pytest.skip(f"{program} is not installed")
    return path


# --- TeX in the title -------------------------------------------------------------------------

#: What ``latex_escape`` writes for each TeX special: each prints the character, runs nothing.
SAFE_ESCAPES = (r"\textbackslash{}", r"\textasciicircum{}", r"\textasciitilde{}", r"\textless{}",
                r"\textgreater{}", r"\textbar{}", r"\{", r"\}", r"\$", r"\&", r"\#", r"\_", r"\%")


def test_hostile_title_is_escaped_in_the_latex_source():
    latex = render(run(parse_text(f"title: {HOSTILE_TITLE}\n{BODY}", "hostile.idx")), "latex")
    title = next(line for line in latex.splitlines() if line.startswith(r"\title{"))
    content = title[len(r"\title{"):-1]
    for escape in SAFE_ESCAPES:
        content = content.replace(escape, "")
    # Nothing left that TeX treats specially: no command, group, math, parameter or ^^.
    assert not set(content) & set("\\{}$&#^_%~"), content
    for command in ("input", "write18", "immediate", "catcode", "csname", "def"):
        assert f"\\{command}" not in latex
    assert "^^" not in latex  # no ^^-notation can reach TeX's input processor


#: Typographic glyphs the default OT1 fonts print for some ASCII characters; pdftotext reads
#: them back as these code points.  ``_`` is drawn as a rule in OT1 and has no text at all.
OT1_GLYPHS = {"\u02c6": "^", "\u02dc": "~", "\u2018": "`", "\u2019": "'"}


def _words(text: str) -> str:
    for glyph, char in OT1_GLYPHS.items():
        text = text.replace(glyph, char)
    return " ".join(text.replace("_", "").split())


def test_hostile_title_prints_literally_in_the_pdf(tmp_path):
    need("pdflatex")
    (tmp_path / "hostile.idx").write_text(f"title: {HOSTILE_TITLE}\n{BODY}", encoding="utf-8")
    out = tmp_path / "hostile.tex"
    assert cli.main(["derive", str(tmp_path / "hostile.idx"), "-f", "latex", "-o", str(out),
                     "--pdf"]) == 0
    pdf = tmp_path / "hostile.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    assert not (tmp_path / "pwned").exists()
    # Typeset again here (same flags as the CLI) to read the log and the working folder.
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           "-no-shell-escape", "hostile.tex"], cwd=tmp_path, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]
    log = (tmp_path / "hostile.log").read_text(errors="replace")
    assert "/etc/passwd" not in log.replace(r"\input{/etc/passwd}", "")
    assert "runsystem" not in log  # pdflatex's record of a \write18 it ran or refused
    assert not (tmp_path / "pwned").exists()
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed (apt package poppler-utils): text not read back")
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, check=True,
                          timeout=60).stdout.decode("utf-8")
    assert "root:" not in text  # /etc/passwd was not read in
    assert _words(HOSTILE_TITLE) in _words(text)


@pytest.mark.parametrize("char", ["\x1b", "\x00", "\x07", "\x7f", "\x9b"])
def test_control_characters_in_the_title_are_refused(char):
    with pytest.raises(InputError) as info:
        parse_text(f"title: clear{char}[2J screen\n{BODY}", "ctl.idx")
    assert (info.value.location.line, info.value.location.column) == (1, len("title: clear") + 1)
    assert "control character" in info.value.message


# --- names are identifiers -------------------------------------------------------------------

BAD_NAMES = ["_X", "X__1", "a__dim_S", "1X", "X-Y", "X$", "X{", "X}", "X\\y", "X^2", "Xé", "λ",
             "X.T", "X'", "sum_x", "sum", "exp"]

DECLARATIONS = {
    "input": "dims S=3\ninput {name}[S]\n",
    "scalar input": "dims S=3\ninput {name}\n",
    "dim": "dims {name}\n",
    "function": "function {name}\n",
    "definition": "dims S=3\ninput x[S]\n{name}[s] = x[s]\n",
    "scalar definition": "input x\n{name} = x\n",
}


@pytest.mark.parametrize("kind", sorted(DECLARATIONS))
@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_are_not_identifiers_are_refused(name, kind):
    with pytest.raises(InputError) as info:
        parse_text(DECLARATIONS[kind].format(name=name), "names.idx")
    assert info.value.location is not None


@pytest.mark.parametrize("kind", sorted(DECLARATIONS))
@pytest.mark.parametrize("name", ["np", "lambda", "None", "import", "def"])
def test_names_python_needs_are_accepted_and_renamed_in_code(name, kind):
    """np and keywords name a user's tensor; generated code spells them with an underscore
    (naming.code_name; issue 9: they were refused), and the spelling is an identifier that
    is no keyword."""
    problem = parse_text(DECLARATIONS[kind].format(name=name), "names.idx")
    assert name in (list(problem.dims) + list(problem.inputs) + list(problem.functions)
                    + list(problem.definitions))
    spelled = naming.code_name(name)
    assert spelled == name + "_" and spelled.isidentifier() and not keyword.iskeyword(spelled)
    assert naming.user_name(spelled) == name


@pytest.mark.parametrize("source, words", [
    ("dims S=3\ninput X[S], dL_dY[S]\nY[s] = X[s]\nL = loss(Y)\n", "upstream gradient dL/dY"),
    ("dims S=3\ninput X[S]\nY[s] = X[s]\nL = loss(Y)\ninput dL_dY[S]\n", "upstream gradient dL/dY"),
    ("dims S=3\ninput h_prime[S]\nfunction h\n", "derivative of function h"),
    ("function h\ndims h_prime2\n", "second derivative of function h"),
])
def test_names_the_generated_code_needs_are_refused(source, words):
    with pytest.raises(InputError) as info:
        parse_text(source, "clash.idx")
    assert words in info.value.message


@profile(scale=0.5)
@given(st.text(min_size=1, max_size=12))
def test_every_accepted_name_is_an_identifier(name):
    """Whatever is written where a name goes, a name that gets in is an identifier."""
    for kind, template in DECLARATIONS.items():
        try:
            problem = parse_text(template.format(name=name), "names.idx")
        except InputError:
            continue
        declared = (list(problem.dims) + list(problem.inputs) + list(problem.functions)
                    + list(problem.definitions))
        for declared_name in declared:
            assert IDENTIFIER.match(declared_name) and "__" not in declared_name, (kind, name)


# --- the generated NumPy code -----------------------------------------------------------------

#: NumPy functions the code generator may call (extend deliberately when it learns more).
NUMPY_FUNCTIONS = frozenset({
    "einsum", "ones", "zeros", "eye", "asarray", "broadcast_to", "outer", "multiply", "diag",
    "exp", "log", "sqrt", "tanh", "sin", "cos", "abs", "maximum", "heaviside", "sign",
    "where", "reciprocal", "square", "trace", "diagonal", "expand_dims", "newaxis", "copyto",
    "float64",  # the dtype of a scalar result: no builtin that a user's name could shadow
    "arange", "clip", "transpose", "take",  # shifted reads x[u+k]: a clipped gather, a mask
    "pad",  # or a gather from the array with one zero appended (zero padding)
    "max", "min", "argmax", "argmin",  # max_d, and the maximising entry of its derivative
    "linalg",
    "pi",  # the constant pi
})
#: Functions of ``np.linalg`` it may call: inv, det, logdet and products with an inverse.
NUMPY_LINALG = frozenset({"inv", "det", "slogdet", "solve"})
#: Attributes of arrays (and of ``np.multiply``) the generated code may use.
ARRAY_ATTRIBUTES = frozenset({"shape", "sum", "T", "copy", "outer", "reshape", "dot",
                              "diagonal", "trace", "ndim", "size", "prod"})
#: Builtins the generated code may name (``dtype=float``).
BUILTINS = frozenset({"float"})
ALLOWED_NODES = (
    ast.Expression, ast.Lambda, ast.arguments, ast.arg, ast.Name, ast.Load, ast.Store,
    ast.NamedExpr, ast.Attribute, ast.Call, ast.keyword, ast.Constant, ast.BinOp, ast.UnaryOp,
    ast.Subscript, ast.Slice, ast.Tuple, ast.List, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow,
    ast.MatMult, ast.USub, ast.UAdd,
    # Iverson brackets and where: np.where(a <= b, p, q)
    ast.Compare, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq,
    # the mask of a shifted read that can leave the range at both ends: (i >= 0) & (i < T)
    ast.BitAnd,
)
EINSUM_SPEC = re.compile(r"[A-Za-z,]*(->[A-Za-z]*)?\Z")


#: The registry's own inline NumPy code of a function NumPy lacks (erf): a fixed lambda, the
#: same text in every lambda that calls it; it is accepted whole, and what it is applied to
#: is checked like the rest.
REGISTRY_LAMBDAS = frozenset(ast.dump(ast.parse(f.numpy_code("_"), mode="eval").body.func)
                             for f in FUNCTIONS.values() if f.frameworks)


class _StripRegistryLambdas(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if ast.dump(node.func) in REGISTRY_LAMBDAS:
            (arg,) = node.args
            return arg
        return node


def assert_only_tool_constructs(source: str, args: tuple[str, ...], problem) -> None:
    tree = _StripRegistryLambdas().visit(ast.parse(source, mode="eval"))
    fn = tree.body
    assert isinstance(fn, ast.Lambda), source
    params = [a.arg for a in fn.args.args]
    assert params == list(args), (params, args)
    assert not (fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.args.defaults)
    for name in params:
        assert IDENTIFIER.match(name), name
        known = (name in problem.inputs or name in problem.dims
                 or any(name in (f, f"{f}_prime", f"{f}_prime2")
                        for f in problem.functions)
                 or any(name == f"d{d.name}_d{a}" for d in problem.definitions.values()
                        for a in d.loss_args))
        assert known, f"argument {name} is not a declared name: {source}"
    assigned = {node.target.id for node in ast.walk(fn) if isinstance(node, ast.NamedExpr)}
    for target in assigned:
        assert target.startswith("_t") and target[2:].isdigit() or target in problem.definitions, (
            target, source)
    local = set(params) | assigned
    for node in ast.walk(fn):
        assert isinstance(node, ALLOWED_NODES), (type(node).__name__, source)
        if isinstance(node, ast.Name):
            assert node.id in local or node.id == "np" or node.id in BUILTINS, (node.id, source)
            assert not (node.id == "np" and isinstance(node.ctx, ast.Store))
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("_"), (node.attr, source)
            if isinstance(node.value, ast.Name) and node.value.id == "np":
                assert node.attr in NUMPY_FUNCTIONS, (node.attr, source)
            elif (isinstance(node.value, ast.Attribute) and node.value.attr == "linalg"
                  and isinstance(node.value.value, ast.Name) and node.value.value.id == "np"):
                assert node.attr in NUMPY_LINALG, (node.attr, source)
            else:
                assert node.attr in ARRAY_ATTRIBUTES, (node.attr, source)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):  # only a declared function given as an argument
                assert func.id in params and any(
                    func.id in (f, f"{f}_prime", f"{f}_prime2") for f in problem.functions), source
        if isinstance(node, ast.Constant):
            value = node.value
            assert value is None or isinstance(value, (bool, int, float, str)), (value, source)
            if isinstance(value, str):
                assert EINSUM_SPEC.match(value), (value, source)


def _check_derivation(derivation) -> None:
    for result in derivation.results:
        assert_only_tool_constructs(result.numpy.source, result.numpy.args, derivation.problem)


@pytest.mark.parametrize("path", sorted((REPO / "derivations").glob("*.idx")), ids=lambda p: p.stem)
def test_generated_code_of_every_shipped_derivation(path):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        _check_derivation(run(parse_file(str(path))))


def test_generated_code_with_odd_but_valid_names():
    """Names that are builtins or modules in Python stay plain arguments."""
    source = """\
dims S=3, M
input eval[S,M], exec[M], print, numpy[S]
function os
Y[s] = sum_m eval[s,m] * os(exec[m]) + numpy[s]
L = loss(Y)
f = sum_s numpy[s] * print * M
grad L wrt eval, exec
grad f wrt print
"""
    derivation = run(parse_text(source, "odd.idx"))
    _check_derivation(derivation)
    assert all(r.check.passed for r in derivation.results)


@profile(scale=0.25)
@given(problems(max_depth=3))
def test_generated_code_of_random_files(drawn: DrawnProblem):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        _check_derivation(run(parse_text(drawn.text, "random.idx")))


# --- regressions --------------------------------------------------------------------------------

# Found by this file: a one-letter name with an underscore (W_1, X_) was printed as it is, so
# W_1[s] became W_1_{s} ("Double subscript"); printing.name_latex now sets it in \mathrm.
@pytest.mark.parametrize("name", ["W_1", "X_", "a_b_c", "x_0"])
def test_identifier_with_an_underscore_typesets(name, tmp_path):
    need("pdflatex")
    source = f"dims S=3\ninput {name}[S], x\nf = sum_s {name}[s] * x\ngrad f wrt x, {name}\n"
    (tmp_path / "under.idx").write_text(source)
    status = cli.main(["derive", str(tmp_path / "under.idx"), "-f", "latex",
                       "-o", str(tmp_path / "under.tex"), "--pdf"])
    assert status == 0
    assert (tmp_path / "under.pdf").exists()


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex", "json"])
def test_control_characters_never_reach_the_output(fmt):
    """A Problem built without the parser (an API user) still prints no escape sequence."""
    import dataclasses

    derivation = run(parse_text(BODY, "ctl.idx"))
    derivation = dataclasses.replace(derivation, problem=dataclasses.replace(
        derivation.problem, title="clear\x1b[2J\x07screen\x9b"))
    out = render(derivation, fmt)
    assert not any(c in out for c in "\x1b\x07\x9b"), repr(out[:200])
