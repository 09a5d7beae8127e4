"""``python -m flashsnn train|bench ...``: the ``flashsnn`` command, for an
environment whose scripts are not on PATH or a source tree on PYTHONPATH."""

import sys

from .cli import main

sys.exit(main())
