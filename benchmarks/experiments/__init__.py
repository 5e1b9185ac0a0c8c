"""One-off experiments behind the proposed fixes in ``benchmarks/findings.md``.

Nothing in ``indexcalc/`` is edited: an experiment either replaces one function of the
package at run time (``directional_check``) or times hand-written alternative NumPy code
against what the package generates (``diagonal_write``).  Each prints before/after times and
whether the results are unchanged.  Run as ``python -m benchmarks.experiments.<name>``.
"""
