"""The headless front end: `embtui COMMAND` (and `embtui` alone opens the terminal app).

main.py parses and dispatches; one module per command family (data, models, evaluate, jobs,
compare); output.py holds tables, JSON, progress lines and exit codes.
"""

from embtui.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
