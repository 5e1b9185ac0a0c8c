"""Acceptance: every displayed matrix form is the checked one (CONTRACT sections 1-2).

Each problem below is a small `.idx` file the project has never seen. It is written to a
temporary directory and run through the command line only:

    python -m indexcalc derive FILE --format json

and the JSON is held to the contract:

- every result passes its own numeric check (and the command exits with status 0);
- `matrix.text`, evaluated after its `matrix.where` definitions in a namespace holding `np`,
  the inputs, the upstream gradients, the dims (ints) and the declared-function callables,
  equals the `numpy.source` lambda on random inputs and has exactly the result's shape;
- for a few problems, the lambda also equals central finite differences of a forward pass
  written by hand below (an oracle independent of indexcalc's own check).

No indexcalc module is imported: the CLI's JSON is the interface under test.

Identities cite the Matrix Cookbook (Petersen & Pedersen, version of November 15, 2012) by
equation number.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

MAIN = Path(__file__).resolve().parent.parent


class Problem(NamedTuple):
    text: str
    # Shapes (as dim names) of defined tensors that are a loss argument (their upstream
    # gradient `dL_dY` is an argument) or the `of` of a jacobian.
    defined: dict = {}
    # Inputs whose rows (last axis) are rescaled to sum to 1, for `assume sum_c T[s,c] = 1`.
    rows_sum_to_one: tuple = ()


PROBLEMS = {
    # --- Matrix Cookbook identities ---------------------------------------------------------
    # (70) d(a^T X b)/dX = a b^T; (69) d(x^T a)/dx = a gives df/da = X b, df/db = X^T a.
    "cookbook_70_aXb": Problem("""
        dims I=3, J=4
        input a[I], X[I,J], b[J]
        f = a[i] X[i,j] b[j]
        grad f wrt X, a, b
    """),
    # (71) d(a^T X^T b)/dX = b a^T.
    "cookbook_71_aXTb": Problem("""
        dims I=3, J=4
        input a[I], X[J,I], b[J]
        f = a[i] X[j,i] b[j]
        grad f wrt X
    """),
    # (77) d(b^T X^T X c)/dX = X (b c^T + c b^T).
    "cookbook_77_bXTXc": Problem("""
        dims M=3, N=4
        input X[M,N], b[N], c[N]
        f = b[i] X[k,i] X[k,j] c[j]
        grad f wrt X
    """),
    # (78) d[(Bx + b)^T C (Dx + e)]/dx = B^T C (Dx + e) + D^T C^T (Bx + b); Hessian
    # B^T C D + D^T C^T B.
    "cookbook_78_affine_quadratic": Problem("""
        dims I=3, J=4, N=5
        input x[N], B[I,N], b[I], C[I,J], D[J,N], e[J]
        f = (B[i,m] x[m] + b[i]) C[i,j] (D[j,n] x[n] + e[j])
        grad f wrt x
        hessian f wrt x
    """),
    # (81) d(x^T B x)/dx = (B + B^T) x; df/dB = x x^T; Hessian B + B^T.
    "cookbook_81_xBx": Problem("""
        dims N=4
        input x[N], B[N,N]
        f = x[i] B[i,j] x[j]
        grad f wrt x, B
        hessian f wrt x
    """),
    # (83) d[(Xb + c)^T D (Xb + c)]/dX = (D + D^T)(Xb + c) b^T.
    "cookbook_83_Xb_plus_c": Problem("""
        dims M=3, N=4
        input X[M,N], b[N], c[M], D[M,M]
        f = (X[i,n] b[n] + c[i]) D[i,j] (X[j,k] b[k] + c[j])
        grad f wrt X
    """),
    # (99) d Tr(X)/dX = I.
    "cookbook_99_trace": Problem("""
        dims N=4
        input X[N,N]
        f = sum_i X[i,i]
        grad f wrt X
    """),
    # (101) d Tr(A X B)/dX = A^T B^T.
    "cookbook_101_trace_AXB": Problem("""
        dims K=3, M=4, N=5
        input A[K,M], X[M,N], B[N,K]
        f = A[k,m] X[m,n] B[n,k]
        grad f wrt X
    """),
    # (108) d Tr(X^T B X)/dX = B X + B^T X.
    "cookbook_108_trace_XTBX": Problem("""
        dims M=3, N=4
        input X[N,M], B[N,N]
        f = X[i,m] B[i,j] X[j,m]
        grad f wrt X
    """),
    # Sec. 2.5: d ||X||_F^2 / dX = 2 X.
    "frobenius_norm_squared": Problem("""
        dims M=3, N=4
        input X[M,N]
        f = sum_{i,j} (X[i,j])^2
        grad f wrt X
    """),
    # --- layers ---------------------------------------------------------------------------
    "linear_layer": Problem("""
        dims S=4, M=3, N=5
        input X[S,M], W[N,M], b[N]
        Y[s,n] = X[s,m] W[n,m] + b[n]
        L = loss(Y)
        grad L wrt W, b, X
    """, defined={"Y": ("S", "N")}),
    "mlp_sigmoid_tanh": Problem("""
        dims S=4, M=3, H=5, N=2
        input X[S,M], W1[H,M], b1[H], W2[N,H], b2[N]
        Z1[s,h] = X[s,m] W1[h,m] + b1[h]
        A1[s,h] = sigmoid(Z1[s,h])
        Y[s,n] = tanh(A1[s,h] W2[n,h] + b2[n])
        L = loss(Y)
        grad L wrt W1, b1, W2, b2, X
    """, defined={"Y": ("S", "N")}),
    "softmax_cross_entropy": Problem("""
        dims S=4, C=3
        input Z[S,C], T[S,C]
        assume sum_c T[s,c] = 1
        Y[s,c] = exp(Z[s,c]) / sum_k exp(Z[s,k])
        L = -1/S sum_{s,c} T[s,c] log(Y[s,c])
        grad L wrt Z
    """, rows_sum_to_one=("T",)),
    "softmax_regression": Problem("""
        dims S=4, M=3, C=5
        input X[S,M], W[C,M], T[S,C]
        assume sum_c T[s,c] = 1
        Z[s,c] = X[s,m] W[c,m]
        Y[s,c] = exp(Z[s,c]) / sum_k exp(Z[s,k])
        L = -1/S sum_{s,c} T[s,c] log(Y[s,c])
        grad L wrt W, X
    """, rows_sum_to_one=("T",)),
    "layer_norm_affine": Problem("""
        dims S=3, D=5
        input X[S,D], g[D], b[D], eps
        mu[s] = 1/D sum_d X[s,d]
        v[s] = 1/D sum_d (X[s,d] - mu[s])^2
        Y[s,d] = g[d] (X[s,d] - mu[s]) / sqrt(v[s] + eps) + b[d]
        L = loss(Y)
        grad L wrt X, g, b
    """, defined={"Y": ("S", "D")}),
    "batch_norm": Problem("""
        dims S=5, D=3
        input X[S,D], gamma[D], beta[D], eps
        mu[d] = 1/S sum_s X[s,d]
        v[d] = 1/S sum_s (X[s,d] - mu[d])^2
        Y[s,d] = gamma[d] (X[s,d] - mu[d]) / sqrt(v[d] + eps) + beta[d]
        L = loss(Y)
        grad L wrt X, gamma, beta
    """, defined={"Y": ("S", "D")}),
    "gated_linear_unit": Problem("""
        dims S=4, M=3, N=5
        input X[S,M], A[N,M], B[N,M]
        Y[s,n] = (X[s,m] A[n,m]) * sigmoid(X[s,k] B[n,k])
        L = loss(Y)
        grad L wrt A, B, X
    """, defined={"Y": ("S", "N")}),
    "rms_norm": Problem("""
        dims S=3, D=4
        input X[S,D], g[D], eps
        Y[s,d] = g[d] X[s,d] / sqrt(sum_e X[s,e]^2 / D + eps)
        L = loss(Y)
        grad L wrt X, g
    """, defined={"Y": ("S", "D")}),
    # Bishop PRML (4.91)/(4.97): gradient X^T (sigma - ...) and Hessian X^T diag(.) X.
    "logistic_loss": Problem("""
        dims N=5, D=3
        input X[N,D], y[N], w[D]
        f = sum_n log(1 + exp(-y[n] X[n,d] w[d]))
        grad f wrt w
        hessian f wrt w
    """),
    # Gradient 2 X^T (X w - y) + 2 lam w; Hessian 2 X^T X + 2 lam I.
    "ridge_least_squares": Problem("""
        dims S=5, D=3
        input X[S,D], y[S], w[D], lam
        f = sum_s (X[s,d] w[d] - y[s])^2 + lam sum_d w[d]^2
        grad f wrt w
        hessian f wrt w
    """),
    "sigmoid_mean_squared_error": Problem("""
        dims S=4, M=3, N=2
        input X[S,M], W[N,M], T[S,N]
        f = 1/S sum_{s,n} (sigmoid(X[s,m] W[n,m]) - T[s,n])^2
        grad f wrt W
    """),
    # --- jacobians, broadcasts and outer products -----------------------------------------
    "jacobian_tanh": Problem("""
        dims S=3, N=4
        input X[S,N]
        Y[s,n] = tanh(X[s,n])
        jacobian Y wrt X
    """, defined={"Y": ("S", "N")}),
    # dy/dz = diag(y) - y y^T.
    "jacobian_softmax_vector": Problem("""
        dims C=4
        input z[C]
        y[c] = exp(z[c]) / sum_k exp(z[k])
        jacobian y wrt z
    """, defined={"y": ("C",)}),
    # dy/dx = A diag(1 - tanh(x)^2).
    "jacobian_matvec_tanh": Problem("""
        dims I=3, J=4
        input A[I,J], x[J]
        y[i] = A[i,j] tanh(x[j])
        jacobian y wrt x
    """, defined={"y": ("I",)}),
    "outer_product_jacobian": Problem("""
        dims I=3, J=4
        input a[I], b[J]
        Y[i,j] = a[i] b[j]
        jacobian Y wrt a, b
    """, defined={"Y": ("I", "J")}),
    # dL/da = dL_dY b, dL/db = dL_dY^T a.
    "outer_product_loss": Problem("""
        dims I=3, J=4
        input a[I], b[J]
        Y[i,j] = a[i] b[j]
        L = loss(Y)
        grad L wrt a, b
    """, defined={"Y": ("I", "J")}),
    "mean_centering": Problem("""
        dims S=3, D=4
        input X[S,D]
        Y[s,d] = X[s,d] - sum_e X[s,e] / D
        L = loss(Y)
        grad L wrt X
    """, defined={"Y": ("S", "D")}),
    # --- powers ---------------------------------------------------------------------------
    # d||x||/dx = x / ||x||; Hessian (I - x x^T / ||x||^2) / ||x||.
    "euclidean_norm": Problem("""
        dims N=4
        input x[N]
        f = (sum_i x[i]^2)^(1/2)
        grad f wrt x
        hessian f wrt x
    """),
    "cube_root_of_product": Problem("""
        dims I=3, J=4
        input a[I], c[I], x[J], b[J]
        f = (c[i] a[i] * x[j] b[j])^(1/3)
        grad f wrt x, a
    """),
    # --- a declared function h ------------------------------------------------------------
    "declared_h_elementwise": Problem("""
        dims S=3, N=4
        input X[S,N]
        function h
        Y[s,n] = h(X[s,n])
        L = loss(Y)
        grad L wrt X
    """, defined={"Y": ("S", "N")}),
    "declared_h_layer": Problem("""
        dims S=4, M=3, N=5
        input X[S,M], W[N,M]
        function h
        Y[s,n] = h(X[s,m] W[n,m])
        L = loss(Y)
        grad L wrt W, X
    """, defined={"Y": ("S", "N")}),
    # Hessian diag(h''(x)).
    "declared_h_hessian": Problem("""
        dims N=4
        input x[N]
        function h
        f = sum_n h(x[n])
        grad f wrt x
        hessian f wrt x
    """),
    # --- scaled sums ----------------------------------------------------------------------
    # Variance: gradient 2/N (x - mean); Hessian 2/N (I - 1 1^T / N).
    "variance": Problem("""
        dims N=5
        input x[N]
        f = 1/N sum_n (x[n] - sum_m x[m] / N)^2
        grad f wrt x
        hessian f wrt x
    """),
}


# --- hand-written forward passes (the finite-difference oracle) -------------------------------
# An upstream gradient G of `L = loss(Y)` stands for the linear loss sum(G * Y).

def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def forward_linear_layer(v):
    Y = v["X"] @ v["W"].T + v["b"]
    return np.sum(v["dL_dY"] * Y)


def forward_softmax_regression(v):
    Y = softmax_rows(v["X"] @ v["W"].T)
    return -np.sum(v["T"] * np.log(Y)) / v["X"].shape[0]


def forward_gated_linear_unit(v):
    Y = (v["X"] @ v["A"].T) * sigmoid(v["X"] @ v["B"].T)
    return np.sum(v["dL_dY"] * Y)


def forward_rms_norm(v):
    X = v["X"]
    rms = np.sqrt(np.mean(X ** 2, axis=1, keepdims=True) + v["eps"])
    return np.sum(v["dL_dY"] * (v["g"] * X / rms))


def forward_logistic_loss(v):
    return np.sum(np.log(1 + np.exp(-v["y"] * (v["X"] @ v["w"]))))


FORWARD = {
    "linear_layer": forward_linear_layer,
    "softmax_regression": forward_softmax_regression,
    "gated_linear_unit": forward_gated_linear_unit,
    "rms_norm": forward_rms_norm,
    "logistic_loss": forward_logistic_loss,
}


# --- reading the problem table ----------------------------------------------------------------

def statements(problem: Problem, keyword: str) -> list[str]:
    """The rest of every line of the problem that starts with `keyword `."""
    lines = [line.strip() for line in problem.text.splitlines()]
    return [line[len(keyword) + 1:] for line in lines if line.startswith(keyword + " ")]


def dims(problem: Problem) -> dict[str, int]:
    return {name: int(size)
            for line in statements(problem, "dims")
            for name, size in re.findall(r"(\w+)\s*=\s*(\d+)", line)}


def inputs(problem: Problem) -> dict[str, tuple[str, ...]]:
    """Input name -> its dims (empty for a scalar)."""
    found = {}
    for line in statements(problem, "input"):
        for name, axes in re.findall(r"(\w+)(?:\[([^\]]*)\])?", line):
            found[name] = tuple(a.strip() for a in axes.split(",")) if axes else ()
    return found


def functions(problem: Problem) -> list[str]:
    return [name.strip() for line in statements(problem, "function") for name in line.split(",")]


def goals(problem: Problem) -> list[tuple[str, str, str]]:
    """(kind, of, wrt) for every result, in the order the contract promises."""
    found = []
    for line in problem.text.splitlines():
        match = re.match(r"\s*(grad|jacobian|hessian) (\w+) wrt (.*)", line)
        if match:
            kind, of, wrts = match.groups()
            found += [(kind, of, wrt.strip()) for wrt in wrts.split(",")]
    return found


def result_ids() -> list[tuple[str, int]]:
    return [(name, k) for name, problem in PROBLEMS.items() for k in range(len(goals(problem)))]


def result_label(case: tuple[str, int]) -> str:
    name, k = case
    kind, of, wrt = goals(PROBLEMS[name])[k]
    return f"{name}:{kind}-{of}-wrt-{wrt}"


# --- values -----------------------------------------------------------------------------------

def callables(function: str) -> dict:
    """A declared function h is np.sin here, so h', h'', h''' are known exactly."""
    return {
        function: np.sin,
        f"{function}_prime": np.cos,
        f"{function}_prime2": lambda x: -np.sin(x),
        f"{function}_prime3": lambda x: -np.cos(x),
    }


def shape(problem: Problem, name: str) -> tuple[int, ...]:
    """Shape of an input or a defined tensor (a name in neither is a scalar definition)."""
    axes = inputs(problem).get(name, problem.defined.get(name, ()))
    return tuple(dims(problem)[axis] for axis in axes)


def values(problem: Problem, seed: int) -> dict:
    """Every name the lambda or the displayed form may use: inputs, upstream gradients
    `dL_dY` for every defined tensor in the table, dims (ints) and function callables.
    Arrays are drawn uniform in [0.5, 1.5] so logs, roots and divisions are safe."""
    rng = np.random.default_rng(seed)
    found: dict = dict(dims(problem))
    for name in inputs(problem):
        found[name] = rng.uniform(0.5, 1.5, size=shape(problem, name))
        if name in problem.rows_sum_to_one:
            found[name] = found[name] / found[name].sum(axis=-1, keepdims=True)
        if found[name].shape == ():
            found[name] = float(found[name])
    for line in problem.text.splitlines():
        match = re.match(r"\s*(\w+)\s*=\s*loss\((\w+)\)", line)
        if match:
            loss, argument = match.groups()
            found[f"d{loss}_d{argument}"] = rng.uniform(0.5, 1.5, size=shape(problem, argument))
    for function in functions(problem):
        found.update(callables(function))
    return found


def expected_shape(problem: Problem, kind: str, of: str, wrt: str) -> tuple[int, ...]:
    if kind == "grad":
        return shape(problem, wrt)
    if kind == "jacobian":
        return shape(problem, of) + shape(problem, wrt)
    return shape(problem, wrt) * 2


def evaluate(code: str, namespace: dict):
    # `eval` is used only on code that indexcalc generated (numpy.source, matrix.where,
    # matrix.text), never on problem text.
    return eval(code, namespace)


def call_lambda(res: dict, vals: dict):
    function = evaluate(res["numpy"]["source"], {"np": np})
    return np.asarray(function(*[vals[arg] for arg in res["numpy"]["args"]]))


# --- running the CLI --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def derived(tmp_path_factory):
    """Problem name -> (exit status, JSON or None, stderr); each problem runs once."""
    cache: dict = {}

    def run(name: str):
        if name not in cache:
            path = tmp_path_factory.mktemp("problems") / f"{name}.idx"
            path.write_text(PROBLEMS[name].text, encoding="utf-8")
            proc = subprocess.run(
                [sys.executable, "-m", "indexcalc", "derive", str(path), "--format", "json"],
                capture_output=True, text=True, cwd=MAIN, timeout=300,
            )
            data = json.loads(proc.stdout) if proc.returncode in (0, 1) else None
            cache[name] = (proc.returncode, data, proc.stderr)
        return cache[name]

    return run


def the_result(derived, case: tuple[str, int]) -> dict:
    name, k = case
    status, data, stderr = derived(name)
    assert data is not None, f"exit status {status}: {stderr}"
    kind, of, wrt = goals(PROBLEMS[name])[k]
    assert len(data["results"]) == len(goals(PROBLEMS[name]))
    res = data["results"][k]
    assert (res["kind"], res["of"], res["wrt"]) == (kind, of, wrt)
    return res


# --- tests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PROBLEMS))
def test_derive_exits_zero(derived, name):
    status, _, stderr = derived(name)
    assert status == 0, f"exit status {status}: {stderr}"


@pytest.mark.parametrize("case", result_ids(), ids=result_label)
def test_check_passed(derived, case):
    res = the_result(derived, case)
    assert res["check"]["passed"] is True, res["check"]


@pytest.mark.parametrize("case", result_ids(), ids=result_label)
def test_displayed_form_equals_lambda(derived, case):
    name, _ = case
    problem = PROBLEMS[name]
    res = the_result(derived, case)
    if res["matrix"] is None:
        pytest.skip("no matrix form (matrix is null)")
    assert "where" in res["matrix"], f"matrix.where missing: {res['matrix']}"
    want = expected_shape(problem, res["kind"], res["of"], res["wrt"])
    for seed in (1, 2):
        vals = values(problem, seed)
        from_lambda = call_lambda(res, vals)
        assert from_lambda.shape == want, f"lambda shape {from_lambda.shape}, expected {want}"
        namespace = {"np": np, **vals}
        for where_name, where_text in res["matrix"]["where"]:
            namespace[where_name] = evaluate(where_text, namespace)
        displayed = np.asarray(evaluate(res["matrix"]["text"], namespace))
        assert displayed.shape == want, (
            f"matrix.text {res['matrix']['text']!r} has shape {displayed.shape}, expected {want}")
        assert np.allclose(displayed, from_lambda, rtol=1e-9, atol=1e-12), (
            f"matrix.text {res['matrix']['text']!r} differs from the lambda: "
            f"max |difference| {np.max(np.abs(displayed - from_lambda)):.3g}")


def numeric_gradient(f, vals: dict, wrt: str, step: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f(vals) in every entry of vals[wrt]."""
    x = np.array(vals[wrt], dtype=float)
    grad = np.zeros_like(x)
    for entry in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[entry] += step
        minus[entry] -= step
        grad[entry] = (f({**vals, wrt: plus}) - f({**vals, wrt: minus})) / (2 * step)
    return grad


