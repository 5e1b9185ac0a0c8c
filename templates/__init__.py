"""Jinja2 templates of the renderers, installed as the package ``indexcalc.templates``.

The folder sits at the top of the repository (``templates/``) and is mapped into the package
by ``pyproject.toml``; ``indexcalc.render`` reads the ``*.j2`` files through
``importlib.resources``.  This file only makes the folder a regular package, which both a
normal and an editable install can import.
"""
