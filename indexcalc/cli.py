"""The command line: ``indexcalc derive FILE [--format F] [-o OUT] [--pdf] [--debug]``.

FILE may be ``-`` (standard input) and OUT ``-`` (standard output).  FILE must be a regular
file (a FIFO or device is refused before it is opened), and OUT never the input file.

Exit status (CONTRACT section 1):

* 0  success;
* 1  a result failed its numeric check, or could not be checked (the output is still
  printed, and says "check FAILED" or "not checked" for that result; standard error names
  it and says why);
* 2  bad input or usage: the parser's ``file:line:col: error:`` message, never a traceback;
* 3  an internal error: one short message naming the version and asking for a report, the
  traceback only with ``--debug``; a derivation stopped by the engine's step limit says
  "the derivation did not finish" instead of "internal error", and a run past its time or
  memory budget (``--time-limit``, ``--memory-limit``; see ``limits``) names the stage and
  the goal it was in.

Files are written only after everything else succeeded, each atomically (a temporary file
in the same folder, then ``os.replace``), so an error never leaves a half-written file; an
existing device or FIFO is written to directly, never replaced.
"""
from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from . import __version__, limits
from .problem import InputError
from .emit.module import FRAMEWORKS, module_source
from .render.document import FORMATS, render

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

PDFLATEX_TIMEOUT_SECONDS = 300


class UsageError(Exception):
    """A problem with the command line or the environment that the user can fix (exit 2)."""


