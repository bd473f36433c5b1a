"""Reference answers of the graded tasks, for the checks only (instructor-only code: not in the
student kit, not importable in the grading sandbox). Each module holds the answers of one topic:
:mod:`autograder.reference.tokens` (assignment 02's token counting and estimate),
:mod:`autograder.reference.metrics` (assignment 01's metrics)."""
