"""``python -m dualwrite``: the command line."""

from dualwrite.cli import main

raise SystemExit(main())
