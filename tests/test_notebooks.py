"""The example notebooks (``examples/*.ipynb``) run top to bottom, and are stored clean.

Each notebook is executed with nbclient in a kernel that runs this very Python
(``sys.executable``), so it sees the indexcalc under test and the installed torch and jax.
The kernel is started from a kernelspec written to a temporary directory: the ``python3``
kernelspec that Jupyter would otherwise pick may belong to another Python (a user-wide
``ipykernel install``, a ``JUPYTER_PATH``), and a fresh virtual environment has none of its
own until ``ipykernel`` is installed.

Locally a missing package (nbclient, nbformat, ipykernel, torch, jax) skips these tests;
under CI (``CI=1``) it is an error (``conftest.need``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import need

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_there_are_example_notebooks():
    """The README promises ``examples/rmsnorm_layer.ipynb``; an empty glob would otherwise
    leave the tests below with nothing to run, silently."""
    assert EXAMPLES / "rmsnorm_layer.ipynb" in NOTEBOOKS


def run_notebook(nb, tmp_path: Path, monkeypatch, cwd: Path = EXAMPLES):
    """Execute ``nb`` (a NotebookNode) in place in a kernel of ``sys.executable``."""
    nbclient = need("nbclient")
    need("ipykernel")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    # The kernel's connection file and IPython's profile go to the temporary directory too.
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (the tests' Python)",
        "language": "python",
    }))
    km = AsyncKernelManager(
        kernel_name="python3",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec.parent)]),
    )
    client = nbclient.NotebookClient(nb, km=km, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute(cleanup_kc=True)  # cleanup_kc: shut the kernel down, though we made km
    return nb


def test_the_kernel_is_this_python(tmp_path, monkeypatch):
    nbformat = need("nbformat")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys, indexcalc\nprint(sys.executable)\nprint(indexcalc.__file__)")])
    run_notebook(nb, tmp_path, monkeypatch)
    executable, package = nb.cells[0].outputs[0]["text"].splitlines()
    assert Path(executable) == Path(sys.executable)
    import indexcalc

    assert Path(package) == Path(indexcalc.__file__)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    nbformat = need("nbformat")
    need("torch")  # the notebooks ship layers as PyTorch and JAX modules
    need("jax")
    nb = nbformat.read(path, as_version=4)
    run_notebook(nb, tmp_path, monkeypatch)  # a cell that raises raises CellExecutionError
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code)
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    """Committed notebooks carry no outputs, so diffs show only what a person wrote. (Read
    as plain JSON: this test needs none of the optional packages.)"""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") != [] or cell.get("execution_count") is not None)]
    assert not dirty, f"cells {dirty} have outputs or execution counts: clear them"
