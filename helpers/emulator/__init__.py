"""A local Azure OpenAI fine-tuning service that the official ``openai`` SDK talks to, unchanged,
and that really fine-tunes a small local model (DESIGN.md, "The local Azure OpenAI emulator").

- :func:`create_app` builds the FastAPI app (``helpers.emulator.app``);
- :class:`helpers.emulator.client.InProcessEmulator` serves it in-process (no socket) and hands
  out ``openai.AzureOpenAI`` / ``openai.OpenAI`` clients;
- ``python -m helpers emulator serve`` runs it as a real server (``helpers.emulator.cli``).

Modules: ``routers`` (one per resource: files, jobs, models, chat, deployments), ``jobs`` (a
job request checked as Azure checks it), ``catalog`` (models, retirement dates, names),
``protocol`` (api-versions, content filters, delays), ``store`` (SQLite records + file bytes
under a state dir), ``worker`` (the validator and FIFO trainer threads), ``training`` (the
``tiny`` and ``smollm2`` backends), ``trainer`` (supervised or DPO, pause/resume),
``generation`` (chat replies), ``preference_data`` (DPO files), ``errors`` (Azure's error
shapes). How each behaviour follows Azure, with sources: ``helpers/emulator/README.md``.
Importing this package is cheap: FastAPI and torch load on use.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]

# A library logs, the application decides where to: without this, a failed job's traceback would
# reach stderr through Python's last-resort handler, in the middle of a learner's notebook cell
# (and nbgrader zeroes a test cell that writes to stderr). `python -m helpers emulator serve`
# configures logging to show these records.
logging.getLogger("helpers.emulator").addHandler(logging.NullHandler())


def create_app(
    state_dir: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    backend: str | None = None,
    **options,
) -> FastAPI:
    """The emulator's FastAPI app; see :func:`helpers.emulator.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(state_dir=state_dir, api_key=api_key, backend=backend, **options)
