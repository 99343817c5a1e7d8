#!/usr/bin/env python3
"""Operator scale benchmark: API requests, first-reconcile latency, resync cost and memory.

Runs the operator as a local process (like the end-to-end tests) against a running cluster,
with its kubeconfig pointed at a counting reverse proxy on 127.0.0.1 that forwards every request
to the real API server with the admin credentials. Then it creates N MemoryGraphs, either at a
steady rate or as a burst, and measures:

* the first-reconcile latency of every graph: from the moment its create call returned to the
  moment a watch on memorygraphs delivered it with a status (``observedGeneration`` or
  conditions), as p50/p90/p99/max, and the time until all N had one;
* the API requests the operator made from the first create until it went quiet, per graph, by
  verb (GET/LIST/WATCH/POST/PUT/PATCH/DELETE) and resource (plural, with ``/status`` etc.);
* the reconciles it ran (its ``memorygraph_operator_reconcile_total`` metric), per graph;
* the requests and reconciles of one periodic resync of the unchanged graphs, per graph;
* the operator's RSS (VmRSS/VmHWM) and CPU time at start, after creation, after the resync;
* the CPU time the operator, each control-plane process and the whole machine used from the
  first create until every graph had a status, and until the operator went quiet;
* the machine's load average at start and end.

Before creating, the tool waits for the operator's first (empty) periodic resync, so that the
creation phase starts a full resync period away from the next one (``--no-align`` skips this).
A resync is recognised by the operator's LIST of memorygraphs.

Example, against a kwok-only cluster (``E2E_REAL_NODE=0 hack/cluster.sh up``) with the CRDs
installed::

    .venv/bin/python hack/operator_scale.py \\
        --kubeconfig ~/.cache/memorygraph/e2e/cluster/kubeconfig \\
        --graphs 200 --rate 10 --out /tmp/scale-200.json

The operator command and extra environment are flags (``--operator-cmd``, ``--env``), so the
same tool measures another checkout, e.g.
``--env PYTHONPATH=/tmp/base/operator:/tmp/base/dataplane``.
Progress goes to stderr; the JSON result to stdout or ``--out``. Credentials are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import math
import os
import re
import resource
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from yarl import URL

GROUP = "memorygraph.io"
VERSION = "v1alpha1"
PLURAL = "memorygraphs"
RUN_LABEL = "opscale.memorygraph.io/run"
RECONCILE_METRIC = "memorygraph_operator_reconcile_total"
RECONCILE_ERRORS_METRIC = "memorygraph_operator_reconcile_errors_total"
DEFAULT_SPEC: dict[str, Any] = {"replicas": 1, "storage": {"size": "1Gi"}}
# Headers that belong to one connection, never forwarded by the proxy.
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
MIB = 1024 * 1024
_T0 = time.monotonic()


def log(message: str) -> None:
    """One progress line on stderr, prefixed with the seconds since the tool started."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# --- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminCredentials:
    """How to reach the real API server: its URL, TLS context and extra headers (a token)."""

    server: str
    ssl_context: ssl.SSLContext | None
    headers: Mapping[str, str]


def _pem(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """The PEM bytes of a kubeconfig field given inline (``<key>-data``) or as a file."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return Path(base, str(entry[key])).read_bytes()
    return None


def load_admin_credentials(kubeconfig: Path, secrets_dir: Path) -> AdminCredentials:
    """Credentials of the kubeconfig's current context (client certificate or bearer token).

    Client certificates given inline are written to ``secrets_dir`` (mode 0700) for OpenSSL.
    """
    config = yaml.safe_load(kubeconfig.read_text())
    base = kubeconfig.parent
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c for c in config["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in config["users"] if u["name"] == context["context"]["user"])
    cluster_entry, user_entry = cluster["cluster"], user.get("user") or {}
    server = str(cluster_entry["server"]).rstrip("/")
    headers = {}
    if user_entry.get("token"):
        headers["Authorization"] = f"Bearer {user_entry['token']}"
    if not server.startswith("https"):
        return AdminCredentials(server, None, headers)
    ca = _pem(cluster_entry, "certificate-authority", base)
    context_ = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if cluster_entry.get("insecure-skip-tls-verify"):
        context_.check_hostname = False
        context_.verify_mode = ssl.CERT_NONE
    cert = _pem(user_entry, "client-certificate", base)
    key = _pem(user_entry, "client-key", base)
    if cert and key:
        cert_file, key_file = secrets_dir / "client.crt", secrets_dir / "client.key"
        for path, data in ((cert_file, cert), (key_file, key)):
            path.touch(mode=0o600)
            path.write_bytes(data)
        context_.load_cert_chain(cert_file, key_file)
    return AdminCredentials(server, context_, headers)


def write_proxy_kubeconfig(path: Path, port: int) -> None:
    """A kubeconfig for the operator: the proxy's plain-HTTP address, no credentials."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "proxy", "user": {}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        "current-context": "proxy",
    }
    path.write_text(yaml.safe_dump(config))


