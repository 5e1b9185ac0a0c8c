"""Framework modules (CONTRACT section 4): a derivation as a readable NumPy, PyTorch or JAX
module.

Every function of a module is printed from the code the numeric check ran: the result's
NumPy lambda (``emit.assemble``), printed once more without in-place writes, then

* hoisted: each named definition (``Y := ...``) of the lambda becomes a statement, so the
  module reads as a sequence of named intermediates rather than a walrus chain;
* translated (``_Translate``): every ``np.`` spelling is rewritten on the syntax tree to the
  framework's (``torch.einsum``, ``jnp.ones``, ``dim=`` for ``axis=``), never by text;
* formatted (``_format``): lines of at most ``WIDTH`` characters, broken at the outermost
  call or operator.

A module imports only its framework and the standard library.  The torch ``Function`` and the
JAX ``custom_vjp`` take their backward from the derived gradients of the first goal.
"""
from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass

from .. import naming
from ..derivation import Derivation, Result
from ..functions import CONSTANTS, FUNCTIONS
from ..problem import Problem
from ..render.printing import to_text
from .assemble import numpy_lambda, tensor_lambda

FRAMEWORKS = ("numpy", "torch", "jax")
WIDTH = 99

_HEADER = {
    "numpy": "import numpy as np",
    "torch": "import torch",
    "jax": "import jax\nimport jax.numpy as jnp",
}


@dataclass(frozen=True)
class _Function:
    name: str
    args: tuple[str, ...]
    doc: str
    body: tuple[ast.stmt, ...]
    #: default values of trailing arguments: the file's size of a dim no input carries
    defaults: tuple[tuple[str, str], ...] = ()


def module_source(derivation: Derivation, framework: str) -> str:
    """The module of ``derivation`` for ``framework`` ("numpy", "torch" or "jax")."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"no module for {framework!r}: one of {', '.join(FRAMEWORKS)}")
    problem = derivation.problem
    header = _HEADER[framework]
    if framework == "jax" and problem.functions:
        header = "import functools\n\n" + header  # custom_vjp's nondiff_argnums
    functions = [_forward(problem, framework)]
    functions += [_result_function(problem, r, framework) for r in derivation.results]
    chunks = [_module_doc(derivation, framework), "", header, "", ""]
    chunks.append(f"INPUTS = {tuple(naming.code_name(n) for n in problem.inputs)!r}")
    for helper in _helpers(functions):
        chunks += ["", "", helper]
    for fn in functions:
        chunks += ["", "", _print_function(fn)]
    autograd = _autograd(derivation, framework)
    if autograd:
        chunks += ["", "", autograd]
    if any(_uses_math(fn) for fn in functions):
        chunks[2] = "import math\n\n" + chunks[2]
    return "\n".join(chunks).rstrip() + "\n"


def _uses_math(fn: _Function) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "math"
               for s in fn.body for n in ast.walk(s))


def result_name(result: Result) -> str:
    """The per-result function's name: the JSON name in ``numpy.args`` style."""
    if result.kind == "grad":
        return naming.code_name(naming.gradient(result.of, result.wrt))
    if result.kind == "hessian":
        return naming.code_name(f"d2{result.of}_d{result.wrt}2")
    return naming.code_name(f"d{result.of}_d{result.wrt}")


# --- the functions -----------------------------------------------------------------------

def forward_outputs(problem: Problem) -> tuple[str, ...]:
    """What ``forward`` returns: the first goal's ``of``, or the arguments of its
    unspecified loss."""
    of = problem.goals[0].of
    d = problem.definitions.get(of)
    if d is not None and d.is_opaque_loss:
        return tuple(d.loss_args)
    return (of,)


def _function_names(problem: Problem) -> tuple[str, ...]:
    names: list[str] = []
    for fn in problem.functions:
        names += [naming.derivative_function(fn, 0), naming.derivative_function(fn, 1)]
    return tuple(naming.code_name(n) for n in names)


