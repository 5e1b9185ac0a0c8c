"""indexcalc: derive tensor gradients in index notation, step by step."""

__version__ = "0.1.0"