class PdfError(Exception):
    """pdflatex ran but made no PDF of our LaTeX: a bug on our side (exit 3)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="indexcalc",
        description="Derive tensor gradients in index notation, step by step.",
    )
    parser.add_argument("--version", action="version", version=f"indexcalc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    derive = commands.add_parser(
        "derive", help="derive the goals of a derivation file and print the derivation",
        description="Derive every goal of FILE (grad, jacobian, hessian), check each result "
                    "numerically and print the derivation.",
    )
    derive.add_argument("file", metavar="FILE",
                        help="a derivation file (*.idx), or - for standard input")
    derive.add_argument("--format", "-f", choices=FORMATS, default=None,
                        help="output format (default: from OUT's extension, .txt .md .tex "
                             ".json; else text)")
    derive.add_argument("--emit", choices=FRAMEWORKS, default=None,
                        help="print a Python module instead of the derivation: the forward "
                             "pass and one function per result for numpy, torch or jax, with "
                             "an autograd Function (torch) or custom_vjp (jax) whose backward "
                             "is the derived gradient")
    derive.add_argument("-o", "--output", metavar="OUT",
                        help="write the output to OUT instead of standard output "
                             "(- is standard output; never the input file)")
    derive.add_argument("--pdf", action="store_true",
                        help="also typeset the LaTeX form with pdflatex, to OUT with the "
                             "suffix .pdf (without -o: FILE's stem + .pdf here)")
    derive.add_argument("--time-limit", metavar="SECONDS", type=_seconds,
                        default=limits.DEFAULT_SECONDS,
                        help="stop the run (exit 3) after this many seconds, whatever stage it "
                             f"is in (default: {limits.DEFAULT_SECONDS:g})")
    derive.add_argument("--memory-limit", metavar="SIZE", type=_memory,
                        default=limits.DEFAULT_MEMORY,
                        help="stop the run (exit 3) when it needs more memory than this: "
                             "2G, 512M, or a number of megabytes (default: 2G)")
    derive.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an internal error")
    return parser


#: The format an output file's extension asks for, when --format is not given.
EXTENSION_FORMATS = {".txt": "text", ".md": "markdown", ".markdown": "markdown",
                     ".tex": "latex", ".json": "json"}


def _format_of(output: str | None) -> str:
    if output is None or output == "-":
        return "text"
    return EXTENSION_FORMATS.get(Path(output).suffix.lower(), "text")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the time limit must be positive: {text!r}")
    return value


def _memory(text: str) -> int:
    try:
        return limits.parse_memory(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # usage errors (2), --help and --version (0)
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    budget = limits.Budget(seconds=args.time_limit, memory=args.memory_limit)
    try:
        fmt = args.format or _format_of(args.output)
        if args.emit is not None and args.format is not None:
            raise UsageError("--emit prints a Python module: it takes no --format")
        if args.emit is not None and args.pdf:
            raise UsageError("--emit prints a Python module: it takes no --pdf")
        return derive(args.file, fmt=fmt, output=args.output, pdf=args.pdf,
                      budget=budget, emit=args.emit)
    except limits.BudgetExceeded as error:
        budget.report(error.message())
        return EXIT_INTERNAL
    except MemoryError:  # past RLIMIT_AS where no stage was open (leaving the budget)
        budget.report(budget.exceeded("memory").message())
        return EXIT_INTERNAL
    except InputError as error:
        _error(error.render())
        return EXIT_BAD_INPUT
    except UsageError as error:
        _error(f"indexcalc: error: {error}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _error("indexcalc: interrupted")
        return 130
    except Exception as error:  # noqa: BLE001 -- every other failure is ours to report
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(error).split()) or "(no message)"
        if _is_derivation_error(error):  # a step or time limit ended a runaway rewrite
            what = f"the derivation did not finish: {message}"
        else:
            what = f"internal error: {type(error).__name__}: {message}"
        _error(f"indexcalc {__version__}: {what}\n"
               "please report this with the input file"
               + ("" if args.debug else " (run with --debug for the traceback)"))
        return EXIT_INTERNAL


def _is_derivation_error(error: Exception) -> bool:
    """Did the engine stop a derivation at its step or time limit?"""
    try:
        from .calculus.engine import DerivationError
    except Exception:  # noqa: BLE001 -- a broken engine is reported as an internal error
        return False
    return isinstance(error, DerivationError)


def derive(file: str, *, fmt: str, output: str | None, pdf: bool,
           budget: limits.Budget | None = None, emit: str | None = None) -> int:
    """``indexcalc derive``: parse, derive, render, then write; returns the exit status.
    Everything before writing runs within ``budget``."""
    # Imported here so that a broken stage is reported as an internal error, not a crash.
    from .syntax.idx import parse_file
    from .pipeline import run

    if output == "-":
        output = None
    if output is not None:
        _refuse_overwriting_input(file, Path(output))
    pdf_path = _pdf_path(file, output) if pdf else None
    if pdf_path is not None:
        _refuse_overwriting_input(file, pdf_path)
    pdflatex = shutil.which("pdflatex") if pdf else None
    if pdf and pdflatex is None:
        raise UsageError("--pdf needs pdflatex, which is not installed (on Debian: apt-get "
                         "install texlive-latex-base texlive-latex-recommended)")

    with (budget or limits.Budget()).enforce() as budget, warnings.catch_warnings():
        # NumPy's overflow and invalid-value warnings from the numeric check: a check that
        # meets non-finite numbers says so in its result, so they are only noise here.
        warnings.simplefilter("ignore", RuntimeWarning)
        with budget.stage("reading the file"):
            problem = parse_file(file)
        derivation = run(problem)
        with budget.stage("rendering"):
            text = render(derivation, fmt) if emit is None else module_source(derivation, emit)
        with budget.stage("typesetting"):
            pdf_bytes = _typeset(pdflatex, render(derivation, "latex"),
                                 timeout=budget.remaining()) if pdf_path else None

    # Everything is computed: only now touch the file system or standard output.
    if pdf_bytes is not None:
        write_atomically(pdf_path, pdf_bytes)
    if output is None:
        _write_stdout(text)
    else:
        write_atomically(Path(output), text.encode("utf-8"))
    if pdf_path is not None:
        _error(f"indexcalc: wrote {pdf_path}")

    failed = [r for r in derivation.results if not r.check.passed]
    for result in failed:
        what = f"{result.kind} of {result.of} with respect to {result.wrt}"
        if not result.check.checked:
            _error(f"indexcalc: not checked: {what}: {result.check.detail}")
            continue
        _error(f"indexcalc: check FAILED: {what} does not match the numeric derivatives "
               f"(max relative error {result.check.max_rel_error:.3g}"
               + (f"; {result.check.detail})" if result.check.detail else ")"))
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def _refuse_overwriting_input(file: str, target: Path) -> None:
    """The output must never replace the derivation file it came from."""
    if file == "-":
        return
    try:
        same = target.exists() and os.path.samefile(file, target)
    except OSError:
        same = False
    if same:
        raise UsageError(f"the output {target} is the input file; choose another -o")


def _pdf_path(file: str, output: str | None) -> Path:
    if output is None:
        stem = "stdin" if file == "-" else Path(file).stem
        return Path.cwd() / (stem + ".pdf")
    path = Path(output).with_suffix(".pdf")
    if path == Path(output):
        raise UsageError(f"with --pdf, -o names the derivation output and the PDF goes "
                         f"beside it: use -o {path.with_suffix('.tex')} to get {path}")
    return path


def _typeset(pdflatex: str, latex: str, timeout: float = PDFLATEX_TIMEOUT_SECONDS) -> bytes:
    """The PDF of the document ``latex``, typeset in a temporary folder."""
    env = dict(os.environ)
    env.setdefault("SOURCE_DATE_EPOCH", "0")  # no build date in the PDF: same input, same bytes
    with tempfile.TemporaryDirectory(prefix="indexcalc-") as folder:
        Path(folder, "derivation.tex").write_text(latex, encoding="utf-8")
        command = [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                   "derivation.tex"]
        try:
            done = subprocess.run(command, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True,
                                  timeout=max(min(timeout, PDFLATEX_TIMEOUT_SECONDS), 1.0))
        except subprocess.TimeoutExpired:
            budget = limits.current()
            if budget is not None and budget.remaining() <= 1.0:
                raise budget.exceeded("time") from None
            raise PdfError(f"pdflatex did not finish in {PDFLATEX_TIMEOUT_SECONDS} s") from None
        pdf = Path(folder, "derivation.pdf")
        if done.returncode != 0 or not pdf.exists():
            log = Path(folder, "derivation.log")
            lines = log.read_text(errors="replace").splitlines() if log.exists() else []
            errors = [line for line in lines if line.startswith("!")]
            raise PdfError(f"pdflatex failed (status {done.returncode}): "
                           + ("; ".join(errors[:3]) or "no log"))
        return pdf.read_bytes()


def write_atomically(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (temporary file, then ``os.replace``).

    Only a regular file (or a new one) is replaced so: a device, a FIFO or another special
    file that exists at ``path`` is written to directly, never renamed over.
    """
    path = Path(path)
    try:
        special = path.exists() and not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        special = False
    if special:
        if path.is_dir():
            raise UsageError(f"cannot write {path}: it is a directory")
        try:
            with open(path, "wb") as stream:
                stream.write(data)
        except OSError as error:
            raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
        return
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it 0600
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_stdout(text: str) -> None:
    """``text`` on standard output as UTF-8, whatever the locale; a closed pipe is no error."""
    try:
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:
            sys.stdout.write(text)
        else:
            sys.stdout.flush()
            buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``| head``); stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _error(message: str) -> None:
    print(message, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