def forward_namespace(problem: Problem, outputs: tuple[str, ...],
                      framework: str) -> tuple[dict, tuple[str, ...]]:
    """A ``forward`` computing the tensors ``outputs`` in ``framework``, executed: the
    namespace holding it and its arguments (the framework check differentiates it)."""
    fn = _forward(problem, framework, outputs)
    source = _HEADER[framework] + "\n" + ("import math\n" if _uses_math(fn) else "")
    source += "".join("\n\n" + helper for helper in _helpers([fn]))
    source += "\n\n" + _print_function(fn) + "\n"
    namespace: dict = {}
    # generated code only: names in it are validated identifiers of the parsed file
    exec(compile(source, "<indexcalc forward>", "exec"), namespace)  # noqa: S102
    return namespace, fn.args


def _forward(problem: Problem, framework: str,
             outputs: tuple[str, ...] | None = None) -> _Function:
    outputs = outputs or forward_outputs(problem)
    code = tensor_lambda(problem, outputs, pure=framework != "numpy")
    args = tuple(naming.code_name(n) for n in problem.inputs) + _function_names(problem)
    missing = [a for a in code.args if a not in args]
    args += tuple(missing)  # a dim that no input carries
    what = " and ".join(outputs)
    doc = f"The forward pass: {what} from the inputs."
    # a dim with a size in the file (a pooling window) defaults to it, so the autograd
    # apply, which passes the inputs only, can call forward
    sizes = [(a, problem.dims.get(a)) for a in missing]
    defaults = tuple((a, str(n)) for a, n in sizes if n is not None and a not in
                     problem.dim_formulas)
    if len(defaults) != len(missing):
        defaults = ()  # only trailing arguments take defaults: all or none
    return _Function("forward", args, doc, _body(problem, code.source, args, framework),
                     defaults)


def _result_function(problem: Problem, result: Result, framework: str) -> _Function:
    from ..pipeline import output_indices  # the pipeline imports this package

    code = result.numpy
    problem = result.context or problem  # with the gradients it names, as definitions
    if framework != "numpy":
        expr = result.matrix.expr if result.matrix is not None else None
        code = numpy_lambda(problem, result.index, output_indices(result), expr,
                            wrt=result.wrt, pure=True)
    lines = [f"{_describe(result)}.", "", "Index form:",
             f"    {to_text(result.target)} = {to_text(result.index)}"]
    if result.matrix is not None:
        lines += ["", "Matrix form:", f"    {result.matrix.text}"]
        lines += [f"    where {name} = {text}" for name, text in result.matrix.where]
    lines += ["", f"Numeric check: {result.check.status}"
              + (f" (max relative error {result.check.max_rel_error:.1e})"
                 if result.check.checked else "")]
    return _Function(result_name(result), result.numpy.args, "\n".join(lines),
                     _body(problem, code.source, result.numpy.args, framework))


def _describe(result: Result) -> str:
    if result.kind == "grad":
        return f"The gradient of {result.of} with respect to {result.wrt}"
    if result.kind == "hessian":
        return f"The Hessian of {result.of} with respect to {result.wrt}"
    return f"The Jacobian of {result.of} with respect to {result.wrt}"


def _module_doc(derivation: Derivation, framework: str) -> str:
    title = derivation.problem.title or "A derivation"
    text = (f"{title}.\n\nGenerated by indexcalc for {framework}: the forward pass and the "
            "derived results, each checked numerically against the forward definitions.")
    body = "\n\n".join(textwrap.fill(p, WIDTH - 4) for p in text.split("\n\n"))
    return '"""' + _escape_docstring(body) + '\n"""'


