"""indexcalc: derive tensor gradients in index notation, step by step.

``indexcalc.derive(text)`` or ``indexcalc.load(path)`` gives a ``Derivation``: its
``results`` (index and matrix forms, steps, the checked NumPy function, the check), its
documents (``latex()``, ``markdown()``, ``text()``, ``to_json()``) and framework modules
(``emit("torch")``).  See ``indexcalc.api``.
"""

__version__ = "0.1.0"

from .api import (
    Check, Derivation, IndexWarning, InputError, Location, Result, Step, derive, load,
)

__all__ = ["Check", "Derivation", "IndexWarning", "InputError", "Location", "Result", "Step",
           "derive", "load", "__version__"]
