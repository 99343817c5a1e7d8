"""What a plugins file may make the server do: webhook tokens only from the plugin's own Secret,
no webhook to loopback, link-local, cloud-metadata or unspecified addresses unless allowed —
when the file is loaded, and again whenever a webhook connects."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from memorygraph.errors import ConfigError
from memorygraph.plugins.outbound import AddressPolicy
from memorygraph.v1 import graph_pb2 as pb

from .conftest import REPO
from .plugin_support import (
    LOOPBACK,
    Start,
    Webhook,
    connect,
    serve_plugins,
    webhook_plugin,
    write_plugins,
    write_token,
)


def check(plugins: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`memorygraph plugins check`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "memorygraph", "plugins", "check", str(plugins), *options],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "dataplane")},
        timeout=60,
    )


def _webhook(url: str, **fields: Any) -> dict[str, Any]:
    return webhook_plugin("policy", url, ["before_create_session"], **fields)


# --- tokens ---------------------------------------------------------------------------------


def _escapes(tmp_path: Path, secrets: Path) -> dict[str, Path]:
    """token_file values that would send another file's content: each one exists."""
    other = write_token(secrets, "other", "other-plugin-token")
    registry = tmp_path / "registry" / "token"
    registry.parent.mkdir()
    registry.write_text("registry-token")
    link = secrets / "policy" / "token"
    link.parent.mkdir(parents=True)
    link.symlink_to(other)
    return {
        "another plugin's token": other,
        "the registry's token": registry,
        "a way up and out": secrets / "policy" / ".." / "other" / "token",
        "relative, up and out": Path("../other/token"),
        "a symlink out": link,
        "the plugin's directory": secrets / "policy",
    }


@pytest.mark.parametrize(
    "escape",
    [
        "another plugin's token",
        "the registry's token",
        "a way up and out",
        "relative, up and out",
        "a symlink out",
        "the plugin's directory",
    ],
)
def test_a_token_file_outside_the_plugins_own_secret_is_refused(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path, escape: str
) -> None:
    secrets = tmp_path / "plugin-secrets"
    token_file = _escapes(tmp_path, secrets)[escape]
    plugins = write_plugins(
        tmp_path / "plugins.yaml", _webhook(webhook.url, token_file=str(token_file))
    )
    with pytest.raises(ConfigError, match="plugin 'policy': token_file") as info:
        start_inprocess(plugins_file=plugins, plugin_secrets_dir=secrets, **LOOPBACK)
    assert "own Secret" in str(info.value)
    assert webhook.calls == []

    checked = check(plugins, "--secrets-dir", str(secrets), "--allow-network", "127.0.0.1/32")
    assert checked.returncode == 2
    assert "plugin 'policy': token_file" in checked.stderr and "Traceback" not in checked.stderr


def _kubernetes_volume(root: Path, layout: str, token: str, version: str) -> None:
    """Write `token` the way the kubelet updates a volume: a new timestamped directory, then
    `..data` swapped to it in one rename. `projected`: one volume for the whole config
    directory (what the operator renders); `secret`: a volume of its own for the plugin."""
    inside = "plugin-secrets/policy/token" if layout == "projected" else "token"
    (root / version / inside).parent.mkdir(parents=True)
    (root / version / inside).write_text(token)
    (root / "..data.tmp").symlink_to(version)
    os.replace(root / "..data.tmp", root / "..data")
    top = inside.split("/")[0]
    if not (root / top).is_symlink():
        (root / top).symlink_to(f"..data/{top}")


@pytest.mark.parametrize("layout", ["projected", "secret"])
def test_a_token_mounted_by_kubernetes_through_symlinks_is_read_and_rotates(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path, layout: str
) -> None:
    if layout == "projected":
        root = tmp_path / "etc-memorygraph"
        secrets = root / "plugin-secrets"
    else:
        secrets = tmp_path / "plugin-secrets"
        root = secrets / "policy"
    root.mkdir(parents=True)
    _kubernetes_volume(root, layout, "first\n", "..2030_01_01_00_00_00.1")
    plugins = write_plugins(
        tmp_path / "plugins.yaml",
        _webhook(webhook.url, token_file=str(secrets / "policy" / "token")),
    )
    stub = connect(start_inprocess(plugins_file=plugins, plugin_secrets_dir=secrets, **LOOPBACK))
    stub.CreateSession(pb.CreateSessionRequest())
    _kubernetes_volume(root, layout, "second\n", "..2030_01_01_00_05_00.2")
    stub.CreateSession(pb.CreateSessionRequest())
    assert [h["Authorization"] for h in webhook.headers] == ["Bearer first", "Bearer second"]