def _escape_docstring(text: str) -> str:
    """``text`` safe inside a triple-quoted literal: a title is the user's text, and a
    backslash or a quote in it must stay text (``x\"\"\" + os.system(...)`` would otherwise
    close the docstring and run when the module is imported)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _body(problem: Problem, source: str, args: tuple[str, ...],
          framework: str) -> tuple[ast.stmt, ...]:
    """The statements of a function computing the lambda ``source``."""
    expr = ast.parse(source, mode="eval").body
    assert isinstance(expr, ast.Lambda)
    statements: list[ast.stmt] = []
    value = _hoist(expr.body, statements)
    statements.append(ast.Return(value))
    statements = [_OwnSpelling(framework).visit(s) for s in statements]
    if framework != "numpy":
        dims = {naming.code_name(d) for d in problem.dims}
        arrays = [a for a in args if a not in _function_names(problem) and a not in dims
                  and (naming.user_name(a) not in problem.inputs
                       or problem.inputs[naming.user_name(a)].dims)]
        translate = _Translate(framework, arrays[0] if arrays else None, dims)
        statements = [ast.fix_missing_locations(translate.visit(s)) for s in statements]
    return tuple(statements)


def _hoist(node: ast.expr, out: list[ast.stmt]) -> ast.expr:
    """``node`` with its walrus definitions moved to statements in ``out``, in the order
    Python evaluates them; ``(a, b, c)[-1]`` becomes the statements a, b and the value c."""
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Tuple)
            and isinstance(node.slice, ast.UnaryOp) and isinstance(node.slice.op, ast.USub)
            and isinstance(node.slice.operand, ast.Constant) and node.slice.operand.value == 1):
        *first, last = node.value.elts
        for element in first:
            value = _hoist(element, out)
            if not isinstance(value, ast.Name):
                out.append(ast.Expr(value))
        return _hoist(last, out)
    if isinstance(node, ast.NamedExpr):
        value = _hoist(node.value, out)
        out.append(ast.Assign([ast.Name(node.target.id, ast.Store())], value))
        return ast.Name(node.target.id, ast.Load())
    for field, old in ast.iter_fields(node):
        if isinstance(old, list):
            setattr(node, field, [_hoist(v, out) if isinstance(v, ast.expr) else v
                                  for v in old])
        elif isinstance(old, ast.expr) and not isinstance(old, ast.Lambda):
            setattr(node, field, _hoist(old, out))
    return node


# --- translation to a framework -------------------------------------------------------------

#: Functions of the standard library's math module, for a function of dims in torch.
_MATH = {"exp", "log", "sqrt", "tanh", "sin", "cos"}

#: NumPy functions whose framework spelling is the same name in its namespace.
_SAME = {"einsum", "exp", "log", "sqrt", "tanh", "sin", "cos", "abs", "sign", "outer", "diag",
         "broadcast_to", "zeros", "ones", "eye", "maximum", "heaviside", "where", "cosh", "sinh",
         "log1p", "expm1", "logaddexp", "arange", "clip", "transpose", "take", "trace", "pad"}


#: The attributes of ``np`` that spell the language's constants (``pi``).
_CONSTANT_ATTRIBUTES = frozenset(c.numpy.removeprefix("np.") for c in CONSTANTS.values())


def _own_spellings() -> dict[str, dict[str, str]]:
    """The NumPy code of each registry function that a framework has as its own (``erf``,
    which NumPy lacks), by the dump of that code's function part: framework -> name."""
    out: dict[str, dict[str, str]] = {}
    for f in FUNCTIONS.values():
        if f.frameworks:
            call = ast.parse(f.numpy_code("_"), mode="eval").body
            out[ast.dump(call.func)] = dict(f.frameworks)
    return out


_OWN_SPELLINGS = _own_spellings()
#: The module-level helpers a NumPy module defines for the functions it calls by name.
_HELPERS = {dict(f.frameworks)["numpy"]: f.module_helper for f in FUNCTIONS.values()
            if f.module_helper}


class _OwnSpelling(ast.NodeTransformer):
    """A registry function's inline NumPy code replaced by the framework's own function
    (``(lambda x: ...)(u)`` -> ``torch.special.erf(u)``, or ``_erf(u)`` in a NumPy module)."""

    def __init__(self, framework: str):
        self.framework = framework

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        own = _OWN_SPELLINGS.get(ast.dump(node.func), {}).get(self.framework)
        if own is None:
            return node
        return ast.Call(ast.parse(own, mode="eval").body, node.args, [])


def _helpers(functions: list[_Function]) -> list[str]:
    """The helper definitions the functions call (``_erf``), in a stable order."""
    called = {n.id for fn in functions for s in fn.body for n in ast.walk(s)
              if isinstance(n, ast.Name)}
    return [source for name, source in sorted(_HELPERS.items()) if name in called]