# --- request accounting ------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One proxied request: when it started and ended, what it was, how it was answered."""

    started: float
    verb: str
    resource: str
    status: int = 0
    ended: float | None = None

    @property
    def key(self) -> str:
        """``VERB resource``, the unit requests are counted by."""
        return f"{self.verb} {self.resource}"


def classify(method: str, path: str, query: Mapping[str, str]) -> tuple[str, str]:
    """The verb (GET on a collection is LIST, or WATCH) and resource of an API request path.

    Paths outside ``/api/v1`` and ``/apis/<group>/<version>`` (discovery, ``/version``) count as
    resource ``discovery``; subresources are kept (``memorygraphs/status``).
    """
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    else:
        return method, "discovery"
    watch = query.get("watch", "").lower() in ("true", "1")
    if rest[:1] == ["watch"]:
        rest, watch = rest[1:], True
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return method, "discovery"
    named = len(rest) >= 2
    resource_ = "/".join([rest[0], *rest[2:3]])
    if method == "GET" and not named:
        return ("WATCH" if watch else "LIST"), resource_
    return method, resource_


@dataclass
class RequestLog:
    """Every request the proxy forwarded, in order of arrival."""

    records: list[RequestRecord] = field(default_factory=list)
    last_activity: float = field(default_factory=time.monotonic)

    def add(self, verb: str, resource_: str) -> RequestRecord:
        """Record the start of a request."""
        now = time.monotonic()
        record = RequestRecord(now, verb, resource_)
        self.records.append(record)
        self.last_activity = now
        return record

    def finish(self, record: RequestRecord, status: int) -> None:
        """Record a request's answer; a watch is busy until it ends, which is no activity."""
        record.status = status
        record.ended = time.monotonic()
        if record.verb != "WATCH":
            self.last_activity = record.ended

    def window(self, start: float, end: float) -> list[RequestRecord]:
        """The requests that started in ``[start, end)``."""
        return [r for r in self.records if start <= r.started < end]

    def first(self, key: str, after: float) -> RequestRecord | None:
        """The first request ``VERB resource`` that started after ``after``."""
        return next((r for r in self.records if r.key == key and r.started > after), None)


def summarize_requests(records: Sequence[RequestRecord], graphs: int) -> dict[str, Any]:
    """Totals, per-graph counts by ``VERB resource`` and the answers that were not 2xx."""
    by_key = Counter(r.key for r in records)
    failed = Counter(
        f"{r.key} {r.status or 'pending'}" for r in records if not 200 <= r.status < 300
    )
    per_graph = {k: round(v / graphs, 3) for k, v in sorted(by_key.items())} if graphs else {}
    return {
        "total": len(records),
        "per_graph_total": round(len(records) / graphs, 3) if graphs else None,
        "by_verb_resource": dict(sorted(by_key.items())),
        "per_graph_by_verb_resource": per_graph,
        "non_2xx": dict(sorted(failed.items())),
        # Periodic resyncs (and kopf relists) that fell into the window: each adds one
        # reconcile per graph to the counts above.
        "lists_of_memorygraphs": by_key.get(f"LIST {PLURAL}", 0),
    }


# --- the counting proxy ------------------------------------------------------------------------


class CountingProxy:
    """Plain HTTP on 127.0.0.1 towards the operator, TLS with admin credentials upstream.

    Responses are streamed chunk by chunk (watches included) and bodies are passed through
    unchanged (no decompression).
    """

    def __init__(self, credentials: AdminCredentials, requests: RequestLog) -> None:
        self._credentials = credentials
        self._requests = requests
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        connector = aiohttp.TCPConnector(limit=0, ssl=self._credentials.ssl_context or False)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        app = web.Application(client_max_size=16 * MIB)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None and isinstance(server, asyncio.base_events.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Close the listener and the upstream connections."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _upstream_headers(self, request: web.Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers.update(self._credentials.headers)
        return headers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        verb, resource_ = classify(request.method, request.path, request.query)
        record = self._requests.add(verb, resource_)
        body = await request.read()
        url = URL(self._credentials.server + request.raw_path, encoded=True)
        assert self._session is not None
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=self._upstream_headers(request),
                data=body or None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._requests.finish(record, 502)
            return web.Response(status=502, text=f"operator_scale proxy: {type(exc).__name__}")
        async with upstream:
            record.status = upstream.status  # answered; a watch then streams until it ends
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_HEADERS:
                    response.headers.add(name, value)
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientError, TimeoutError):
                pass  # the operator closed a watch, or the API server ended it
            finally:
                self._requests.finish(record, upstream.status)
        return response


