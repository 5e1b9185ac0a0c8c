"""One time budget and one memory budget per run, covering every stage.

A run (one ``indexcalc derive``, or one call of the pipeline) gets a :class:`Budget`: a
number of seconds and a number of bytes.  The pipeline says which stage it is in and for
which goal (:meth:`Budget.stage`), and long loops call :func:`tick`, so that exceeding the
time raises :class:`BudgetExceeded` naming the stage and the goal.

:meth:`Budget.enforce` (the command line) also makes the limits hold where no loop ticks:

* time: a ``SIGALRM`` at the deadline raises :class:`BudgetExceeded` at the next Python
  instruction; should the main thread sit in one long C call (a huge ``einsum``), a watchdog
  thread ends the process ``GRACE_SECONDS`` later with the same message and exit status 3;
* memory: the address space may grow by at most the budget (``RLIMIT_AS``), so an
  allocation past it raises :class:`MemoryError`, which the caller reports as the memory
  budget exceeded in the current stage.

:class:`BudgetExceeded` derives from ``BaseException`` (as ``KeyboardInterrupt`` does), so
no ``except Exception`` on the way up mistakes it for a failed computation.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

#: Defaults no real derivation comes near (the 32-layer chain takes about a second).
DEFAULT_SECONDS = 60.0
DEFAULT_MEMORY = 2 * 2**30
#: How long past the deadline a run stuck in one C call is given before it is ended.
GRACE_SECONDS = 3.0
EXIT_LIMIT = 3
#: What an allocation past ``RLIMIT_AS`` raises: MemoryError, or, from a C extension whose
#: allocation failed without setting one, SystemError ("error return without exception set").
_OUT_OF_MEMORY = (MemoryError, SystemError)


class BudgetExceeded(BaseException):
    """The run used up its time or memory; says in which stage and for which goal."""

    def __init__(self, resource: str, limit: str, stage: str, goal: str | None):
        self.resource, self.limit, self.stage, self.goal = resource, limit, stage, goal
        super().__init__(self.message())

    def message(self) -> str:
        where = f"in {self.stage}" + (f" of {self.goal}" if self.goal else "")
        flag = "--time-limit" if self.resource == "time" else "--memory-limit"
        return (f"the run exceeded its {self.resource} limit ({self.limit}) {where}; "
                f"a larger limit can be given with {flag}")


@dataclass
class Budget:
    """Seconds and bytes for one run, and the stage it is in."""

    seconds: float = DEFAULT_SECONDS
    memory: int = DEFAULT_MEMORY
    stage_name: str = "start"
    goal: str | None = None
    deadline: float = field(default=math.inf, init=False)
    #: Taken by whoever reports the budget exceeded first (the main thread or the watchdog):
    #: a run says so once.
    reported: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                     compare=False)

    def report(self, message: str) -> None:
        """Write ``message`` to standard error, unless this run's excess was reported."""
        if self.reported.acquire(blocking=False):
            sys.stderr.write(f"indexcalc: {message}\n")
            sys.stderr.flush()

    def start(self) -> Budget:
        self.deadline = time.monotonic() + self.seconds
        return self

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @contextlib.contextmanager
    def stage(self, name: str, goal: str | None = None) -> Iterator[None]:
        """Mark the run as being in stage ``name`` (for ``goal``) while the block runs."""
        saved = self.stage_name, self.goal
        self.stage_name, self.goal = name, goal if goal is not None else self.goal
        try:
            tick()
            yield
        except _OUT_OF_MEMORY:
            raise self.exceeded("memory") from None
        finally:
            self.stage_name, self.goal = saved

    def exceeded(self, resource: str) -> BudgetExceeded:
        limit = _seconds(self.seconds) if resource == "time" else _bytes(self.memory)
        return BudgetExceeded(resource, limit, self.stage_name, self.goal)

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise self.exceeded("time")

    @contextlib.contextmanager
    def enforce(self) -> Iterator[Budget]:
        """Make this the current budget and make its limits hold (main thread only)."""
        token = _activate(self.start())
        undo = [lambda: _deactivate(token)]
        try:
            undo.append(_alarm(self))
            undo.append(_watchdog(self))  # its thread's stack is allocated before the limit
            undo.append(_limit_address_space(self.memory))
            yield self
        except _OUT_OF_MEMORY:
            raise self.exceeded("memory") from None
        finally:
            for action in reversed(undo):
                action()

    @contextlib.contextmanager
    def active(self) -> Iterator[Budget]:
        """Make this the current budget (cooperative limits only: for library callers)."""
        token = _activate(self.start())
        try:
            yield self
        finally:
            _deactivate(token)


_current: list[Budget] = []


def _activate(budget: Budget) -> int:
    _current.append(budget)
    return len(_current)


def _deactivate(token: int) -> None:
    del _current[token - 1:]


def current() -> Budget | None:
    return _current[-1] if _current else None


def tick() -> None:
    """Raise :class:`BudgetExceeded` when the current run is past its deadline."""
    if _current:
        _current[-1].check()


@contextlib.contextmanager
def stage(name: str, goal: str | None = None) -> Iterator[None]:
    """The current budget's :meth:`Budget.stage`, or nothing when no budget is active."""
    budget = current()
    if budget is None:
        yield
        return
    with budget.stage(name, goal):
        yield


def _limit_address_space(memory: int):
    try:
        import resource
    except ImportError:  # not on this platform: the time limit still holds
        return lambda: None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _address_space() + memory
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space() -> int:
    """Bytes of address space the process holds now (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _alarm(budget: Budget):
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "setitimer") or not math.isfinite(budget.seconds):
        return lambda: None

    def on_alarm(signum, frame):
        raise budget.exceeded("time")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(budget.seconds, 1e-3))

    def undo():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return undo


def _watchdog(budget: Budget):
    if not math.isfinite(budget.seconds):
        return lambda: None
    done = threading.Event()

    def watch():
        if not done.wait(budget.seconds + GRACE_SECONDS):
            budget.report(budget.exceeded("time").message())
            os._exit(EXIT_LIMIT)

    thread = threading.Thread(target=watch, name="indexcalc-watchdog", daemon=True)
    thread.start()
    return done.set


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _bytes(value: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value} bytes"


def parse_memory(text: str) -> int:
    """``2G``, ``512M``, ``1.5GB``, ``300k`` or a plain number of megabytes, as bytes."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = 2**20
    if t and t[-1] in units:
        t, scale = t[:-1], units[t[-1]]
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"not a memory size: {text!r} (examples: 2G, 512M)") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"a memory limit must be positive: {text!r}")
    return int(value * scale)
