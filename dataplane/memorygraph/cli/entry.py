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
from memorygraph.errors import ConfigError, InvalidArgument, RequestError, Unavailable

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"memorygraph: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Unavailable as exc:
        print(f"error: cannot reach the server at {args.server}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except InvalidArgument as exc:
        print(f"error: INVALID_ARGUMENT: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except RequestError as exc:
        print(f"error: {exc.code.name}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except OSError as exc:
        print(f"memorygraph: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
