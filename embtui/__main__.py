"""`python -m embtui` runs the same entry point as the `embtui` command."""

from embtui.cli import main

raise SystemExit(main())
