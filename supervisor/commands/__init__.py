"""One module per `metalloid` subcommand.

Each module defines `HELP` (one line), `DESCRIPTION` (the `--help` text),
`add_arguments(parser)` and `run(args) -> int`. Modules import nothing heavy
at import time: `metalloid --help` loads them all.
"""
