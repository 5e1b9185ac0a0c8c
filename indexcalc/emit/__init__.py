"""Code: the matrix and index forms of a result written as array code (NumPy first)."""
