"""The course's command line: ``python -m helpers COMMAND ...``.

Commands live in the module that owns them; each such module has ``add_arguments(parser)``
and ``run(args) -> int`` and imports its heavy dependencies only inside ``run``.

- ``check-data FILE [FILE ...] [--model gpt-4o] [--json]``: validate chat fine-tuning JSONL
  files and show their token statistics (``helpers.check_data``);
- ``emulator serve [--host] [--port] [--state-dir] [--api-key]``: the local Azure OpenAI
  fine-tuning service (``helpers.emulator.cli``);
- ``assets``: resolve every offline asset once and print where it is (``helpers.assets``);
- ``azure-smoke [--timeout S] [--json]``: run assignment 02's Azure calls against the
  configured resource with the smallest valid data and report each step
  (``helpers.azure_smoke``);
- ``selfcheck [PATH ...]``: resolve the assets and run each notebook up to its first answer
  cell in fast mode (``helpers.selfcheck``; the student kit's ``make check``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "check-data": ("helpers.check_data", "validate chat fine-tuning JSONL files"),
    "emulator": ("helpers.emulator.cli", "the local Azure OpenAI fine-tuning service"),
    "assets": ("helpers.assets", "resolve the offline assets and print where they are"),
    "azure-smoke": ("helpers.azure_smoke", "run 02's Azure calls and report each step"),
    "selfcheck": ("helpers.selfcheck", "is the set-up right? (fast mode, about a minute)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the module of the command asked for is imported (the emulator pulls in torch).
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