# --- the operator process ----------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The control plane's processes, by the name in /proc/<pid>/comm (cut to 15 characters).
CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-controller", "kube-scheduler", "kwok")


def control_plane_cpu() -> dict[str, float]:
    """CPU seconds used so far by each control-plane process on this machine, keyed
    ``name:pid`` (every cluster on the machine counts), and by the whole machine
    (``machine_busy``, from /proc/stat: all but idle and iowait)."""
    out: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
            name = next((n for n in CONTROL_PLANE if comm.startswith(n)), None)
            if name is not None:
                out[f"{name}:{proc.name}"] = proc_cpu_seconds(int(proc.name))
        except (OSError, ValueError):  # the process ended while being read
            continue
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]
    out["machine_busy"] = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return out


def cpu_used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds used between two readings, summed by name (``name:pid`` → ``name``).

    A process that started in between counts from zero; one that ended in between is not
    counted (its CPU cannot be read any more), so no figure is ever negative."""
    used: dict[str, float] = dict.fromkeys(CONTROL_PLANE, 0.0)
    for key, seconds in after.items():
        name = key.partition(":")[0]
        used[name] = used.get(name, 0.0) + max(0.0, seconds - before.get(key, 0.0))
    return {name: round(seconds, 2) for name, seconds in used.items()}


def parse_env(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings as a mapping."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


class OperatorProcess:
    """The operator as a child process with its own metrics and health ports, logging to a file."""

    def __init__(self, command: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.env = {
            **os.environ,
            "MEMORYGRAPH_METRICS_PORT": str(self.metrics_port),
            "MEMORYGRAPH_HEALTH_PORT": str(self.health_port),
            "MEMORYGRAPH_BIND_ADDRESS": "127.0.0.1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def module_file(self) -> str | None:
        """Where ``memorygraph_operator`` is imported from with this command and environment."""
        if "-m" not in self.command:
            return None
        python = self.command[: self.command.index("-m")]
        code = "import memorygraph_operator as m; print(m.__file__)"
        done = subprocess.run(
            [*python, "-c", code], env=self.env, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() or None

    def start(self) -> None:
        """Start the process (its own process group), output appended to the log file."""
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc is not None and self.proc.poll() is None

    async def wait_healthy(self, session: aiohttp.ClientSession, timeout: float) -> None:
        """Wait for the liveness endpoint to answer 200."""
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"the operator exited; log: {self.log_path}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the operator was not healthy after {timeout}s; log: {self.log_path}")

    async def reconciles(self, session: aiohttp.ClientSession) -> dict[str, float]:
        """The reconcile counters by their labels, e.g. ``total{kind=..,result=..}``."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return {}
        out = {}
        for line in text.splitlines():
            for metric, short in ((RECONCILE_METRIC, "total"), (RECONCILE_ERRORS_METRIC, "errors")):
                if line.startswith(metric + "{"):
                    labels, _, value = line[len(metric) :].rpartition(" ")
                    out[short + labels] = float(value)
        return out

    def snapshot(self) -> dict[str, float]:
        """RSS, high-water mark and CPU seconds right now."""
        if not self.alive():
            return {}
        return {**proc_memory_mib(self.pid), "cpu_seconds": round(proc_cpu_seconds(self.pid), 2)}

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def log_summary(self) -> dict[str, Any]:
        """How many error/warning lines and tracebacks the log has, and a few error lines."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        lines = text.splitlines()
        errors = [ln for ln in lines if re.search(r"\bERROR\b|\bCRITICAL\b", ln)]
        warnings = [ln for ln in lines if re.search(r"\bWARNING\b", ln)]
        return {
            "path": str(self.log_path),
            "lines": len(lines),
            "error_lines": len(errors),
            "warning_lines": len(warnings),
            "tracebacks": text.count("Traceback"),
            "first_errors": [ln[:300] for ln in errors[:5]],
            "first_warnings": [ln[:300] for ln in warnings[:5]],
        }


def counter_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """``after - before`` for every counter that moved."""
    keys = sorted(set(before) | set(after))
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    return {k: v for k, v in delta.items() if v}


def graph_reconciles(delta: Mapping[str, float]) -> float:
    """Reconciles of MemoryGraphs (any result) in a counter delta."""
    return sum(v for k, v in delta.items() if k.startswith("total") and 'kind="MemoryGraph"' in k)


# --- the benchmark's own API client ------------------------------------------------------------


class ApiError(Exception):
    """The API server answered a request of the tool with an error."""


class Api:
    """The few API calls the tool itself makes, with the admin credentials, not proxied."""

    def __init__(self, credentials: AdminCredentials, connections: int) -> None:
        self._credentials = credentials
        connector = aiohttp.TCPConnector(limit=connections, ssl=credentials.ssl_context or False)
        self.session = aiohttp.ClientSession(
            connector=connector,
            headers={**credentials.headers, "Accept": "application/json"},
            read_bufsize=4 * MIB,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
        )

    def url(self, path: str) -> str:
        """The full URL of an API path."""
        return self._credentials.server + path

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        ok: Sequence[int] = (),
        content_type: str = "application/json",
    ) -> Any:
        """One request with a JSON body (sent as ``content_type``: a patch or an apply says
        which); statuses in ``ok`` besides 2xx are not errors."""
        timeout = aiohttp.ClientTimeout(total=60)
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type}
        async with self.session.request(
            method, self.url(path), data=data, headers=headers, timeout=timeout
        ) as resp:
            text = await resp.text()
            if not 200 <= resp.status < 300 and resp.status not in ok:
                raise ApiError(f"{method} {path}: {resp.status} {text[:200]}")
            return json.loads(text) if text and resp.status < 300 else {"code": resp.status}

    async def close(self) -> None:
        """Close the connections."""
        await self.session.close()


def graphs_path(namespace: str | None = None) -> str:
    """The memorygraphs collection, in one namespace or everywhere."""
    scope = f"namespaces/{namespace}/" if namespace else ""
    return f"/apis/{GROUP}/{VERSION}/{scope}{PLURAL}"


def graph_manifest(namespace: str, name: str, run: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A MemoryGraph of this run."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MemoryGraph",
        "metadata": {"name": name, "namespace": namespace, "labels": {RUN_LABEL: run}},
        "spec": dict(spec),
    }


def has_status(obj: Mapping[str, Any]) -> bool:
    """Whether a graph carries the operator's status (observedGeneration or conditions)."""
    status = obj.get("status") or {}
    return status.get("observedGeneration") is not None or bool(status.get("conditions"))