def test_a_relative_token_file_is_taken_from_the_plugins_own_directory(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    secrets = tmp_path / "plugin-secrets"
    write_token(secrets, "policy", "mine")
    plugins = write_plugins(tmp_path / "plugins.yaml", _webhook(webhook.url, token_file="token"))
    stub = connect(start_inprocess(plugins_file=plugins, plugin_secrets_dir=secrets, **LOOPBACK))
    stub.CreateSession(pb.CreateSessionRequest())
    assert webhook.headers[0]["Authorization"] == "Bearer mine"


def test_a_token_link_turned_outward_after_loading_sends_nothing(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    """The check is made at every read too: a link changed later is refused then."""
    secrets = tmp_path / "plugin-secrets"
    other = write_token(secrets, "other", "other-plugin-token")
    own = write_token(secrets, "policy", "mine")
    plugins = write_plugins(
        tmp_path / "plugins.yaml", _webhook(webhook.url, token_file=str(own), failure_policy="Fail")
    )
    stub = connect(start_inprocess(plugins_file=plugins, plugin_secrets_dir=secrets, **LOOPBACK))
    stub.CreateSession(pb.CreateSessionRequest())
    own.unlink()
    own.symlink_to(other)
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateSession(pb.CreateSessionRequest())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert [h["Authorization"] for h in webhook.headers] == ["Bearer mine"]


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("http://127.8.9.10/hook", "loopback"),
        ("http://[::1]:8080/hook", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://localhost:8080/hook", "localhost resolves to"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
        ("http://169.254.1.1/hook", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://0.0.0.0:8080/hook", "unspecified"),
        ("http://[::]:8080/hook", "unspecified"),
    ],
)
def test_webhook_urls_to_refused_addresses_are_refused_by_default(
    start_inprocess: Start, tmp_path: Path, url: str, kind: str
) -> None:
    plugins = write_plugins(tmp_path / "plugins.yaml", _webhook(url))
    with pytest.raises(ConfigError, match="plugin 'policy': its URL is refused") as info:
        start_inprocess(plugins_file=plugins)
    assert kind in str(info.value)
    checked = check(plugins)
    assert checked.returncode == 2 and kind in checked.stderr


@pytest.mark.parametrize("url", ["http://[::1/hook", "http://"])
def test_a_webhook_url_that_is_no_url_refuses_the_file_naming_the_plugin(
    start_inprocess: Start, tmp_path: Path, url: str
) -> None:
    with pytest.raises(ConfigError, match="plugin 'policy': '"):
        serve_plugins(start_inprocess, tmp_path, _webhook(url))


def test_the_default_policy_refuses_the_loopback_service_the_other_tests_allow(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path
) -> None:
    plugins = write_plugins(tmp_path / "plugins.yaml", _webhook(webhook.url))
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1 is a loopback address"):
        start_inprocess(plugins_file=plugins)
    stub = connect(start_inprocess(plugins_file=plugins, **LOOPBACK))
    assert stub.CreateSession(pb.CreateSessionRequest(title="allowed")).title == "allowed"
    assert len(webhook.calls) == 1
    checked = check(plugins, "--allow-network", "127.0.0.1")
    assert checked.returncode == 0, checked.stderr


def test_private_networks_stay_allowed_and_metadata_needs_an_exact_allowance() -> None:
    default = AddressPolicy()
    for cluster in ("10.96.0.10", "172.20.1.1", "192.168.1.5", "100.64.3.4", "fd12::1"):
        assert default.refusal(cluster) is None, cluster
    for public in ("8.8.8.8", "2001:4860:4860::8888"):
        assert default.refusal(public) is None, public
    wide = AddressPolicy((ipaddress.ip_network("169.254.0.0/16"),))
    assert wide.refusal("169.254.1.1") is None
    assert wide.refusal("169.254.169.254") == "cloud metadata"
    assert wide.refusal("::ffff:169.254.169.254") == "cloud metadata"
    exact = AddressPolicy((ipaddress.ip_network("169.254.169.254/32"),))
    assert exact.refusal("169.254.169.254") is None
    assert exact.refusal("127.0.0.1") == "loopback"


class _Dns:
    """`rebind.test` answers what the test says; other names resolve as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answer = "10.255.255.1"
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host == "rebind.test":
                host = self.answer
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> _Dns:
    return _Dns(monkeypatch)


def test_a_name_that_turns_to_loopback_after_loading_is_refused_when_connecting(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path, dns: _Dns
) -> None:
    """DNS rebinding: the name was fine when the file was loaded, and points at the server's
    own loopback when the webhook is called."""
    port = webhook.url.split(":")[2].split("/")[0]
    plugin = _webhook(f"http://rebind.test:{port}/hook", failure_policy="Fail")
    server = serve_plugins(start_inprocess, tmp_path, plugin)
    dns.answer = "127.0.0.1"
    with pytest.raises(grpc.RpcError) as info:
        connect(server).CreateSession(pb.CreateSessionRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert webhook.calls == []


def test_a_webhook_named_by_host_name_reaches_the_address_it_resolves_to(
    start_inprocess: Start, webhook: Webhook, tmp_path: Path, dns: _Dns
) -> None:
    dns.answer = "127.0.0.1"
    port = webhook.url.split(":")[2].split("/")[0]
    plugin = _webhook(f"http://rebind.test:{port}/h")
    stub = connect(serve_plugins(start_inprocess, tmp_path, plugin, **LOOPBACK))
    stub.CreateSession(pb.CreateSessionRequest())
    assert webhook.headers[0]["Host"] == f"rebind.test:{port}"


def test_a_connection_refused_under_ignore_is_logged_with_the_address(
    start_inprocess: Start,
    webhook: Webhook,
    tmp_path: Path,
    dns: _Dns,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = webhook.url.split(":")[2].split("/")[0]
    plugin = _webhook(f"http://rebind.test:{port}/hook", failure_policy="Ignore")
    stub = connect(serve_plugins(start_inprocess, tmp_path, plugin))
    dns.answer = "127.0.0.1"
    assert stub.CreateSession(pb.CreateSessionRequest(title="kept")).title == "kept"
    expected = "refused to connect: rebind.test resolves to 127.0.0.1, a loopback address"
    assert any(expected in r.getMessage() for r in caplog.records)
    assert webhook.calls == []
