"""Mutual TLS between a client pod and the data plane, with certificates generated for the test."""

from __future__ import annotations

from pathlib import Path

from e2e_support import Cluster, eventually
from real_pods import ClientPod, RealNode, api_key_args, graph_manifest, probe_results

from tests.dataplane.certs import Authority

CERTS = "/etc/client-tls"


def _secret(cluster: Cluster, namespace: str, name: str, files: dict[str, Path]) -> None:
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        name,
        "-n",
        namespace,
        *(f"--from-file={key}={path}" for key, path in files.items()),
    )


def test_mutual_tls_between_a_client_pod_and_the_graph_with_generated_certificates(
    cluster_operator: RealNode, cluster: Cluster, pods_namespace: str, tmp_path: Path
) -> None:
    ns = pods_namespace
    ca = Authority(tmp_path, "graph-ca")
    names = ("secure", f"secure.{ns}", f"secure.{ns}.svc", f"secure.{ns}.svc.cluster.local")
    server = ca.issue("server", server=True, common_name=names[2], dns_names=names)
    client_cert = ca.issue("client", server=False, common_name="support-app")
    stranger = Authority(tmp_path, "other-ca")
    _secret(
        cluster,
        ns,
        "secure-tls",
        {"tls.crt": server.cert, "tls.key": server.key, "ca.crt": ca.files.cert},
    )
    _secret(
        cluster,
        ns,
        "client-tls",
        {
            "tls.crt": client_cert.cert,
            "tls.key": client_cert.key,
            "ca.crt": ca.files.cert,
            "other-ca.crt": stranger.files.cert,
        },
    )

    cluster.apply(
        graph_manifest(
            ns,
            "secure",
            tls={"secretRef": {"name": "secure-tls"}, "requireClientCertificate": True},
        )
    )
    graph = cluster.wait_graph(ns, "secure", timeout=180)
    # With TLS the liveness probe is HTTP (the kubelet's gRPC probe speaks no TLS): it passes too.
    eventually(
        lambda: probe_results(cluster, cluster_operator.name, ns, "secure-0").get(
            "Liveness/successful"
        ),
        "a successful liveness probe",
        timeout=60,
    )
    address = graph["status"]["endpoints"]["grpc"]
    client = ClientPod(
        cluster, ns, cluster_operator.images["memorygraph"], secrets={"client-tls": CERTS}
    ).start()
    key = api_key_args(cluster, ns, "secure")
    mutual = (
        f"--ca-cert={CERTS}/ca.crt",
        f"--client-cert={CERTS}/tls.crt",
        f"--client-key={CERTS}/tls.key",
    )

    health = client.memorygraph(address, *key, *mutual, "health")
    assert health.code == 0, health.stderr
    session = client.memorygraph(address, *key, *mutual, "session", "create", "--title", "over TLS")
    session_id = session.json()["id"]
    read = client.memorygraph(address, *key, *mutual, "session", "get", session_id)
    assert read.json()["title"] == "over TLS"

    # Each missing piece is refused: plaintext, no client certificate, a server that the
    # client's CA did not sign.
    plaintext = client.memorygraph(address, *key, "health")
    without_client_cert = client.memorygraph(address, *key, f"--ca-cert={CERTS}/ca.crt", "health")
    wrong_ca = client.memorygraph(
        address, *key, f"--ca-cert={CERTS}/other-ca.crt", *mutual[1:], "health"
    )
    for refused in (plaintext, without_client_cert, wrong_ca):
        assert refused.code == 3, refused
        assert "cannot reach the server" in refused.stderr, refused.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in wrong_ca.stderr
