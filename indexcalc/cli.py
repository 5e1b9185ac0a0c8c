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
from dataclasses import dataclass
from pathlib import Path

from . import __version__, limits
from .notation import DEFAULT as DEFAULT_NOTATION, NotationError
from .problem import InputError, TemplateError

# The stages are imported when a command needs them (a run imports only what it uses: the
# command line starts in about a third of a second).  Their names, for the options:
#: ``--format`` of derive (``render.document.FORMATS``) and of check (``render.report``)
FORMATS = ("latex", "markdown", "text", "json")
REPORT_FORMATS = ("text", "json", "markdown", "latex")
#: ``--emit`` (``emit.module.FRAMEWORKS``) and ``--check-with`` (``check.frameworks``)
FRAMEWORKS = ("numpy", "torch", "jax")
CHECK_FRAMEWORKS = ("torch", "jax")

#: What to install for a framework --check-with asks for.
FRAMEWORK_PACKAGES = {"torch": "torch", "jax": "'jax[cpu]'"}

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
    derive.add_argument("files", metavar="FILE", nargs="+",
                        help="a derivation file (*.idx), or - for standard input; several "
                             "FILEs give one document each (see -o)")
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
                             "(- is standard output; never the input file); an existing "
                             "directory (or a name ending in /) gets one file per FILE, "
                             "named after it: DIR/linear_layer.tex")
    derive.add_argument("--fragment", action="store_true",
                        help="with the LaTeX format: the body only (no preamble, no "
                             "\\begin{document}), to \\input in a course's own document "
                             "that loads amsmath and amssymb")
    derive.add_argument("--notation", metavar="OPTIONS", action="append", default=[],
                        type=_notation,
                        help="how the mathematics is written, over the file's notation: "
                             "statements: sums=limits, derivative=nabla, matrices=plain, "
                             "digits=subscript, layout=denominator, steps=grouped, "
                             "cases=split, opening=bracket, style=documents (comma-"
                             "separated, repeatable; see docs/worked-solutions.md)")
    derive.add_argument("--template", metavar="DIR",
                        help="a folder of jinja2 templates (derivation.tex.j2, "
                             "derivation.md.j2, derivation.txt.j2) that replace the built-in "
                             "ones or extend them: {% extends \"indexcalc/derivation.tex.j2\" "
                             "%} (with ((* *)) delimiters in LaTeX)")
    derive.add_argument("--pdf", action="store_true",
                        help="also typeset the LaTeX form with pdflatex, to OUT with the "
                             "suffix .pdf (without -o: FILE's stem + .pdf here)")
    derive.add_argument("--check-with", metavar="FRAMEWORK", action="append", default=[],
                        choices=CHECK_FRAMEWORKS,
                        help="also compare every result with the autograd of torch or jax "
                             "(repeatable); reported beside the numeric check, and a "
                             "difference fails the run like a failed check")
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
    check = commands.add_parser(
        "check", help="decide the claims of a derivation file, and check a worked solution "
                      "against it line by line",
        description="Derive FILE's goals and decide each of its claim statements (CONTRACT "
                    "section 5). With --against DOC, also read the display math of DOC "
                    "(Markdown or LaTeX), split each chain A = B = C into links and decide "
                    "each in FILE's context (section 6). Exit status 1 when a claim or a "
                    "link does not hold.")
    check.add_argument("file", metavar="FILE", help="the context: a derivation file (*.idx)")
    check.add_argument("--against", metavar="DOC",
                       help="a worked solution (.md, .tex, .txt) to check link by link; "
                            "<!-- indexcalc: OTHER.idx --> (or % indexcalc: OTHER.idx) in it "
                            "switches the context file for what follows")
    check.add_argument("--format", "-f", choices=REPORT_FORMATS, default=None,
                       help="text (default), json, or markdown / latex: DOC with the verdict "
                            "of every link after its display")
    check.add_argument("-o", "--output", metavar="OUT",
                       help="write the report to OUT (never FILE or DOC)")
    for option in ("--time-limit", "--memory-limit"):
        action = next(a for a in derive._actions if option in a.option_strings)
        check.add_argument(option, metavar=action.metavar, type=action.type,
                           default=action.default, help=action.help)
    check.add_argument("--debug", action="store_true",
                       help="show the Python traceback of an internal error")
    return parser


