"""Output: terms and results printed as text, LaTeX, Markdown and JSON."""
