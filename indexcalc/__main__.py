"""``python -m indexcalc``: the same command line as the ``indexcalc`` script."""
import sys

from .cli import main

sys.exit(main())
