"""``python -m cdp_tutorial ...`` is the same as the ``cdp-tutorial`` command."""

import sys

from cdp_tutorial.cli import main

sys.exit(main())
