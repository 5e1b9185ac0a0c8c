"""Checks: every result shown compared with finite differences of the forward definitions."""
