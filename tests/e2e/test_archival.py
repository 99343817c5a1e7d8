"""Scenario 9: the archival CronJob on a real cluster; kwok completes its Job's pod."""

from __future__ import annotations

from e2e_support import Cluster, OperatorProcess, condition, eventually


def test_a_job_from_the_archival_cronjob_completes_and_is_recorded(
    operator: OperatorProcess, cluster: Cluster, namespace: str
) -> None:
    cluster.create_secret(namespace, "s3", {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
    cluster.apply(
        {
            "apiVersion": "memorygraph.io/v1alpha1",
            "kind": "MemoryGraph",
            "metadata": {"name": "archived", "namespace": namespace},
            "spec": {
                "archival": {
                    "schedule": "15 4 * * 1",
                    "timeZone": "Europe/Berlin",
                    "destination": {"s3": {"bucket": "archive", "secretRef": {"name": "s3"}}},
                }
            },
        }
    )
    cluster.wait_graph(namespace, "archived")
    cron = cluster.get("cronjob", "archived-archival", namespace)
    assert cron is not None
    assert cron["spec"]["schedule"] == "15 4 * * 1"
    assert cron["spec"]["timeZone"] == "Europe/Berlin"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"

    cluster.kubectl(
        "create", "job", "archive-now", "--from=cronjob/archived-archival", "-n", namespace
    )
    job = eventually(
        lambda: (
            (j := cluster.get("job", "archive-now", namespace))
            and condition(j, "Complete").get("status") == "True"
            and j
        ),
        "the archival Job completing",
    )
    assert job["status"]["succeeded"] == 1
    graph = eventually(
        lambda: (
            (g := cluster.graph(namespace, "archived"))
            and (g["status"].get("archival") or {}).get("lastSuccessfulTime")
            and g
        ),
        "the graph recording the successful archival run",
        timeout=120,
    )
    assert graph["status"]["archival"]["lastSuccessfulTime"] == job["status"]["completionTime"]
