"""The `memorygraph` command: run the data plane, and use one from the shell.

Exit codes: 0 ok; 1 the server refused the request; 2 bad usage or configuration; 3 the server
could not be reached. Results are JSON on stdout (field names as in the gRPC API); errors are one
line on stderr.

Modules: `parser` builds the command line from each command group's module (`sessions`,
`turns`, `queries`, `exports`, `event_stream`, `health`, `serve`, `plugin_check`; the `archive`
group lives in `memorygraph.archive.cli`), `options` holds the option types they share, `output`
prints results, and `entry` runs a command and turns its failure into an exit code.
"""

from memorygraph.cli.entry import main
from memorygraph.cli.parser import build_parser

__all__ = ["build_parser", "main"]
