"""`python -m mailbag` runs the command line."""

from mailbag.cli.main import main

raise SystemExit(main())
