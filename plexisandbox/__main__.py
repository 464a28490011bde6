"""Host side: `python -m plexisandbox` is the `plexisandbox` command."""

import sys

from ._cli import main

sys.exit(main())