#: The format an output file's extension asks for, when --format is not given.
EXTENSION_FORMATS = {".txt": "text", ".md": "markdown", ".markdown": "markdown",
                     ".tex": "latex", ".json": "json"}


def available(framework: str) -> bool:
    """Is ``framework`` (torch, jax) installed? (Imports the check's module when asked.)"""
    from .check.frameworks import available as installed

    return installed(framework)


def _format_of(output: str | None) -> str:
    if output is None or output == "-" or _is_folder(output):
        return "text"
    return EXTENSION_FORMATS.get(Path(output).suffix.lower(), "text")


def _notation(text: str) -> str:
    """``--notation sums=limits,cases=split``: checked here, applied to each file."""
    try:
        DEFAULT_NOTATION.read(text)
    except NotationError as error:
        raise argparse.ArgumentTypeError(
            f"{error}{'; ' + error.hint if error.hint else ''}") from None
    return text


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
        if args.command == "check":
            return check(args.file, against=args.against, fmt=fmt, output=args.output,
                         budget=budget)
        if args.emit is not None and args.format is not None:
            raise UsageError("--emit prints a Python module: it takes no --format")
        if args.emit is not None and args.pdf:
            raise UsageError("--emit prints a Python module: it takes no --pdf")
        if args.fragment and (fmt != "latex" or args.emit is not None):
            raise UsageError("--fragment is a LaTeX body: use it with --format latex "
                             "(or -o FILE.tex)")
        if args.fragment and args.pdf:
            raise UsageError("--fragment has no preamble to typeset: it takes no --pdf")
        if args.template is not None and not Path(args.template).is_dir():
            raise UsageError(f"--template {args.template}: not a folder (it holds the "
                             "course's derivation.tex.j2, derivation.md.j2 or "
                             "derivation.txt.j2)")
        if args.template is not None and args.emit is not None:
            raise UsageError("--emit prints a Python module: it takes no --template")
        return derive(args.files, fmt=fmt, output=args.output, pdf=args.pdf,
                      budget=budget, emit=args.emit, fragment=args.fragment,
                      check_with=tuple(dict.fromkeys(args.check_with)),
                      notation=tuple(args.notation), template=args.template)
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
    except TemplateError as error:  # a course's template: its file and line
        _error(f"indexcalc: error in a template: {error}")
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


#: The file name suffix of each format, for ``-o DIR``.
SUFFIXES = {"text": ".txt", "markdown": ".md", "latex": ".tex", "json": ".json"}

#: Formats whose documents for several FILEs go to one stream together: text and Markdown
#: one after another, JSON as one array.  A LaTeX document or a Python module is one per
#: file, so several of them need ``-o DIR``.
COMBINED = ("text", "markdown", "json")


@dataclass
class _Job:
    """One FILE of the command line and where its output goes."""

    file: str
    target: Path | None  # its own output file (-o DIR, or -o FILE for one FILE), else None
    pdf_path: Path | None
    derivation: object = None
    text: str = ""
    pdf_bytes: bytes | None = None

    @property
    def label(self) -> str:
        return "standard input" if self.file == "-" else self.file


