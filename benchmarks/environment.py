"""The process settings every measurement shares; import before NumPy or PyTorch.

* **One BLAS/OpenMP thread** unless the caller chose otherwise.  On this shared two-core
  machine two BLAS threads made the same 512x1024x1024 product take anywhere from 12 to
  30 ms from one run to the next, as other processes came and went; one thread varies by
  about 1%.  The generated-code section asks for a ratio between two implementations of one
  gradient, not for the machine's peak, so stable beats fast.  Export
  ``OPENBLAS_NUM_THREADS`` (and ``OMP_NUM_THREADS`` for PyTorch) to measure otherwise.
* **Freed memory stays in the heap** (glibc ``mallopt``: no ``mmap`` for blocks under
  256 MiB, no trimming).  By default glibc hands every large block back to the system when
  it is freed, so each call pays first-touch page faults for every array it allocates; in
  torch, which does not ask for huge pages as NumPy does, that was 17 ms of a 3.6 ms
  softmax gradient (512 x 1024) on this machine, and the time depended on what the process
  had allocated before.  A training loop reuses its memory (PyTorch's CPU performance guide
  recommends a caching allocator, jemalloc or tcmalloc, for that reason), and both columns
  of a ratio get the same allocator.  ``ALLOCATOR`` says what was set, for the machine table.
"""
import ctypes
import ctypes.util
import os

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 256 * 2**20
_NO_TRIM = 2**31 - 1


def _keep_freed_memory() -> str:
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return "system default (no glibc mallopt)"
    ok = (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) == 1
          and mallopt(_M_TRIM_THRESHOLD, _NO_TRIM) == 1)
    return ("glibc, freed memory kept (mmap threshold 256 MiB, no trim)" if ok
            else "system default (mallopt refused)")


ALLOCATOR = _keep_freed_memory()
