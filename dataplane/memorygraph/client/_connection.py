"""How a client reaches the server: the channel, TLS credentials, the API key on every call.

Both clients open their channel here (blocking or asyncio); this module builds no requests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from memorygraph.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_RECEIVE_BYTES",
    "DEFAULT_TARGET",
    "Pem",
    "auth_metadata",
    "credentials",
    "open_aio_channel",
    "open_channel",
    "tls_name",
]

DEFAULT_TARGET = "127.0.0.1:50051"
# The largest response a client takes by default: well above the server's default largest
# message (8 MiB), which bounds every page and batch it sends.
DEFAULT_MAX_RECEIVE_BYTES = 64 << 20

Pem = bytes | str | Path
Metadata = tuple[tuple[str, str], ...]


def _pem(value: Pem) -> bytes:
    """PEM given as bytes, as text, or as the path of a file holding it."""
    if isinstance(value, Path) or (isinstance(value, str) and not value.startswith("-----")):
        try:
            return Path(value).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {value}: {exc.strerror}") from None
    return value.encode() if isinstance(value, str) else value


def credentials(
    root_certificates: Pem | None, client_cert: Pem | None, client_key: Pem | None
) -> grpc.ChannelCredentials | None:
    """TLS credentials when a CA or a client certificate is given; None means plaintext."""
    if (client_cert is None) != (client_key is None):
        raise ConfigError("a client certificate needs its key, and a key its certificate")
    if root_certificates is None and client_cert is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(root_certificates) if root_certificates is not None else None,
        private_key=_pem(client_key) if client_key is not None else None,
        certificate_chain=_pem(client_cert) if client_cert is not None else None,
    )


def auth_metadata(api_key: str | None) -> Metadata:
    """The metadata sent with every call: the API key (or MEMORYGRAPH_API_KEY) as a bearer
    token, nothing without one."""
    key = api_key if api_key is not None else os.environ.get("MEMORYGRAPH_API_KEY")
    return (("authorization", f"Bearer {key}"),) if key else ()


def tls_name(target: str) -> str | None:
    """The host name in `target` that a TLS server's certificate must name: "host:port",
    "[v6]:port", "dns:///host:port", "dns:host:port", "ipv4:addr:port", "ipv6:[addr]:port" (the
    first address of a list); None for a target without one (a Unix socket)."""
    scheme, colon, rest = target.partition(":")
    if colon and scheme in ("unix", "unix-abstract", "vsock"):
        return None
    if colon and scheme in ("dns", "ipv4", "ipv6"):
        address = rest.rsplit("/", 1)[-1].split(",", 1)[0]
    else:
        address = target
    if address.startswith("["):
        host = address[1 : address.find("]")] if "]" in address else address[1:]
    elif address.count(":") == 1:
        host = address.split(":", 1)[0]
    else:  # a bare IPv6 address, or a host without a port
        host = address
    return host or None


def _options(max_receive_bytes: int, name: str | None) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", max_receive_bytes)]
    if name is not None:
        options.append(("grpc.ssl_target_name_override", name))
    return options


def open_channel(
    target: str,
    creds: grpc.ChannelCredentials | None,
    max_receive_bytes: int,
    name: str | None = None,
) -> grpc.Channel:
    """A blocking channel: TLS with `creds` (the server's certificate checked against `name`
    when given, else `target`'s host), plaintext without."""
    if creds is None:
        return grpc.insecure_channel(target, _options(max_receive_bytes, None))
    return grpc.secure_channel(target, creds, _options(max_receive_bytes, name))


def open_aio_channel(
    target: str,
    creds: grpc.ChannelCredentials | None,
    max_receive_bytes: int,
    name: str | None = None,
) -> grpc.aio.Channel:
    """An asyncio channel: TLS with `creds` (the server's certificate checked against `name`
    when given, else `target`'s host), plaintext without."""
    if creds is None:
        return grpc.aio.insecure_channel(target, _options(max_receive_bytes, None))
    return grpc.aio.secure_channel(target, creds, _options(max_receive_bytes, name))
