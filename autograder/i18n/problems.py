"""What goes wrong: :class:`I18nError` for a translation file or notebook that cannot be used,
:class:`Problem` for one reason a variant is not up to date."""

from __future__ import annotations

from dataclasses import dataclass


class I18nError(Exception):
    """A translation file or notebook that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Problem:
    """One reason a variant is not up to date."""

    assignment: str
    lang: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.assignment} [{self.lang}] {self.where}: {self.message}"
