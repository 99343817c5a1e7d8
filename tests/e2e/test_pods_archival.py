"""Archival for real: the CronJob's Job runs on the real node and ships closed sessions to MinIO
running in the cluster; a restore brings them back."""

from __future__ import annotations

import re
import time

from e2e_support import Cluster, condition, eventually
from real_pods import ClientPod, RealNode, api_key_args, deploy_minio, graph_manifest

BUCKET = "archive"
PREFIX = "e2e"
# An S3 client in a pod, for MinIO in the cluster (boto3 comes with the project's image).
S3 = (
    "import os, boto3\n"
    "s3 = boto3.client('s3', endpoint_url=os.environ['MEMORYGRAPH_S3_ENDPOINT'])\n"
)


def test_the_archival_job_ships_a_session_to_minio_and_a_restore_brings_it_back(
    cluster_operator: RealNode, cluster: Cluster, pods_namespace: str
) -> None:
    ns = pods_namespace
    user, password = "archiver", "archiver-secret-key"
    endpoint = deploy_minio(cluster, ns, cluster_operator.images["minio"], user, password)
    s3 = {
        "AWS_ACCESS_KEY_ID": user,
        "AWS_SECRET_ACCESS_KEY": password,
        "AWS_REGION": "us-east-1",
        "MEMORYGRAPH_S3_ENDPOINT": endpoint,
    }
    cluster.create_secret(ns, "s3", s3)
    cluster.apply(
        graph_manifest(
            ns,
            "kept",
            auth={"enabled": True},
            archival={
                # Never on its own during the test: the test starts a Job from it.
                "schedule": "0 0 1 1 *",
                "olderThan": "1s",
                "destination": {
                    "s3": {"bucket": BUCKET, "prefix": PREFIX, "secretRef": {"name": "s3"}}
                },
            },
        )
    )
    graph = cluster.wait_graph(ns, "kept", timeout=180)
    server = graph["status"]["endpoints"]["grpc"]
    key = api_key_args(cluster, ns, "kept")
    client = ClientPod(cluster, ns, cluster_operator.images["memorygraph"], env=s3).start()
    made = client.run("python", "-c", S3 + f"s3.create_bucket(Bucket={BUCKET!r})")
    assert made.code == 0, made.stderr

    session_id = client.memorygraph(
        server, *key, "session", "create", "--title", "old chat", "--id-only"
    ).stdout.strip()
    prompt = client.memorygraph(server, *key, "prompt", "add", session_id, "Archive me")
    assert prompt.code == 0, prompt.stderr
    assert client.memorygraph(server, *key, "session", "close", session_id).code == 0
    before = client.memorygraph(server, *key, "dump", session_id).json()

    time.sleep(1.5)  # older than olderThan
    cluster.kubectl("create", "job", "archive-now", "--from=cronjob/kept-archival", "-n", ns)
    job = eventually(
        lambda: (
            (j := cluster.get("job", "archive-now", ns))
            and (condition(j, "Complete").get("status") == "True" or condition(j, "Failed"))
            and j
        ),
        "the archival Job finishing",
        timeout=180,
    )
    logs = cluster.kubectl("logs", "job/archive-now", "-n", ns)
    assert condition(job, "Complete").get("status") == "True", logs
    (job_pod,) = cluster.objects("pods", ns, "job-name=archive-now")
    assert job_pod["spec"]["nodeName"] == cluster_operator.name
    match = re.search(rf"session {session_id}: archived as (\S+)", logs)
    assert match, logs
    archive_id = match.group(1)

    gone = client.memorygraph(server, *key, "session", "get", session_id)
    assert gone.code == 1 and "NOT_FOUND" in gone.stderr
    listed = client.run(
        "python",
        "-c",
        S3 + f"print(*(o['Key'] for o in s3.list_objects_v2(Bucket={BUCKET!r})['Contents']))",
    )
    assert sorted(listed.stdout.split()) == [
        f"{PREFIX}/{archive_id}.jsonl.zst",
        f"{PREFIX}/{archive_id}.manifest.json",
    ]
    recorded = eventually(
        lambda: (cluster.graph(ns, "kept")["status"].get("archival") or {}).get(
            "lastSuccessfulTime"
        ),
        "the graph recording the archival run",
        timeout=120,
    )
    assert recorded == job["status"]["completionTime"]

    destination = ("--s3-bucket", BUCKET, "--s3-prefix", PREFIX, "--s3-endpoint", endpoint)
    restored = client.memorygraph(server, *key, "archive", "restore", archive_id, *destination)
    assert restored.code == 0, restored.stderr
    assert client.memorygraph(server, *key, "dump", session_id).json() == before
