"""The checks of each notebook, one module per notebook (named after it): each holds ``CHECKS``,
a ``grade_id -> check`` dict filled with :func:`autograder.checker.check`. A check takes a
:class:`autograder.checker.Probe`, asks the student's kernel what it needs, and raises
:class:`autograder.checker.CheckFailed` with a message for the student. It covers the cell's
visible tests (so their verdict, too, is decided outside the kernel) and the general case the
hidden tests are for. :mod:`autograder.checker` runs them in its own process.
"""
