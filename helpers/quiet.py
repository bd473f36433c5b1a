"""Quiet tests: a visible test cell wraps the calls it makes in :func:`quiet`, so that a library
warning about the student's code (scikit-learn's ``UndefinedMetricWarning``, a tokenizer's length
notice, a progress bar) does not reach stderr, where nbgrader's *Validate* counts it as a failure.
The test's own ``assert`` messages still show."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

_LOGGERS = ("transformers", "datasets", "huggingface_hub", "mlflow", "helpers.emulator")


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Silence warnings, the Hugging Face libraries' logging and stderr while the block runs;
    yields the captured stderr text (a test may show or inspect it)."""
    saved = {name: logging.getLogger(name).level for name in _LOGGERS}
    captured = io.StringIO()
    try:
        for name in _LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stderr(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
