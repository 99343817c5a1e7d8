"""The only module that talks to the Kubernetes API.

A small asynchronous REST client over aiohttp: get, list, server-side apply, create, delete,
status patches, discovery and Events. Every HTTP or network failure is mapped here, once, to the
:mod:`.errors` tree; nothing outside this module sees aiohttp exceptions.
"""

from __future__ import annotations

import datetime
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from memorygraph_operator.api.base import API_VERSION
from memorygraph_operator.errors import Conflict, Invalid, KubeError, NotFound, Unavailable

__all__ = [
    "FIELD_MANAGER",
    "RESOURCES",
    "Credentials",
    "Kube",
    "ResourceType",
    "resource_for",
]

# The operator's field manager for server-side apply: the fields it owns in every child.
FIELD_MANAGER = "memorygraph-operator"
# Lists of metadata only (names and uids), not whole objects.
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


@dataclass(frozen=True)
class ResourceType:
    """Where a kind lives in the REST API."""

    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        """URL path of the collection, or of one object (and its subresource)."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [base]
        if namespace is not None:
            parts.append(f"namespaces/{quote(namespace)}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name))
        if sub is not None:
            parts.append(sub)
        return "/".join(parts)


RESOURCES: dict[tuple[str, str], ResourceType] = {
    (r.api_version, r.kind): r
    for r in (
        ResourceType("v1", "ConfigMap", "configmaps"),
        ResourceType("v1", "Service", "services"),
        ResourceType("v1", "Secret", "secrets"),
        ResourceType("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        ResourceType("v1", "Event", "events"),
        ResourceType("apps/v1", "StatefulSet", "statefulsets"),
        ResourceType("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        ResourceType("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        ResourceType("batch/v1", "CronJob", "cronjobs"),
        ResourceType("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        ResourceType("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
        ResourceType(API_VERSION, "MemoryGraph", "memorygraphs"),
        ResourceType(API_VERSION, "Plugin", "plugins"),
    )
}


def resource_for(api_version: str, kind: str) -> ResourceType:
    """The resource type of a kind the operator manages."""
    return RESOURCES[(api_version, kind)]


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to the API server."""

    server: str
    headers: Mapping[str, str]
    ssl_context: ssl.SSLContext | None = None


CredentialsProvider = Callable[[], Credentials]


def _map_error(status: int, payload: Mapping[str, Any], what: str) -> KubeError:
    message = f"{what}: {payload.get('message') or payload.get('reason') or status}"
    reason = str(payload.get("reason") or "")
    if status == 404:
        return NotFound(message, status, reason)
    if status == 409:
        return Conflict(message, status, reason)
    if status in (400, 422):
        return Invalid(message, status, reason)
    if status == 429 or status >= 500:
        return Unavailable(message, status, reason)
    return KubeError(message, status, reason)


