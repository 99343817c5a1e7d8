"""`main`: run one command, and the one place its failure becomes an exit code.

Commands marked `remote` get a connected `Client`; the others (serve, plugins check) none.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from memorygraph.archive.bundle import ArchiveError
from memorygraph.cli.parser import build_parser
from memorygraph.client import Client
from memorygraph.errors import ConfigError, RequestError, Unavailable

__all__ = ["EXIT_REFUSED", "EXIT_UNREACHABLE", "EXIT_USAGE", "main"]

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3

Handler = Callable[[argparse.Namespace, Any], int]


def _run(args: argparse.Namespace) -> int:
    handler: Handler = args.func
    if not args.remote:
        return handler(args, None)
    with Client(
        args.server,
        api_key=args.api_key,
        timeout=args.timeout,
        root_certificates=args.ca_cert,
        client_cert=args.client_cert,
        client_key=args.client_key,
    ) as mg:
        return handler(args, mg)


# What a failed command prints and exits with: the first row whose type the error is.
# (InvalidArgument is a RequestError: "error: INVALID_ARGUMENT: ...", exit 1.)
_FAILURES: tuple[tuple[type[Exception], str, int], ...] = (
    (ConfigError, "memorygraph: {exc}", EXIT_USAGE),
    (ArchiveError, "error: {exc}", EXIT_REFUSED),
    (Unavailable, "error: cannot reach the server at {server}: {exc}", EXIT_UNREACHABLE),
    (RequestError, "error: {exc.code.name}: {exc}", EXIT_REFUSED),
    (OSError, "memorygraph: {exc}", EXIT_USAGE),
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        for kind, message, code in _FAILURES:
            if isinstance(exc, kind):
                print(message.format(exc=exc, server=args.server), file=sys.stderr)
                return code
        raise
