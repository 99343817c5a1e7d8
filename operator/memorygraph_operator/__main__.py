"""``memorygraph-operator``: runs the kopf operator with the project's settings.

Configuration comes from the environment (see :mod:`.settings`); the command line only chooses
the namespaces to watch and the verbosity, mirroring ``kopf run``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Mapping

import kopf
from prometheus_client import start_http_server

from memorygraph_operator.api.base import GROUP
from memorygraph_operator.kube import FIELD_MANAGER, Credentials, Kube
from memorygraph_operator.metrics import ReadinessTracker
from memorygraph_operator.peers import GrpcPeers
from memorygraph_operator.reconcile.reads import ClusterReads
from memorygraph_operator.render.context import RenderEnv
from memorygraph_operator.settings import OperatorConfig, configure_kopf

__all__ = ["build_memo", "credentials_from_kopf", "load_config", "main"]

logger = logging.getLogger("memorygraph_operator")


def credentials_from_kopf() -> Credentials:
    """Credentials the way kopf finds them: in-cluster service account, else kubeconfig."""
    settings = kopf.OperatorSettings()
    info = (
        kopf.login_via_client(logger=logger, settings=settings)
        or kopf.login_with_service_account(logger=logger, settings=settings)
        or kopf.login_with_kubeconfig(logger=logger, settings=settings)
    )
    if info is None:
        raise SystemExit("no Kubernetes credentials found (in-cluster or kubeconfig)")
    secure = info.server.startswith("https")
    return Credentials(
        server=info.server,
        headers=info.as_http_headers(),
        ssl_context=info.as_ssl_context() if secure else None,
    )


def build_memo(config: OperatorConfig, kube: Kube) -> kopf.Memo:
    """The memo every handler receives (shallow-copied per resource by kopf).

    Everything the handlers need of the configuration reaches them here, never through the
    process environment: the render environment, the namespaces to resync and the resync
    interval.
    """
    memo = kopf.Memo()
    memo.kube = kube
    memo.env = RenderEnv(
        default_image=config.default_image,
        metrics_namespaces=config.metrics_namespaces,
        operator_pods=config.operator_pods,
    )
    memo.reads = ClusterReads(kube)
    memo.locks = {}
    memo.queued = {}
    memo.slots = asyncio.Semaphore(config.concurrent_reconciles)
    memo.readiness = ReadinessTracker()
    memo.namespaces = config.namespaces
    memo.resync_seconds = config.resync_seconds
    memo.peers = GrpcPeers()
    memo.again = {}
    memo.later = set()
    memo.stuck = set()
    return memo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memorygraph-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: WATCH_NAMESPACE or all",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def load_config(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[OperatorConfig, argparse.Namespace]:
    """The settings from the environment, with the command line's namespaces taking precedence."""
    args = _parser().parse_args(argv)
    config = OperatorConfig.from_env(environ)
    if args.namespace:
        config = dataclasses.replace(config, namespaces=tuple(args.namespace))
    return config, args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    config, args = load_config(argv)
    namespaces = config.namespaces

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.FULL)
    from memorygraph_operator import handlers  # noqa: F401  (registers the handlers with kopf)

    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    start_http_server(config.metrics_port, addr=config.bind_address)
    kube = Kube(credentials_from_kopf, FIELD_MANAGER)
    logger.info("watching %s for %s", ", ".join(namespaces) or "all namespaces", GROUP)
    asyncio.run(
        kopf.operator(
            settings=settings,
            memo=build_memo(config, kube),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=True,
            liveness_endpoint=f"http://{config.bind_address}:{config.health_port}/healthz",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