class Kube:
    """An API client bound to one field manager.

    Credentials come from a provider so that expiring tokens (bound service-account tokens,
    exec plugins) are fetched again after a 401 instead of failing until restart.
    """

    def __init__(
        self,
        credentials: CredentialsProvider,
        field_manager: str,
        timeout: float = 30.0,
    ) -> None:
        self._provider = credentials
        self._credentials = credentials()
        self.field_manager = field_manager
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Release the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                base_url=None, timeout=self._timeout, raise_for_status=False
            )
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        what: str = "",
    ) -> Any:
        for attempt in (1, 2):
            creds = self._credentials
            headers = {**creds.headers, "Accept": accept}
            data = None
            if body is not None:
                headers["Content-Type"] = content_type
                data = json.dumps(body)
            try:
                async with self._open().request(
                    method,
                    creds.server.rstrip("/") + path,
                    params=params,
                    data=data,
                    headers=headers,
                    ssl=creds.ssl_context if creds.ssl_context is not None else True,
                ) as response:
                    text = await response.text()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise Unavailable(f"{what or path}: {exc!r}") from exc
            if status == 401 and attempt == 1:
                self._credentials = self._provider()
                continue
            try:
                payload = json.loads(text) if text else {}
            except json.JSONDecodeError:
                payload = {"message": text[:200]}
            if status >= 400:
                raise _map_error(status, payload if isinstance(payload, dict) else {}, what or path)
            return payload
        raise Unavailable(f"{what or path}: unauthorized after refreshing credentials", 401)

    async def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            obj = await self._request("GET", rt.path(namespace, name), what=f"get {rt.kind} {name}")
        except NotFound:
            return None
        return dict(obj)

    async def list(
        self, rt: ResourceType, namespace: str | None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace (or everywhere), optionally by label selector."""
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self._request(
            "GET", rt.path(namespace), params=params, what=f"list {rt.plural}"
        )
        return [dict(item) for item in result.get("items") or []]

    async def list_names(
        self, rt: ResourceType, namespace: str | None, label_selector: str, page: int = 500
    ) -> set[tuple[str, str, str]]:
        """(namespace, name, uid) of the objects of a kind a label selector matches: their
        metadata only, a page at a time. Empty when the API server does not serve the kind."""
        found: set[tuple[str, str, str]] = set()
        params = {"labelSelector": label_selector, "limit": str(page)}
        while True:
            try:
                result = await self._request(
                    "GET",
                    rt.path(namespace),
                    params=params,
                    accept=_METADATA_LIST,
                    what=f"list {rt.plural}",
                )
            except NotFound:
                return found
            for item in result.get("items") or []:
                meta = item.get("metadata") or {}
                found.add((str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid"))))
            more = (result.get("metadata") or {}).get("continue")
            if not more:
                return found
            params = {**params, "continue": more}

    async def apply(
        self, obj: Mapping[str, Any], field_manager: str | None = None
    ) -> dict[str, Any]:
        """Server-side apply ``obj`` with our field manager, taking over conflicting fields.

        Forcing is what repairs drift: a field someone edited by hand moves back to us.
        """
        rt = resource_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        result = await self._request(
            "PATCH",
            rt.path(meta.get("namespace"), meta["name"]),
            params={"fieldManager": field_manager or self.field_manager, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
            what=f"apply {rt.kind} {meta['name']}",
        )
        return dict(result)

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj``; :class:`Conflict` when it exists already."""
        rt = resource_for(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        result = await self._request(
            "POST",
            rt.path(meta.get("namespace")),
            params={"fieldManager": self.field_manager},
            body=obj,
            what=f"create {rt.kind} {meta['name']}",
        )
        return dict(result)

    async def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> bool:
        """Delete an object; False when it was already gone. With ``uid``, only that object:
        one of the same name made since is left alone (:class:`Conflict`)."""
        options: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation,
        }
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            await self._request(
                "DELETE", rt.path(namespace, name), body=options, what=f"delete {rt.kind} {name}"
            )
        except NotFound:
            return False
        return True

    async def merge_patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge patch of an object or of its subresource (e.g. ``status``)."""
        result = await self._request(
            "PATCH",
            rt.path(namespace, name, subresource),
            params={"fieldManager": self.field_manager},
            body=patch,
            content_type="application/merge-patch+json",
            what=f"patch {rt.kind} {name}{'/' + subresource if subresource else ''}",
        )
        return dict(result)

    async def resource_exists(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves a resource (e.g. the ServiceMonitor CRD is installed)."""
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            result = await self._request("GET", path, what=f"discover {api_version}")
        except NotFound:
            return False
        return any(r.get("name") == plural for r in result.get("resources") or [])

    async def post_event(
        self,
        involved: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        now: datetime.datetime,
    ) -> None:
        """Record a core/v1 Event about ``involved`` (a full object with metadata)."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.field_manager},
            "reportingComponent": self.field_manager,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        rt = resource_for("v1", "Event")
        await self._request("POST", rt.path(namespace), body=event, what=f"event {reason}")
