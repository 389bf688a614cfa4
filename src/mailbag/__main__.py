"""`python -m mailbag` runs the command line."""

from mailbag.cli.main import entry

raise SystemExit(entry())