class _Translate(ast.NodeTransformer):
    """NumPy code rewritten for torch or JAX on its syntax tree."""

    def __init__(self, framework: str, like: str | None, numbers=()):
        self.framework = framework
        self.module = "torch" if framework == "torch" else "jnp"
        self.like = like  # an array argument whose dtype new arrays take (torch)
        self.numbers = set(numbers)  # arguments that are Python numbers (dims)
        self.uses_math = False

    def is_number(self, node: ast.expr) -> bool:
        """Is ``node`` certainly a Python number: literals, dims and shapes, arithmetic?"""
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Name):
            return node.id in self.numbers
        if isinstance(node, ast.Subscript):  # X.shape[0]
            return isinstance(node.value, ast.Attribute) and node.value.attr == "shape"
        if isinstance(node, ast.Attribute):  # np.pi, or torch.pi once translated
            return (isinstance(node.value, ast.Name) and node.value.id in ("np", self.module)
                    and node.attr in _CONSTANT_ATTRIBUTES)
        if isinstance(node, ast.BinOp):
            return self.is_number(node.left) and self.is_number(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.is_number(node.operand)
        return False

    def _attr(self, name: str) -> ast.expr:
        return ast.Attribute(ast.Name(self.module, ast.Load()), name, ast.Load())

    def _dtype(self) -> list[ast.keyword]:
        if self.framework != "torch":
            return []
        if self.like is None:
            value: ast.expr = ast.Attribute(ast.Name("torch", ast.Load()), "float64", ast.Load())
        else:
            value = ast.Attribute(ast.Name(self.like, ast.Load()), "dtype", ast.Load())
        return [ast.keyword("dtype", value)]

    def visit_Call(self, node: ast.Call) -> ast.expr:
        func = node.func
        node.args = [self.visit(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords]
        if isinstance(func, ast.Attribute) and _is_np(func.value):
            return self._np_call(func.attr, node)
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute)
                and _is_np(func.value.value) and func.value.attr == "multiply"
                and func.attr == "outer"):
            # the outer product of any ranks: a tensordot over no axes
            keyword = "dims" if self.framework == "torch" else "axes"
            return ast.Call(self._attr("tensordot"), node.args,
                            [ast.keyword(keyword, ast.Constant(0))])
        node.func = self.visit(func)
        if isinstance(func, ast.Attribute) and self.framework == "torch":
            for k in node.keywords:  # x.sum(axis=0) -> x.sum(dim=0)
                if k.arg == "axis":
                    k.arg = "dim"
        return node

    def _np_call(self, name: str, node: ast.Call) -> ast.expr:
        if name == "einsum":
            node.keywords = [k for k in node.keywords if k.arg != "optimize"]
        elif name == "asarray":
            node.keywords = [k for k in node.keywords if k.arg != "dtype"]
            if self.framework == "torch":
                return ast.Call(self._attr("as_tensor"), node.args, self._dtype())
        elif name in {"ones", "zeros", "eye"}:
            node.keywords += self._dtype()
        elif name == "maximum" and self.framework == "torch":
            # np.maximum(x, 0): torch.maximum needs two tensors
            return ast.Call(self._attr("clamp"), node.args[:1],
                            [ast.keyword("min", node.args[1])])
        elif name == "logaddexp" and self.framework == "torch":
            # np.logaddexp(0, x), the registry's softplus: torch's logaddexp takes tensors
            zero, x = node.args
            if not (isinstance(zero, ast.Constant) and zero.value == 0):
                raise ValueError("no torch spelling of np.logaddexp(a, b) but for a = 0")
            return ast.Call(ast.parse("torch.nn.functional.softplus", mode="eval").body,
                            [x], [])
        elif (name == "where" and self.framework == "torch"
              and all(self.is_number(a) for a in node.args[1:])):
            # torch.where(c, 1.0, 0.0) is float32 (torch's default dtype): take the inputs'
            node.func = self._attr(name)
            return ast.Call(ast.Attribute(node, "to", ast.Load()),
                            [self._dtype()[0].value], [])
        elif name == "take" and self.framework == "torch":
            # np.take(x, i, axis=k) is x[:, ..., i] with k slices (torch.take is flat)
            (axis,) = [k.value.value for k in node.keywords if k.arg == "axis"]
            x, where = node.args
            slices = [ast.Slice() for _ in range(axis)] + [where]
            return ast.Subscript(x, ast.Tuple(slices, ast.Load()) if axis else where, ast.Load())
        elif name in {"max", "min", "argmax", "argmin"}:
            # np.max(x, axis=k): torch.amax(x, dim=k) (torch.max(x, dim) is a pair)
            if self.framework == "torch":
                for k in node.keywords:
                    k.arg = "dim" if k.arg == "axis" else k.arg
                name = {"max": "amax", "min": "amin"}.get(name, name)
            node.func = self._attr(name)
            return node
        elif name == "pad" and self.framework == "torch":
            # np.pad(x, ((0, 0), (0, 1))): torch's pad takes the widths flat, last axis first
            x, widths = node.args
            flat = [w for pair in reversed(widths.elts) for w in pair.elts]
            return ast.Call(ast.parse("torch.nn.functional.pad", mode="eval").body,
                            [x, ast.Tuple(flat, ast.Load())], [])
        elif name == "clip" and self.framework == "torch":
            return ast.Call(self._attr("clamp"), node.args, node.keywords)
        elif name == "transpose" and self.framework == "torch":
            return ast.Call(self._attr("permute"), node.args, node.keywords)
        elif name == "heaviside" and self.framework == "torch":
            x = node.args[0]
            zeros = ast.Call(self._attr("zeros_like"), [x], [])
            return ast.Call(self._attr("heaviside"), [x, zeros], [])
        elif name not in _SAME:
            raise ValueError(f"no {self.framework} spelling of np.{name}")
        elif name in _MATH and self.framework == "torch" and self.is_number(node.args[0]):
            # torch's functions take tensors only: a function of dims is a Python number
            node.func = ast.Attribute(ast.Name("math", ast.Load()), name, ast.Load())
            self.uses_math = True
            return node
        node.func = self._attr(name)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        self.generic_visit(node)
        if _is_np(node.value):
            if node.attr == "float64":
                return ast.Attribute(ast.Name(self.module, ast.Load()), "float64", ast.Load())
            return self._attr(node.attr)
        return node


