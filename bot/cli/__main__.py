"""``python -m bot.cli``: the ``engagebot`` command."""

import sys

from bot.cli import main

sys.exit(main())
