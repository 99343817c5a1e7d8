"""Server TLS (and mutual TLS) credentials that pick up renewed certificate files without a
restart: the files are re-read on a new handshake once their modification times change."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

from memorygraph.config import TLSConfig
from memorygraph.errors import ConfigError

__all__ = ["server_credentials"]

log = logging.getLogger("memorygraph.tls")


class _Certificates:
    def __init__(self, config: TLSConfig) -> None:
        assert config.cert_file is not None and config.key_file is not None
        self.files: list[Path] = [config.cert_file, config.key_file]
        if config.client_ca_file is not None:
            self.files.append(config.client_ca_file)
        self.require_client_auth = config.client_ca_file is not None
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, ...]:
        try:
            return tuple(path.stat().st_mtime_ns for path in self.files)
        except OSError as exc:
            raise ConfigError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from exc

    def load(self) -> grpc.ServerCertificateConfiguration:
        try:
            cert, key, *ca = (path.read_bytes() for path in self.files)
        except OSError as exc:
            raise ConfigError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from exc
        return grpc.ssl_server_certificate_configuration(
            [(key, cert)], root_certificates=ca[0] if ca else None
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration:
        """Called by gRPC before handshakes: a new configuration when the files changed,
        None (despite the stubs, which gRPC documents as "no change") otherwise."""
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return None  # type: ignore[return-value]
            config = self.load()
        except ConfigError as exc:
            log.warning("%s; keeping the current certificate", exc)
            return None  # type: ignore[return-value]
        self._stamp = stamp
        log.info("reloaded the TLS certificate files")
        return config


def server_credentials(config: TLSConfig) -> grpc.ServerCredentials | None:
    """None when TLS is not configured; otherwise reloadable (m)TLS credentials."""
    if config.cert_file is None and config.key_file is None:
        if config.client_ca_file is not None:
            raise ConfigError("tls.client_ca_file needs tls.cert_file and tls.key_file")
        return None
    if config.cert_file is None or config.key_file is None:
        raise ConfigError("TLS needs both tls.cert_file and tls.key_file")
    certificates = _Certificates(config)
    return grpc.dynamic_ssl_server_credentials(
        certificates.load(),
        certificates.fetch,
        require_client_authentication=certificates.require_client_auth,
    )
