#!/usr/bin/env python3
"""How fast can this machine's control plane take a burst of new graphs, with no operator?

The lower bound for the operator's first-reconcile latency in a burst (see
hack/operator_scale.py): the API requests a first reconcile cannot do without, sent straight to
the API server with no operator logic in between, in the best order (first created, first
served; no other reconcile in the way). For each of N graphs, the tool

1. creates the MemoryGraph (all N as a burst, ``--concurrency`` calls at once, as
   operator_scale.py does), and, as each create returns, queues the graph;
2. with ``--workers`` graphs at once, first come first served: applies the graph's children with
   server-side apply (the objects the operator renders for a default graph, taken from the
   reviewed golden files in tests/operator/golden/render/minimal, renamed; without owner
   references, since the graph's uid is not known when they are read), then patches the
   graph's status, creates its peer-key Secret and posts two Events about it — the writes of
   one first reconcile (the operator posts 2.4 Events a new graph, over all its reconciles),
   and none of its reads;
3. reports each graph's latency from its create call's answer to its status patch's answer
   (p50/p90/p99/max), the time until all N were done, and the CPU seconds each control-plane
   process and the whole machine used meanwhile.

The StatefulSets it creates are real: the controller manager makes their pods and claims and
kwok runs them, as it does for the operator's. Run it against a kwok-only cluster with the CRDs
installed (``E2E_REAL_NODE=0 E2E_NODES=4 hack/cluster.sh up``, ``kubectl apply -f crds/``)::

    .venv/bin/python hack/apiserver_floor.py \\
        --kubeconfig ~/.cache/memorygraph/e2e/cluster/kubeconfig --graphs 1000 --out /tmp/f.json

The run's namespace is deleted at the end, and the tool waits (up to ``--cleanup-timeout``) until
it is gone, so that the next run does not measure the deletion. Progress goes to stderr; JSON
to stdout or --out.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from operator_scale import (
    DEFAULT_SPEC,
    GROUP,
    VERSION,
    Api,
    ApiError,
    control_plane_cpu,
    cpu_used,
    delete_and_wait,
    graph_manifest,
    graphs_path,
    load_admin_credentials,
    log,
    now_iso,
    percentiles,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "operator" / "golden" / "render" / "minimal"
GOLDEN_NAME, GOLDEN_NAMESPACE = "chat-memory", "apps"
FIELD_MANAGER = "memorygraph-floor"
SECRETS = "/api/v1/namespaces/{ns}/secrets"
EVENTS = "/api/v1/namespaces/{ns}/events"
# Where each kind of child lives in the API.
PATHS = {
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps/{name}",
    "Secret": "/api/v1/namespaces/{ns}/secrets/{name}",
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}",
}


def children_template() -> list[str]:
    """The golden children of a default graph as JSON texts, sorted by file name (JSON: the
    tool's own CPU, renaming and parsing 7,000 objects, must not crowd the control plane)."""
    texts = []
    for path in sorted(GOLDEN.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        if body["kind"] not in PATHS:
            raise SystemExit(f"{path}: no API path known for kind {body['kind']}")
        body["metadata"].pop("ownerReferences", None)
        texts.append(json.dumps(body))
    if not texts:
        raise SystemExit(f"no golden children in {GOLDEN}")
    return texts


def peer_secret(namespace: str, name: str) -> dict[str, Any]:
    """The peer-key Secret of a graph with a shard map, created once (as the operator does)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"{name}-peer",
            "namespace": namespace,
            "labels": {"memorygraph.io/graph": name, "app.kubernetes.io/component": "peer"},
        },
        "type": "Opaque",
        "stringData": {"key": secrets.token_urlsafe(32)},
    }


def event(namespace: str, name: str, uid: str, reason: str) -> dict[str, Any]:
    """A Normal Event about graph ``name``, shaped as the operator posts one."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MemoryGraph",
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "type": "Normal",
        "reason": reason,
        "message": f"{reason} for {name}",
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def children_of(template: list[str], namespace: str, name: str) -> list[dict[str, Any]]:
    """The template's objects renamed for graph ``name`` in ``namespace``."""
    out = []
    for text in template:
        renamed = text.replace(GOLDEN_NAME, name).replace(
            f'"namespace": "{GOLDEN_NAMESPACE}"', f'"namespace": "{namespace}"'
        )
        renamed = renamed.replace(f".{GOLDEN_NAMESPACE}.svc", f".{namespace}.svc")
        out.append(json.loads(renamed))
    return out


async def apply(api: Api, body: dict[str, Any]) -> None:
    """One server-side apply, as the operator sends it (JSON body, forced)."""
    meta = body["metadata"]
    path = PATHS[body["kind"]].format(ns=meta["namespace"], name=meta["name"])
    query = f"?fieldManager={FIELD_MANAGER}&force=true"
    await api.call("PATCH", path + query, body, content_type="application/apply-patch+yaml")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    template = children_template()
    run_id = uuid.uuid4().hex[:6]
    namespace = f"floor-{run_id}"
    workdir = Path(tempfile.mkdtemp(prefix="apiserver-floor-"))
    api = Api(load_admin_credentials(args.kubeconfig, workdir), args.concurrency + args.workers)
    result: dict[str, Any] = {
        "tool": "hack/apiserver_floor.py",
        "started": now_iso(),
        "graphs": args.graphs,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "children_per_graph": len(template),
        "machine": {"cpus": os.cpu_count(), "loadavg_start": list(os.getloadavg())},
    }
    queue: asyncio.Queue[tuple[str, str, float] | None] = asyncio.Queue()
    done: dict[str, float] = {}
    errors: list[str] = []
    try:
        await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        limit = asyncio.Semaphore(args.concurrency)

        async def create(name: str) -> None:
            async with limit:
                body = graph_manifest(namespace, name, run_id, DEFAULT_SPEC)
                try:
                    created = await api.call("POST", graphs_path(namespace), body)
                except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(str(exc)[:300])
                    return
            await queue.put((name, created["metadata"]["uid"], time.monotonic()))

        async def worker() -> None:
            while (item := await queue.get()) is not None:
                name, uid, created = item
                try:
                    for body in children_of(template, namespace, name):
                        await apply(api, body)
                    await api.call(
                        "POST", SECRETS.format(ns=namespace), peer_secret(namespace, name)
                    )
                    for reason in ("PeerKeyGenerated", "Reconciled"):
                        await api.call(
                            "POST", EVENTS.format(ns=namespace), event(namespace, name, uid, reason)
                        )
                    await api.call(  # the graph's first status
                        "PATCH",
                        graphs_path(namespace) + f"/{name}/status",
                        {"status": {"observedGeneration": 1}},
                        content_type="application/merge-patch+json",
                    )
                except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(str(exc)[:300])
                    continue
                done[name] = time.monotonic() - created

        async def progress() -> None:
            while True:
                await asyncio.sleep(5)
                log(f"{len(done)}/{args.graphs} done")

        cpu_before = control_plane_cpu()
        started = time.monotonic()
        reporter = asyncio.create_task(progress())
        workers = [asyncio.create_task(worker()) for _ in range(args.workers)]
        names = [f"g{i:05d}" for i in range(args.graphs)]
        await asyncio.gather(*(create(name) for name in names))
        created_in = time.monotonic() - started
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
        all_done = time.monotonic() - started
        reporter.cancel()
        result.update(
            {
                "created_in_s": round(created_in, 2),
                "all_done_s": round(all_done, 2),
                "latency_s": percentiles(list(done.values())),
                "errors": errors[:20],
                "error_count": len(errors),
                "cpu_seconds": cpu_used(cpu_before, control_plane_cpu()),
            }
        )
        log(f"{len(done)} graphs in {all_done:.1f}s; latency {result['latency_s']}")
    finally:
        result["machine"]["loadavg_end"] = list(os.getloadavg())
        result["namespace_left"] = bool(
            await delete_and_wait(api, [namespace], args.cleanup_timeout)
        )
        await api.close()
        for secret in ("client.crt", "client.key"):
            (workdir / secret).unlink(missing_ok=True)
        workdir.rmdir()
    result["finished"] = now_iso()
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kubeconfig", type=Path, required=True, help="the cluster's admin kubeconfig")
    p.add_argument("--graphs", type=int, default=1000, help="graphs to create (default 1000)")
    p.add_argument("--concurrency", type=int, default=8, help="create calls at once (default 8)")
    p.add_argument(
        "--workers", type=int, default=8, help="graphs whose writes go at once (default 8)"
    )
    p.add_argument(
        "--cleanup-timeout", type=float, default=300, help="max wait for deletion (default 300)"
    )
    p.add_argument("--out", type=Path, help="write the JSON result here (default stdout)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.graphs < 1 or args.concurrency < 1 or args.workers < 1:
        parser().error("--graphs, --concurrency and --workers must be at least 1")
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    else:
        print(text)
    return 1 if result.get("error_count") else 0


if __name__ == "__main__":
    sys.exit(main())