def derive(files: list[str] | str, *, fmt: str, output: str | None, pdf: bool,
           budget: limits.Budget | None = None, emit: str | None = None,
           fragment: bool = False,
           check_with: tuple[str, ...] = (), notation: tuple[str, ...] = (),
           template: str | None = None) -> int:
    """``indexcalc derive``: parse, derive and render every FILE, then write; returns the
    exit status (the worst of the files').  Everything before writing runs within
    ``budget``, which covers the whole run; nothing is written unless every FILE succeeded.
    """
    # Imported here so that a broken stage is reported as an internal error, not a crash.
    from .syntax.idx import parse_file
    from .pipeline import run

    jobs = _plan(files if isinstance(files, list) else [files], output, fmt, emit, pdf)
    pdflatex = shutil.which("pdflatex") if pdf else None
    if pdf and pdflatex is None:
        raise UsageError("--pdf needs pdflatex, which is not installed (on Debian: apt-get "
                         "install texlive-latex-base texlive-latex-recommended)")
    from .emit.module import module_source
    from .render.document import render

    for framework in check_with:
        if not available(framework):
            raise UsageError(f"--check-with {framework}: {framework} is not installed "
                             f"(pip install {FRAMEWORK_PACKAGES[framework]})")

    with (budget or limits.Budget()).enforce() as budget, warnings.catch_warnings():
        # NumPy's overflow and invalid-value warnings from the numeric check: a check that
        # meets non-finite numbers says so in its result, so they are only noise here.
        warnings.simplefilter("ignore", RuntimeWarning)
        for job in jobs:
            with budget.stage("reading the file"):
                problem = parse_file(job.file)
            for warning in problem.warnings:  # likely mistakes; the derivation goes on
                _error(warning.render())
            for options in notation:  # the command line's notation, over the file's
                problem.notation = problem.notation.read(options)
            job.derivation = derivation = run(problem, check_with=check_with)
            with budget.stage("rendering"):
                job.text = (render(derivation, fmt, fragment, template) if emit is None
                            else module_source(derivation, emit))
            if job.pdf_path is not None:
                with budget.stage("typesetting"):
                    job.pdf_bytes = _typeset(pdflatex, render(derivation, "latex",
                                                              templates=template),
                                             timeout=budget.remaining())
        combined = _combine([job for job in jobs if job.target is None], fmt)

    # Everything is computed: only now touch the file system or standard output.
    for job in jobs:
        if job.pdf_bytes is not None:
            write_atomically(job.pdf_path, job.pdf_bytes)
        if job.target is not None:
            write_atomically(job.target, job.text.encode("utf-8"))
    if combined is not None:
        if output is None or output == "-":
            _write_stdout(combined)
        else:
            write_atomically(Path(output), combined.encode("utf-8"))
    for job in jobs:
        if job.pdf_path is not None:
            _error(f"indexcalc: wrote {job.pdf_path}")

    failed = False
    for job in jobs:
        prefix = f"indexcalc: {job.label}: " if len(jobs) > 1 else "indexcalc: "
        failed |= _report_failures(job.derivation, prefix)
    return EXIT_CHECK_FAILED if failed else EXIT_OK


def check(file: str, *, against: str | None, fmt: str, output: str | None,
          budget: limits.Budget | None = None) -> int:
    """``indexcalc check FILE [--against DOC]``: returns the exit status."""
    from .check.document import DOES_NOT_HOLD, check_document, load_context
    from .pipeline import run
    from .render.report import render as render_report
    from .syntax.idx import parse_file

    if file == "-" and against == "-":
        raise UsageError("standard input (-) can be read only once: give FILE or DOC as a path")
    target = Path(output) if output not in (None, "-") else None
    if target is not None:
        for source in (file, against):
            if source is not None:
                _refuse_overwriting_input(source, target)
    with (budget or limits.Budget()).enforce() as budget, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with budget.stage("reading the file"):
            problem = parse_file(file)
        for warning in problem.warnings:
            _error(warning.render())
        derivation = None
        if problem.claims or against is None:
            derivation = run(problem)
        document = source = None
        if against is not None:
            with budget.stage("reading the document"):
                source = _read_document(against)
            with budget.stage("checking the document"):
                document = check_document(source, against, problem, load_context(against))
        claims = derivation.claims if derivation is not None else ()
        report = render_report(fmt, claims, document, source, file)
    if target is None:
        _write_stdout(report)
    else:
        write_atomically(target, report.encode("utf-8"))
    failed = derivation is not None and _report_failures(derivation, "indexcalc: ")
    wrong = document is not None and any(k.verdict == DOES_NOT_HOLD for k in document.links)
    if wrong:
        _error(f"indexcalc: {against}: a link does not hold (first at line "
               f"{document.first_wrong_line})")
    return EXIT_CHECK_FAILED if failed or wrong else EXIT_OK


