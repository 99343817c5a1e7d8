"""Where webhook plugins may connect, and how long one exchange with them may take.

Webhook URLs come from plugin configuration, which application teams write. Unchecked, a
webhook could make the server call its own loopback services, the node's link-local ones or
the cloud metadata endpoint, with a bearer token. So:

- `AddressPolicy` refuses loopback, link-local, cloud-metadata and unspecified addresses unless
  the server's `plugins_allowed_networks` allows them. Private ranges (10/8, 172.16/12,
  192.168/16, fc00::/7, 100.64/10) stay allowed: cluster services live there. A metadata
  address is allowed only by a network of that one address, never by a wider one.
- The policy is applied when the plugins file is loaded (to IP literals, and to names that
  resolve then), and again on every new connection: `GuardedBackend` resolves the name itself,
  checks every address and connects to a checked one, so a DNS answer that changed since the
  file was loaded cannot turn a webhook towards a refused address.
- `deadline(seconds)` bounds a whole exchange: every socket operation of the calling thread
  (name resolution, connect, TLS handshake, each send and each receive) gets what is left of
  it, so a service that answers a byte at a time is cut off like one that does not answer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx

from memorygraph.config import ServerConfig

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "DEFAULT_POLICY",
    "DEFAULT_SECRETS_DIR",
    "AddressPolicy",
    "AddressRefused",
    "GuardedBackend",
    "WebhookPolicy",
    "deadline",
    "resolve",
    "url_refusal",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SECRETS_DIR = Path("/etc/memorygraph/plugin-secrets")
DEFAULT_MAX_ANSWER_BYTES = 2 << 20
# How long loading the plugins file waits for a name to resolve before leaving the check to
# connect time.
LOAD_RESOLVE_SECONDS = 2.0

_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "unspecified"),
        ("::/128", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("::1/128", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("fe80::/10", "link-local"),
    )
)
# Cloud metadata services: AWS, GCP, Azure and OCI (169.254.169.254), AWS over IPv6, Alibaba.
_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


def _plain(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) as the IPv4 address they reach."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _kind(address: IPAddress) -> str | None:
    if address in _METADATA:
        return "cloud metadata"
    for network, kind in _REFUSED:
        if address in network:
            return kind
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """The addresses webhooks may connect to: all but the refused kinds, plus `allowed`."""

    allowed: tuple[IPNetwork, ...] = ()

    def refusal(self, address: str) -> str | None:
        """What kind of refused address `address` (an IP literal) is, or None when allowed."""
        ip = _plain(ipaddress.ip_address(address))
        kind = _kind(ip)
        if kind is None:
            return None
        for network in self.allowed:
            if ip in network and (kind != "cloud metadata" or network.num_addresses == 1):
                return None
        return kind


class AddressRefused(httpcore.ConnectError):
    """A webhook's host is, or resolves to, an address the policy refuses."""


@dataclass(frozen=True)
class WebhookPolicy:
    """What the server allows webhook plugins: where their tokens come from, where they may
    connect, how large an answer may be."""

    secrets_dir: Path = DEFAULT_SECRETS_DIR
    addresses: AddressPolicy = AddressPolicy()
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES

    @classmethod
    def from_config(cls, config: ServerConfig) -> WebhookPolicy:
        return cls(
            config.plugin_secrets_dir,
            AddressPolicy(tuple(config.plugins_allowed_networks)),
            config.plugins_max_answer_bytes,
        )


# The policy of a server with default settings.
DEFAULT_POLICY = WebhookPolicy()


def resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses `host` stands for (an IP literal stands for itself), in resolver order.

    Resolution runs on a daemon thread so that a resolver that does not answer holds the
    caller no longer than `timeout` (`TimeoutError`); a name that does not resolve raises
    `OSError`."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    answer: list[list[Any] | OSError] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="webhook-resolve", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"{host} did not resolve in time")
    (result,) = answer
    if isinstance(result, OSError):
        raise result
    return list(dict.fromkeys(str(info[4][0]) for info in result))


def _refused(policy: AddressPolicy, host: str, addresses: Iterable[str]) -> str | None:
    for address in addresses:
        kind = policy.refusal(address)
        if kind is not None:
            if address == host:
                return f"{address} is a {kind} address"
            return f"{host} resolves to {address}, a {kind} address"
    return None


def url_refusal(url: str, policy: AddressPolicy) -> str | None:
    """Why the policy refuses `url`, when that can be known now; None when it is allowed or
    its name does not resolve yet (connect time decides then). `ValueError` when `url` is no
    URL a webhook can have."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise ValueError(f"{url!r} names no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = resolve(host, port, LOAD_RESOLVE_SECONDS)
    except (OSError, TimeoutError):
        return None
    return _refused(policy, host, addresses)


# --- the whole-exchange deadline ------------------------------------------------------------

_deadline: ContextVar[float | None] = ContextVar("memorygraph_webhook_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every socket operation of the guarded connections used inside the block, in
    this thread, by one deadline `seconds` from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _budget(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """The time an operation may take: its own timeout, cut to what is left of the deadline."""
    until = _deadline.get()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise expired("the deadline of the exchange passed")
    return left if timeout is None else min(timeout, left)


# Writes are cut into pieces so that a peer that reads slowly meets the deadline too.
_WRITE_PIECE = 16 << 10


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _budget(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):
            piece = buffer[start : start + _WRITE_PIECE]
            self._inner.write(piece, _budget(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        budget = _budget(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, budget))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend for webhooks: connects only to addresses `policy` allows,
    and keeps every operation of its connections within the caller's `deadline`."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port, _budget(timeout, httpcore.ConnectTimeout))
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        refused = _refused(self.policy, host, addresses)
        if refused is not None:
            raise AddressRefused(refused)
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=_budget(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _DeadlineStream(stream)
        assert failure is not None  # `resolve` returns at least one address
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise AddressRefused("webhooks connect over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
