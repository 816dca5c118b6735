"""``python -m fulcrum`` is the ``fulcrum`` command."""

import sys

from .cli import main

sys.exit(main())