def _read_document(path: str) -> str:
    """The text of a worked solution (UTF-8); a missing or unreadable one is bad input."""
    if path == "-":
        return sys.stdin.read()
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text (byte {error.start + 1})") from None


def _plan(files: list[str], output: str | None, fmt: str, emit: str | None,
          pdf: bool) -> list[_Job]:
    """Where each FILE's output (and PDF) goes; every usage error before any work."""
    if files.count("-") > 1:
        raise UsageError("standard input (-) can be read only once")
    if output == "-":
        output = None
    several = len(files) > 1
    folder = Path(output) if output is not None and _is_folder(output) else None
    if folder is not None:
        if not folder.is_dir():
            raise UsageError(f"cannot write to {output}: there is no such directory")
        suffix = ".py" if emit is not None else SUFFIXES[fmt]
        jobs = [_Job(f, folder / (_stem(f) + suffix),
                     folder / (_stem(f) + ".pdf") if pdf else None) for f in files]
        seen: dict[Path, str] = {}
        for job in jobs:
            if job.target in seen:
                raise UsageError(f"{seen[job.target]} and {job.file} would both be written "
                                 f"to {job.target}")
            seen[job.target] = job.file
    elif several:
        if emit is not None or fmt not in COMBINED:
            what = "Python module" if emit is not None else "LaTeX document"
            raise UsageError(f"several FILEs give one {what} each: write them with -o DIR")
        if pdf and output is not None:
            raise UsageError("with several FILEs and --pdf, -o must be a directory "
                             "(the PDFs go beside the documents)")
        jobs = [_Job(f, None, Path.cwd() / (_stem(f) + ".pdf") if pdf else None)
                for f in files]
    else:
        target = Path(output) if output is not None else None
        jobs = [_Job(files[0], target, _pdf_path(files[0], output) if pdf else None)]
    for job in jobs:
        for path in (job.target, job.pdf_path, Path(output) if output and not folder else None):
            if path is not None:
                _refuse_overwriting_input(job.file, path)
    return jobs


def _is_folder(output: str) -> bool:
    """Does ``-o`` name a directory (an existing one, or one written with a final /)?"""
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def _stem(file: str) -> str:
    return "stdin" if file == "-" else Path(file).stem


def _combine(jobs: list[_Job], fmt: str) -> str | None:
    """The documents of ``jobs`` as one stream, or None when there are none."""
    if not jobs:
        return None
    if len(jobs) == 1:
        return jobs[0].text
    if fmt == "json":
        import json

        from .render.document import to_json_data

        return json.dumps([to_json_data(job.derivation) for job in jobs], indent=2,
                          allow_nan=False) + "\n"
    return "\n".join(job.text for job in jobs)


def _report_failures(derivation, prefix: str) -> bool:
    """Name on standard error each result that failed or was not checked; any?"""
    failed = [r for r in derivation.results if not r.check.all_passed]
    for result in failed:
        what = f"{result.kind} of {result.of} with respect to {result.wrt}"
        for f in result.check.frameworks:
            if not f.passed:
                _error(f"{prefix}{f.status} with {f.framework}: {what}"
                       + (f": max relative error {f.max_rel_error:.3g}"
                          if f.status == "failed" else "")
                       + (f" ({f.detail})" if f.detail else ""))
        if result.check.passed:
            continue
        if not result.check.checked:
            _error(f"{prefix}not checked: {what}: {result.check.detail}")
            continue
        _error(f"{prefix}check FAILED: {what} does not match the numeric derivatives "
               f"(max relative error {result.check.max_rel_error:.3g}"
               + (f"; {result.check.detail})" if result.check.detail else ")"))
    false = [v for v in derivation.claims if not v.holds]
    for verdict in false:
        line = verdict.claim.location.line if verdict.claim.location else "?"
        _error(f"{prefix}claim does not hold (line {line}): {verdict.to_json()['text']}: "
               f"{verdict.reason}")
    return bool(failed or false)


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
