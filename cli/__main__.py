"""`python -m cli ...`: the `spool` command (how `spool dev` and the tests start its processes)."""

import sys

from cli.main import main

sys.exit(main())
