"""Front ends: text in a user's language to a :class:`~indexcalc.problem.Problem`."""
