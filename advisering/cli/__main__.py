"""``python -m advisering.cli``: the same command as the ``advisering`` script."""

import sys

from advisering.cli.main import main

sys.exit(main())