class StatusWatcher:
    """Watches this run's graphs and notes when each one first showed a status."""

    def __init__(self, api: Api, run: str) -> None:
        self._api = api
        self._selector = f"{RUN_LABEL}={run}"
        self.first_status: dict[tuple[str, str], float] = {}
        self.events = 0
        self.restarts = 0

    def _note(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if key not in self.first_status and has_status(obj):
            self.first_status[key] = time.monotonic()

    async def _list(self) -> str:
        query = f"?labelSelector={self._selector}"
        result = await self._api.call("GET", graphs_path() + query)
        for item in result.get("items") or []:
            self._note(item)
        return str(result["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str | None:
        """Follow the watch until it ends; the version to resume from, or None to relist."""
        query = (
            f"?watch=true&allowWatchBookmarks=true&timeoutSeconds=900"
            f"&labelSelector={self._selector}&resourceVersion={version}"
        )
        async with self._api.session.get(self._api.url(graphs_path() + query)) as resp:
            if resp.status != 200:
                return None
            async for line in resp.content:
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    return None
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    self.events += 1
                    self._note(obj)
        return version

    async def run(self, ready: asyncio.Event) -> None:
        """List, then watch forever, relisting when the watch cannot be resumed."""
        version: str | None = await self._list()
        ready.set()
        while True:
            try:
                if version is None:
                    version = await self._list()
                version = await self._watch(version)
            except (aiohttp.ClientError, TimeoutError, ApiError, ValueError) as exc:
                log(f"watch interrupted ({type(exc).__name__}); resuming")
                version = None
                await asyncio.sleep(1)
            self.restarts += 1


# --- phases ------------------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, Any]:
    """count, p50/p90/p99 (nearest rank), max and mean, in seconds rounded to ms."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {
        "count": len(ordered),
        "p50": round(rank(50), 3),
        "p90": round(rank(90), 3),
        "p99": round(rank(99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
    }


@dataclass
class Creation:
    """What the create calls did: when each returned, how long each took, what failed."""

    returned: dict[tuple[str, str], float] = field(default_factory=dict)
    call_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


async def create_graphs(
    api: Api,
    targets: Sequence[tuple[str, str]],
    manifest: Any,
    rate: float,
    concurrency: int,
    creation: Creation,
) -> None:
    """Create the graphs at ``rate`` per second (0: as fast as ``concurrency`` calls allow)."""
    limit = asyncio.Semaphore(concurrency)

    async def create(namespace: str, name: str) -> None:
        async with limit:
            sent = time.monotonic()
            try:
                await api.call("POST", graphs_path(namespace), manifest(namespace, name))
            except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
                creation.errors.append(str(exc)[:300])
                return
            done = time.monotonic()
            creation.returned[(namespace, name)] = done
            creation.call_seconds.append(done - sent)

    creation.started = time.monotonic()
    tasks = []
    for i, (namespace, name) in enumerate(targets):
        if rate > 0:
            await asyncio.sleep(max(0.0, creation.started + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(create(namespace, name)))
    await asyncio.gather(*tasks)
    creation.finished = time.monotonic()


async def wait_quiet(requests: RequestLog, quiet: float, timeout: float) -> tuple[float, bool]:
    """Wait until the operator made no request for ``quiet`` seconds; (last activity, settled)."""
    deadline = time.monotonic() + timeout
    while True:
        idle = time.monotonic() - requests.last_activity
        if idle >= quiet:
            return requests.last_activity, True
        if time.monotonic() >= deadline:
            return requests.last_activity, False
        await asyncio.sleep(min(quiet - idle, 1.0) + 0.05)


async def wait_for_request(
    requests: RequestLog, key: str, after: float, timeout: float
) -> RequestRecord | None:
    """Wait for a request ``VERB resource`` that starts after ``after``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = requests.first(key, after)
        if record is not None:
            return record
        await asyncio.sleep(0.2)
    return None


async def report_progress(
    requests: RequestLog, creation: Creation, watcher: StatusWatcher, total: int
) -> None:
    """Every 5 seconds: graphs created, graphs with a status, requests so far."""
    previous = 0
    while True:
        await asyncio.sleep(5)
        count = len(requests.records)
        log(
            f"created {len(creation.returned)}/{total} ({len(creation.errors)} errors), "
            f"first status {len(watcher.first_status)}, operator requests {count} "
            f"(+{(count - previous) / 5:.0f}/s)"
        )
        previous = count


async def wait_all_status(
    watcher: StatusWatcher, creation: Creation, timeout: float, operator: OperatorProcess
) -> bool:
    """Wait until every created graph had a first status; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(k in watcher.first_status for k in creation.returned):
            return True
        if not operator.alive():
            raise RuntimeError("the operator exited during the measurement")
        await asyncio.sleep(0.5)
    return False


def latency_summary(creation: Creation, watcher: StatusWatcher) -> dict[str, Any]:
    """First-reconcile latencies and the time until every graph had a status."""
    latencies = [
        watcher.first_status[k] - t
        for k, t in creation.returned.items()
        if k in watcher.first_status
    ]
    missing = [k for k in creation.returned if k not in watcher.first_status]
    last = max((watcher.first_status[k] for k in creation.returned if k not in missing), default=0)
    return {
        "first_status_latency_s": percentiles(latencies),
        "graphs_without_status": len(missing),
        "time_to_all_first_status_s": (
            round(last - creation.started, 3) if last and not missing else None
        ),
        "time_from_last_create_to_all_first_status_s": (
            round(last - creation.finished, 3) if last and not missing else None
        ),
        "create_call_s": percentiles(creation.call_seconds),
        "create_phase_s": round(creation.finished - creation.started, 3),
        "create_errors": len(creation.errors),
        "first_create_errors": creation.errors[:5],
    }


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Context:
    """Everything one run holds on to, for the phases and for cleanup."""

    args: argparse.Namespace
    run: str
    workdir: Path
    requests: RequestLog
    result: dict[str, Any]
    api: Api | None = None
    proxy: CountingProxy | None = None
    operator: OperatorProcess | None = None
    namespaces: list[str] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def target_names(ctx: Context) -> list[tuple[str, str]]:
    """(namespace, name) of every graph, spread round-robin over the namespaces."""
    spread = ctx.namespaces
    return [(spread[i % len(spread)], f"g-{i:05d}") for i in range(ctx.args.graphs)]


async def start_operator(ctx: Context) -> None:
    """Proxy, the operator's kubeconfig, the operator itself, then wait for it to be healthy."""
    args = ctx.args
    credentials = load_admin_credentials(Path(args.kubeconfig).expanduser(), ctx.workdir)
    ctx.api = Api(credentials, connections=max(args.concurrency, 4) + 4)
    ctx.proxy = CountingProxy(credentials, ctx.requests)
    port = await ctx.proxy.start()
    kubeconfig = ctx.workdir / "operator-kubeconfig"
    write_proxy_kubeconfig(kubeconfig, port)
    log(f"proxy on 127.0.0.1:{port} -> {credentials.server}")
    extra = parse_env(args.env)
    env = {
        "KUBECONFIG": str(kubeconfig),
        "MEMORYGRAPH_RESYNC_SECONDS": str(args.resync_seconds),
        **extra,
    }
    command = shlex.split(args.operator_cmd) if args.operator_cmd else default_command()
    log_path = Path(args.operator_log) if args.operator_log else ctx.workdir / "operator.log"
    ctx.operator = OperatorProcess(command, env, log_path)
    module = ctx.operator.module_file()
    ctx.result["operator"] = {
        "command": command,
        "env": {**extra, "MEMORYGRAPH_RESYNC_SECONDS": str(args.resync_seconds)},
        "module_file": module,
        "log": str(log_path),
    }
    log(f"operator: {shlex.join(command)} (memorygraph_operator from {module})")
    ctx.operator.start()
    ctx.result["operator_started_at"] = now_iso()
    await ctx.operator.wait_healthy(ctx.api.session, timeout=args.startup_timeout)
    log(f"operator healthy (pid {ctx.operator.pid})")


def default_command() -> list[str]:
    """``python -m memorygraph_operator`` with this interpreter."""
    return [sys.executable, "-m", "memorygraph_operator"]


def now_iso() -> str:
    """The wall-clock time, UTC, ISO 8601."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


async def create_namespaces(ctx: Context) -> None:
    """The run's namespaces, labelled with the run id."""
    assert ctx.api is not None
    ctx.namespaces = [f"opscale-{ctx.run}-{i}" for i in range(ctx.args.namespaces)]
    for name in ctx.namespaces:
        body = {"metadata": {"name": name, "labels": {RUN_LABEL: ctx.run}}}
        await ctx.api.call("POST", "/api/v1/namespaces", body)
    log(f"namespaces: {', '.join(ctx.namespaces)}")


async def align_with_resync(ctx: Context) -> None:
    """Wait for the operator's first periodic resync (its LIST of memorygraphs)."""
    if ctx.args.no_align:
        return
    # kopf lists memorygraphs when its watch starts; the resync's LIST comes a period later.
    after = _operator_started(ctx) + ctx.args.resync_seconds / 2
    log(f"waiting for the operator's first periodic resync (up to {ctx.args.resync_seconds}s)")
    record = await wait_for_request(
        ctx.requests, f"LIST {PLURAL}", after, ctx.args.resync_seconds + 60
    )
    if record is None:
        log("no periodic resync seen; creating anyway")
    await asyncio.sleep(1)


def _operator_started(ctx: Context) -> float:
    return ctx.requests.records[0].started if ctx.requests.records else time.monotonic()


async def measure_creation(ctx: Context, watcher: StatusWatcher) -> float:
    """Create the graphs, wait for every first status and for quiet; returns the settle time."""
    args, api, operator = ctx.args, ctx.api, ctx.operator
    assert api is not None and operator is not None
    reconciles_before = await operator.reconciles(api.session)
    creation = Creation()
    spec = json.loads(args.spec) if args.spec else DEFAULT_SPEC

    def manifest(namespace: str, name: str) -> dict[str, Any]:
        return graph_manifest(namespace, name, ctx.run, spec)

    mode = f"{args.rate}/s" if args.rate > 0 else f"burst ({args.concurrency} parallel)"
    log(f"creating {args.graphs} graphs at {mode}")
    progress = asyncio.create_task(report_progress(ctx.requests, creation, watcher, args.graphs))
    ctx.tasks.append(progress)
    cpu_before = {**control_plane_cpu(), "operator": proc_cpu_seconds(operator.pid)}
    try:
        await create_graphs(api, target_names(ctx), manifest, args.rate, args.concurrency, creation)
        log(f"created {len(creation.returned)} in {creation.finished - creation.started:.1f}s")
        all_status = await wait_all_status(watcher, creation, args.status_timeout, operator)
        log("every graph has a status" if all_status else "timed out waiting for statuses")
        cpu_status = {**control_plane_cpu(), "operator": proc_cpu_seconds(operator.pid)}
        ctx.result["creation"] = latency_summary(creation, watcher)
        settled_at, settled = await wait_quiet(ctx.requests, args.quiet, args.settle_timeout)
    finally:
        progress.cancel()
    cpu_settled = {**control_plane_cpu(), "operator": proc_cpu_seconds(operator.pid)}
    # Where the machine's CPU went: until every graph had a status, and until quiet.
    ctx.result["creation"]["cpu_seconds_until_all_status"] = cpu_used(cpu_before, cpu_status)
    ctx.result["creation"]["cpu_seconds_until_quiet"] = cpu_used(cpu_before, cpu_settled)
    window = ctx.requests.window(creation.started - 0.001, settled_at + 0.001)
    reconciles = counter_delta(reconciles_before, await operator.reconciles(api.session))
    ctx.result["creation"].update(
        {
            "settled": settled,
            "settle_s_after_first_create": round(settled_at - creation.started, 3),
            "requests": summarize_requests(window, len(creation.returned)),
            "reconciles": reconciles,
            "graph_reconciles_per_graph": _per(graph_reconciles(reconciles), creation.returned),
        }
    )
    return settled_at


def _per(value: float, graphs: Mapping[Any, Any] | int) -> float | None:
    count = graphs if isinstance(graphs, int) else len(graphs)
    return round(value / count, 3) if count else None


async def measure_resync(ctx: Context, settled_at: float, graphs: int) -> None:
    """Requests and reconciles of one full periodic resync cycle (LIST to the next LIST)."""
    api, operator, args = ctx.api, ctx.operator, ctx.args
    assert api is not None and operator is not None
    key = f"LIST {PLURAL}"
    log(f"waiting for a periodic resync (up to {args.resync_seconds + 60:.0f}s)")
    before = await operator.reconciles(api.session)
    start = await wait_for_request(ctx.requests, key, settled_at, args.resync_seconds + 60)
    if start is None:
        ctx.result["resync"] = {"error": "no periodic resync seen"}
        return
    log("resync started; waiting for it to finish")
    ended_at, _ = await wait_quiet(ctx.requests, args.quiet, args.settle_timeout)
    after = await operator.reconciles(api.session)
    ctx.result["rss_mib"]["after_resync"] = operator.snapshot()
    log("waiting for the next resync to close the period")
    timeout = args.resync_seconds + 60
    following = await wait_for_request(ctx.requests, key, start.started, timeout)
    end = following.started if following else time.monotonic()
    reconciles = counter_delta(before, after)
    ctx.result["resync"] = {
        "period_s": round(end - start.started, 3),
        "resync_busy_s": round(ended_at - start.started, 3),
        "full_period": following is not None,
        "requests": summarize_requests(ctx.requests.window(start.started, end), graphs),
        "reconciles": reconciles,
        "graph_reconciles_per_graph": _per(graph_reconciles(reconciles), graphs),
    }


async def measure(ctx: Context) -> None:
    """All phases of one run, results written into ``ctx.result`` as they become known."""
    await start_operator(ctx)
    assert ctx.api is not None and ctx.operator is not None
    ctx.result["rss_mib"] = {"start": ctx.operator.snapshot()}
    await create_namespaces(ctx)
    watcher = StatusWatcher(ctx.api, ctx.run)
    ready = asyncio.Event()
    ctx.tasks.append(asyncio.create_task(watcher.run(ready)))
    await asyncio.wait_for(ready.wait(), timeout=60)
    await align_with_resync(ctx)
    ctx.result["rss_mib"]["before_creation"] = ctx.operator.snapshot()
    settled_at = await measure_creation(ctx, watcher)
    ctx.result["rss_mib"]["after_creation"] = ctx.operator.snapshot()
    created = ctx.result["creation"]["first_status_latency_s"]["count"]
    if not ctx.args.skip_resync:
        await measure_resync(ctx, settled_at, created or ctx.args.graphs)
    ctx.result["watch"] = {"events": watcher.events, "restarts": watcher.restarts}
    # The operator's log up to here; the final summary also covers the namespaces' deletion.
    ctx.result["operator_log_measured"] = ctx.operator.log_summary()


async def delete_and_wait(api: Api, namespaces: Sequence[str], timeout: float) -> list[str]:
    """Delete ``namespaces`` and wait (up to ``timeout`` s) until they are gone; those left."""
    log(f"deleting {len(namespaces)} namespace(s)")
    for name in namespaces:
        with contextlib.suppress(ApiError, aiohttp.ClientError, TimeoutError):
            await api.call("DELETE", f"/api/v1/namespaces/{name}", ok=(404,))
    deadline = time.monotonic() + timeout
    remaining = list(namespaces)
    while remaining and time.monotonic() < deadline:
        await asyncio.sleep(2)
        gone = []
        for name in remaining:
            with contextlib.suppress(ApiError, aiohttp.ClientError, TimeoutError):
                answer = await api.call("GET", f"/api/v1/namespaces/{name}", ok=(404,))
                if answer.get("code") == 404:
                    gone.append(name)
        remaining = [n for n in remaining if n not in gone]
    log("namespaces deleted" if not remaining else f"namespaces still terminating: {remaining}")
    return remaining


async def delete_namespaces(ctx: Context) -> None:
    """Delete the run's namespaces and wait (bounded) until they are gone."""
    if ctx.api is None or not ctx.namespaces:
        return
    remaining = await delete_and_wait(ctx.api, ctx.namespaces, ctx.args.cleanup_timeout)
    ctx.result["cleanup"] = {"namespaces_left": remaining}


async def cleanup(ctx: Context) -> None:
    """Delete the graphs unless --keep, stop the operator and the proxy, close the client."""
    for task in ctx.tasks:
        task.cancel()
    await asyncio.gather(*ctx.tasks, return_exceptions=True)
    if not ctx.args.keep:
        await delete_namespaces(ctx)
    if ctx.operator is not None:
        ctx.result["operator"]["exit_code"] = await asyncio.to_thread(ctx.operator.stop)
        ctx.result["operator_log"] = ctx.operator.log_summary()
    if ctx.proxy is not None:
        await ctx.proxy.stop()
    if ctx.api is not None:
        await ctx.api.close()
    for secret in ("client.crt", "client.key"):
        (ctx.workdir / secret).unlink(missing_ok=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """One benchmark run; the result, partial (``aborted``) when something failed."""
    workdir = Path(tempfile.mkdtemp(prefix="operator-scale-"))
    result: dict[str, Any] = {
        "tool": "hack/operator_scale.py",
        "started": now_iso(),
        "graphs": args.graphs,
        "rate_per_s": args.rate,
        "concurrency": args.concurrency,
        "namespaces": args.namespaces,
        "resync_seconds": args.resync_seconds,
        "machine": {"cpus": os.cpu_count(), "loadavg_start": list(os.getloadavg())},
        "workdir": str(workdir),
    }
    ctx = Context(args, uuid.uuid4().hex[:6], workdir, RequestLog(), result)
    log(f"run {ctx.run}; work directory {workdir}")
    current = asyncio.current_task()
    if current is not None:  # SIGTERM like Ctrl-C: stop measuring, clean up, report
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    try:
        await measure(ctx)
        result["aborted"] = False
    except (Exception, asyncio.CancelledError) as exc:
        result["aborted"] = True
        result["abort_reason"] = f"{type(exc).__name__}: {exc}"[:500]
        log(f"aborted: {result['abort_reason']}")
    finally:
        await cleanup(ctx)
    result["proxied_requests_total"] = len(ctx.requests.records)
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["tool_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
    result["finished"] = now_iso()
    return result


# --- command line ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_kubeconfig = os.environ.get("KUBECONFIG", "~/.cache/memorygraph/e2e/cluster/kubeconfig")
    p.add_argument("--kubeconfig", default=default_kubeconfig, help="admin kubeconfig")
    p.add_argument("--graphs", type=int, default=200, help="graphs to create (default 200)")
    p.add_argument(
        "--rate", type=float, default=10, help="creates per second; 0: a burst (default 10)"
    )
    p.add_argument(
        "--concurrency", type=int, default=8, help="create calls in flight at most (default 8)"
    )
    p.add_argument(
        "--namespaces", type=int, default=1, help="spread graphs over this many (default 1)"
    )
    p.add_argument("--spec", help=f"graph spec as JSON (default: {json.dumps(DEFAULT_SPEC)})")
    p.add_argument(
        "--resync-seconds", type=float, default=60, help="MEMORYGRAPH_RESYNC_SECONDS (default 60)"
    )
    p.add_argument(
        "--operator-cmd",
        help="operator command line (default: this python -m memorygraph_operator)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the operator (repeatable), e.g. PYTHONPATH=...",
    )
    p.add_argument("--operator-log", help="operator log file (default: in the work directory)")
    p.add_argument("--quiet", type=float, default=10, help="seconds without requests = settled")
    p.add_argument("--status-timeout", type=float, default=600, help="max wait for statuses")
    p.add_argument("--settle-timeout", type=float, default=300, help="max wait for quiet")
    p.add_argument("--startup-timeout", type=float, default=60, help="max wait for healthz")
    p.add_argument("--cleanup-timeout", type=float, default=300, help="max wait for deletion")
    p.add_argument("--no-align", action="store_true", help="do not wait for the first resync")
    p.add_argument("--skip-resync", action="store_true", help="do not measure a resync")
    p.add_argument("--keep", action="store_true", help="leave the graphs and namespaces")
    p.add_argument("--out", help="write the JSON result here instead of stdout")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print or write its JSON result; 1 when it was aborted."""
    args = parser().parse_args(argv)
    if args.graphs < 1 or args.namespaces < 1 or args.concurrency < 1:
        raise SystemExit("--graphs, --namespaces and --concurrency must be at least 1")
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
        log(f"result written to {args.out}")
    else:
        print(text)
    return 1 if result.get("aborted") else 0


if __name__ == "__main__":
    sys.exit(main())
