"""One BLAS/OpenMP thread unless the caller chose otherwise; import before NumPy or PyTorch.

On this shared two-core machine two BLAS threads made the same 512x1024x1024 product take
anywhere from 12 to 30 ms from one run to the next, as other processes came and went; one
thread varies by about 1%.  The generated-code section asks for a ratio between two
implementations of one gradient, not for the machine's peak, so stable beats fast.  Export
``OPENBLAS_NUM_THREADS`` (and ``OMP_NUM_THREADS`` for PyTorch) to measure otherwise.
"""
import os

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
