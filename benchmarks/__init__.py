"""The benchmark suite of indexcalc (issue 4): ``python -m benchmarks`` from the repository root.

It measures, in one run, and writes the tables to ``docs/benchmarks.md``:

* derivation latency: every ``derivations/*.idx`` in-process, three larger models
  (attention, layer norm, batch norm) and the command line including interpreter start
  (``latency``);
* scaling: chains of dense+tanh layers and wide sums against their size ``K``, time and peak
  memory, with the fitted growth exponent (``scaling``);
* the speed of the generated NumPy code against the textbook formula, and PyTorch autograd
  when it is importable (``codespeed``, cases in ``cases``);
* SymPy's own ``diff``/``doit`` on the linear layer as a reference line (``peers``);

and prints PASS/FAIL per target of the issue.  It is a measurement, not a test: nothing
asserts.  Where a target fails the runner profiles the failing workload (``profiling``).
``findings.md`` (what the profiles found, and the fixes with their before/after numbers,
written by hand) is appended to the page.  How much is measured:
``settings``; the BLAS thread count and the allocator: ``environment``.
"""