def numeric_hessian(f, vals: dict, wrt: str, step: float = 1e-4) -> np.ndarray:
    """Central second differences of the scalar f(vals) in the vector vals[wrt]."""
    x = np.array(vals[wrt], dtype=float)
    n = x.size
    hess = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            total = 0.0
            for si, sj, sign in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
                moved = x.copy()
                moved[i] += si * step
                moved[j] += sj * step
                total += sign * f({**vals, wrt: moved})
            hess[i, j] = total / (4 * step * step)
    return hess


FD_CASES = [case for case in result_ids() if case[0] in FORWARD]


@pytest.mark.parametrize("case", FD_CASES, ids=result_label)
def test_lambda_matches_own_finite_differences(derived, case):
    name, _ = case
    problem = PROBLEMS[name]
    res = the_result(derived, case)
    vals = values(problem, seed=3)
    from_lambda = call_lambda(res, vals)
    if res["kind"] == "grad":
        numeric = numeric_gradient(FORWARD[name], vals, res["wrt"])
        assert np.allclose(from_lambda, numeric, rtol=1e-6, atol=1e-8)
    else:
        assert res["kind"] == "hessian"
        numeric = numeric_hessian(FORWARD[name], vals, res["wrt"])
        assert np.allclose(from_lambda, numeric, rtol=1e-5, atol=1e-6)
