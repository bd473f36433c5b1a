"""``python -m autograder.i18n``: see :mod:`autograder.i18n.cli`."""

import sys

from .cli import main

sys.exit(main())