def _is_np(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "np"


# --- the autograd wrappers -----------------------------------------------------------------

def _autograd(derivation: Derivation, framework: str) -> str:
    """torch's ``Function`` or JAX's ``custom_vjp`` ``apply``, or "" when the first goal is
    a jacobian or hessian (or its results need upstream gradients ``forward`` cannot take)."""
    if framework == "numpy":
        return ""
    problem = derivation.problem
    first = problem.goals[0]
    if first.kind != "grad":
        return ""
    outputs = forward_outputs(problem)
    grads = [naming.code_name(naming.gradient(first.of, o)) for o in outputs]
    opaque = problem.definitions.get(first.of) is not None and \
        problem.definitions[first.of].is_opaque_loss
    inputs = tuple(naming.code_name(n) for n in problem.inputs)
    functions = _function_names(problem)
    results = {naming.code_name(r.wrt): r for r in derivation.results
               if r.kind == "grad" and r.of == first.of}
    calls: dict[str, str] = {}
    for name, r in results.items():
        upstream = [a for a in r.numpy.args if a.startswith(f"d{first.of}_d")]
        if upstream and (not opaque or any(a not in grads for a in upstream)):
            return ""
        spelled = {a: _dim_of_inputs(problem, a) for a in r.numpy.args
                   if a not in inputs + functions + tuple(grads)}  # dims the result takes
        if None in spelled.values():  # a dim no input carries
            return ""
        call = f"{result_name(r)}({', '.join(spelled.get(a, a) for a in r.numpy.args)})"
        calls[name] = call if opaque else f"grad * {call}"
    if framework == "torch":
        # A scalar input that gets no gradient (an eps) may be a Python number, which
        # save_for_backward refuses: it is kept on ctx instead.
        plain = tuple(naming.code_name(n) for n, t in problem.inputs.items()
                      if not t.dims and naming.code_name(n) not in calls)
        return _torch_function(inputs, functions, grads, calls, opaque, plain)
    return _jax_apply(inputs, functions, grads, calls, opaque)


def _dim_of_inputs(problem: Problem, dim: str) -> str | None:
    """``dim`` read off an input's shape (``X.shape[0]``), or computed from its formula in
    such dims, or else the size the file gives it (a pooling window ``dims K=3`` that no
    input carries is a hyperparameter of the layer); None when none of these is known."""
    for name, tensor in problem.inputs.items():
        if dim in tensor.dims:
            return f"{naming.code_name(name)}.shape[{tensor.dims.index(dim)}]"
    formula = problem.dim_formulas.get(dim)
    if formula is None:
        size = problem.dims.get(dim)
        return None if size is None else str(size)
    parts = {d: _dim_of_inputs(problem, d) for d in formula.dims}
    if None in parts.values():
        return None
    return f"({formula.code(parts.__getitem__)})"


def _torch_function(inputs, functions, grads, calls, opaque, plain=()) -> str:
    arguments = ", ".join(inputs + functions)
    upstream = ", ".join(grads) if opaque else "grad"
    saved = tuple(name for name in inputs if name not in plain)
    lines = [
        "class Function(torch.autograd.Function):",
        '    """The forward pass with the derived gradients as its backward (not autograd)."""',
        "",
        "    @staticmethod",
        f"    def forward(ctx, {arguments}):",
    ]
    if saved:
        lines.append(f"        ctx.save_for_backward({', '.join(saved)}{',' if len(saved) == 1 else ''})")
    if plain:
        lines.append(f"        ctx.constants = ({', '.join(plain)},)")
    if functions:
        lines.append(f"        ctx.functions = ({', '.join(functions)},)")
    lines += [
        f"        return forward({arguments})",
        "",
        "    @staticmethod",
        f"    def backward(ctx, {upstream}):",
    ]
    if saved:
        lines.append(f"        {', '.join(saved)}{',' if len(saved) == 1 else ''} = ctx.saved_tensors")
    if plain:
        lines.append(f"        {', '.join(plain)}, = ctx.constants")
    if functions:
        lines.append(f"        {', '.join(functions)}, = ctx.functions")
    returned = []
    for name in inputs:
        if name in calls:
            lines.append(f"        {_grad_var(name)} = None")
            lines.append(f"        if ctx.needs_input_grad[{inputs.index(name)}]:")
            lines.append(f"            {_grad_var(name)} = {calls[name]}")
            returned.append(_grad_var(name))
        else:
            returned.append("None")
    returned += ["None"] * len(functions)
    lines.append(f"        return {', '.join(returned)}")
    lines += ["", "", "apply = Function.apply"]
    return "\n".join(_wrap_line(line) for line in lines)


def _jax_apply(inputs, functions, grads, calls, opaque) -> str:
    arguments = ", ".join(inputs + functions)
    n = len(inputs)
    decorator = "@jax.custom_vjp"
    if functions:
        numbers = ", ".join(str(n + k) for k in range(len(functions)))
        decorator = f"@functools.partial(jax.custom_vjp, nondiff_argnums=({numbers},))"
    upstream = "upstream" if opaque and len(grads) > 1 else (grads[0] if opaque else "grad")
    lines = [
        decorator,
        f"def apply({arguments}):",
        '    """The forward pass with the derived gradients as its reverse-mode rule."""',
        f"    return forward({arguments})",
        "",
        "",
        f"def _apply_forward({arguments}):",
        f"    return forward({arguments}), ({', '.join(inputs)},)",
        "",
        "",
        f"def _apply_backward({''.join(f + ', ' for f in functions)}saved, {upstream}):",
        f"    {', '.join(inputs)}, = saved",
    ]
    if upstream == "upstream":  # a loss of several tensors: one upstream gradient each
        lines.append(f"    {', '.join(grads)} = upstream")
    returned = []
    for name in inputs:
        if name in calls:
            returned.append(calls[name])
        else:
            returned.append(f"jnp.zeros_like({name})")
    lines.append(f"    return ({', '.join(returned)},)")
    lines += ["", "", "apply.defvjp(_apply_forward, _apply_backward)"]
    text = "\n".join(_wrap_line(line) for line in lines)
    return text


def _grad_var(name: str) -> str:
    return f"grad_{name}"


# --- printing ------------------------------------------------------------------------------

def _print_function(fn: _Function) -> str:
    given = dict(fn.defaults)
    args = [f"{a}={given[a]}" if a in given else a for a in fn.args]
    lines = [_wrap_line(f"def {fn.name}({', '.join(args)}):")]
    lines.append(_docstring(fn.doc, "    "))
    for statement in fn.body:
        printed = _format(statement, "    ")
        # the line breaking must never change the code: the printed lines parse back to it
        again = ast.parse(textwrap.dedent("\n".join(printed))).body
        if [ast.dump(s) for s in again] != [ast.dump(statement)]:
            raise AssertionError(f"line breaking changed {ast.unparse(statement)!r}")
        lines += printed
    return "\n".join(lines)


def _docstring(doc: str, indent: str) -> str:
    out = []
    for line in doc.split("\n"):
        lead = line[:len(line) - len(line.lstrip())]
        if not line.strip():
            out.append("")
            continue
        out += textwrap.wrap(line.strip(), WIDTH - len(indent) - len(lead) - 3,
                             initial_indent=lead, subsequent_indent=lead + "    ",
                             break_long_words=True, break_on_hyphens=False)
    out = [_escape_docstring(line) for line in out]
    out[0] = '"""' + out[0]
    body = "\n".join(indent + line if line else "" for line in out)
    if len(out) == 1:
        return body + '"""'
    return body + "\n" + indent + '"""'


def _wrap_line(line: str) -> str:
    if len(line) <= WIDTH:
        return line
    tree = ast.parse(line.strip() + ("\n    pass" if line.rstrip().endswith(":") else ""))
    if line.rstrip().endswith(":"):
        return line  # a def or class line: left as it is (short in practice)
    indent = line[:len(line) - len(line.lstrip())]
    return "\n".join(_format(tree.body[0], indent))


def _format(statement: ast.stmt, indent: str) -> list[str]:
    """``statement`` in lines of at most ``WIDTH`` characters where it can be broken."""
    if isinstance(statement, ast.Assign):
        head = f"{ast.unparse(statement.targets[0])} = "
        value = statement.value
    elif isinstance(statement, ast.Return):
        head, value = "return ", statement.value
    elif isinstance(statement, ast.Expr):
        head, value = "", statement.value
    else:
        return [indent + ast.unparse(statement)]
    return _expression(value, indent, head, "")


def _expression(node: ast.expr, indent: str, head: str, tail: str,
                split: bool = False) -> list[str]:
    """Lines for ``head + node + tail``: one if it fits (and not ``split``), else broken at
    ``node``'s outermost call, tuple or operator (an operator's lines are bracketed)."""
    text = ast.unparse(node)
    if not split and len(indent) + len(head) + len(text) + len(tail) <= WIDTH:
        return [indent + head + text + tail]
    inner = indent + "    "
    if isinstance(node, ast.Tuple) and node.elts:
        lines = [indent + head + "("]
        for part in node.elts:
            lines += _expression(part, inner, "", ",")
        lines.append(indent + ")" + tail)
        return lines
    if isinstance(node, ast.Subscript) and not isinstance(node.value, ast.Tuple):
        index = ast.unparse(node.slice)
        if isinstance(node.slice, ast.Tuple):
            index = index[1:-1] if index.startswith("(") else index
            if len(inner) + len(index) + 1 > WIDTH or len(ast.unparse(node.value)) < len(index):
                # a read at long positions (x[:, :, np.clip(...)]): one position a line
                lines = _expression(node.value, indent, head, "[")
                for part in node.slice.elts:
                    lines += _expression(part, inner, "", ",")
                lines.append(indent + "]" + tail)
                return lines
        return _bracketed(node.value, indent, head, f"[{index}]{tail}")
    if isinstance(node, ast.Compare) and len(node.ops) == 1:  # a < b: b on its own line
        op = _COMPARE_OPERATORS[type(node.ops[0])]
        lines = _expression(node.left, indent, head, "")
        return lines + _expression(node.comparators[0], inner, f"{op} ", tail)
    if isinstance(node, ast.Attribute):  # (...).T
        return _bracketed(node.value, indent, head, f".{node.attr}{tail}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        if isinstance(node.operand, ast.BinOp):
            return _expression(node.operand, indent, head + "-", tail, split=True)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and len(ast.unparse(node.func.value)) > 40:
        call = ast.Call(ast.Name("_", ast.Load()), node.args, node.keywords)
        rest = "." + node.func.attr + ast.unparse(call)[1:]
        return _bracketed(node.func.value, indent, head, rest + tail)
    if isinstance(node, ast.Call) and (node.args or node.keywords):
        parts: list[ast.expr | ast.keyword] = [*node.args, *node.keywords]
        lines = [indent + head + ast.unparse(node.func) + "("]
        for k, part in enumerate(parts):
            end = "," if k < len(parts) - 1 else ""
            if isinstance(part, ast.keyword):
                lines += _expression(part.value, inner, f"{part.arg}=", end)
            else:
                lines += _expression(part, inner, "", end)
        lines.append(indent + ")" + tail)
        return lines
    if isinstance(node, ast.BinOp):
        operands, operators = _chain(node)
        lines = [indent + head + "("]
        for k, operand in enumerate(operands):
            prefix = "" if k == 0 else _OPERATORS[type(operators[k - 1])] + " "
            if _needs_no_brackets(operand, node):
                lines += _expression(operand, inner, prefix, "")
            elif len(inner) + len(prefix) + len(ast.unparse(operand)) + 2 <= WIDTH:
                lines.append(f"{inner}{prefix}({ast.unparse(operand)})")
            elif not isinstance(operand, ast.BinOp):  # a long comparison: in brackets
                lines += _expression(operand, inner, prefix + "(", ")")
            else:  # a long operation of lower precedence: it brackets itself
                lines += _expression(operand, inner, prefix, "", split=True)
        lines.append(indent + ")" + tail)
        return lines
    return [indent + head + text + tail]


def _bracketed(node: ast.expr, indent: str, head: str, tail: str) -> list[str]:
    """``node`` followed by a subscript or method call: in brackets unless it is an atom."""
    if isinstance(node, (ast.Name, ast.Call, ast.Attribute, ast.Subscript)):
        return _expression(node, indent, head, tail)
    text = ast.unparse(node)
    if len(indent) + len(head) + len(text) + len(tail) + 2 <= WIDTH or \
            not isinstance(node, ast.BinOp):
        return _expression(node, indent, head + "(", ")" + tail)
    return _expression(node, indent, head, tail, split=True)  # brackets itself when split


_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.MatMult: "@",
              ast.Pow: "**", ast.BitAnd: "&"}
_COMPARE_OPERATORS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
                      ast.NotEq: "!="}
#: Python's precedence (``&`` of two masks binds more loosely than arithmetic).
_PRECEDENCE = {ast.BitAnd: 0, ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.MatMult: 2,
               ast.Pow: 3}


def _chain(node: ast.BinOp) -> tuple[list[ast.expr], list[ast.operator]]:
    """A left-associated chain of operators of one precedence: its operands and operators."""
    level = _PRECEDENCE[type(node.op)]
    if (isinstance(node.left, ast.BinOp) and _PRECEDENCE[type(node.left.op)] == level
            and level != 3):
        operands, operators = _chain(node.left)
    else:
        operands, operators = [node.left], []
    return operands + [node.right], operators + [node.op]


def _needs_no_brackets(operand: ast.expr, parent: ast.BinOp) -> bool:
    if isinstance(operand, (ast.Compare, ast.BoolOp, ast.NamedExpr, ast.IfExp, ast.Lambda)):
        return False  # binds more loosely than any arithmetic: x * (i < T)
    if not isinstance(operand, ast.BinOp):
        return True
    return _PRECEDENCE[type(operand.op)] > _PRECEDENCE[type(parent.op)]
