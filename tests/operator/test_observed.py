"""What the operator keeps of a watched child, and when applying it again would change it."""

from __future__ import annotations

from typing import Any

from memorygraph_operator.kube import FIELD_MANAGER
from memorygraph_operator.reconcile.observed import (
    APPLIED_HASH,
    applied_hash,
    observe,
    with_applied_hash,
)

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "g", "namespace": "ns", "labels": {"app": "g"}},
    "spec": {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "mg", "image": "mg:1", "args": ["x"]}]}},
    },
}
OURS = {
    "manager": FIELD_MANAGER,
    "operation": "Apply",
    "fieldsV1": {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:template": {
                "f:spec": {"f:containers": {'k:{"name":"mg"}': {".": {}, "f:image": {}}}}
            },
        },
    },
}
STATUS = {
    "manager": "kube-controller-manager",
    "operation": "Update",
    "subresource": "status",
    "fieldsV1": {"f:status": {"f:replicas": {}, "f:readyReplicas": {}}},
}


def _live(*entries: dict[str, Any], digest: str | None = None) -> dict[str, Any]:
    body = with_applied_hash(DESIRED, digest or applied_hash(DESIRED))
    body["metadata"] = {**body["metadata"], "managedFields": list(entries)}
    body["status"] = {"replicas": 2, "readyReplicas": 2}
    body["data"] = {"big": "x" * 1000}
    return body


def test_a_child_is_kept_without_what_reconciles_never_read() -> None:
    observed = observe(_live(OURS, STATUS), FIELD_MANAGER)
    assert "managedFields" not in observed.body["metadata"]
    assert "data" not in observed.body
    assert observed.body["spec"]["template"] == {
        "spec": {"containers": [{"name": "mg", "image": "mg:1"}]}
    }
    assert observed.body["status"] == {"replicas": 2, "readyReplicas": 2}
    assert observed.body["spec"]["replicas"] == 2


def test_the_hash_ignores_its_own_annotation() -> None:
    digest = applied_hash(DESIRED)
    assert applied_hash(with_applied_hash(DESIRED, digest)) == digest
    changed = {**DESIRED, "spec": {**DESIRED["spec"], "replicas": 3}}
    assert applied_hash(changed) != digest
    assert with_applied_hash(DESIRED, digest)["metadata"]["annotations"] == {APPLIED_HASH: digest}


def test_a_child_as_applied_needs_no_apply() -> None:
    observed = observe(_live(OURS, STATUS), FIELD_MANAGER)
    assert observed.foreign == frozenset()  # the controller's status is not a foreign field
    assert observed.as_applied(DESIRED, applied_hash(DESIRED), observed.applied_fields)
    assert observed.as_applied(DESIRED, applied_hash(DESIRED), None)  # after a restart


def test_a_changed_spec_a_foreign_value_or_a_lost_field_needs_an_apply() -> None:
    digest = applied_hash(DESIRED)
    observed = observe(_live(OURS), FIELD_MANAGER)
    changed = {**DESIRED, "spec": {**DESIRED["spec"], "replicas": 3}}
    assert not observed.as_applied(changed, applied_hash(changed), None)

    # `kubectl scale sts`: the replicas moved to another manager.
    scaled = {
        "manager": "kubectl",
        "operation": "Update",
        "subresource": "scale",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    ours_without = {
        **OURS,
        "fieldsV1": {
            **OURS["fieldsV1"],
            "f:spec": {"f:template": OURS["fieldsV1"]["f:spec"]["f:template"]},
        },
    }
    moved = observe(_live(ours_without, scaled), FIELD_MANAGER)
    assert moved.foreign == {("spec", "replicas")}
    assert not moved.as_applied(DESIRED, digest, None)
    assert moved.replicas_managers == {"kubectl"} and not moved.replicas_applied

    # An edited container image: the foreign path is the list as a whole.
    edited = {
        "manager": "kubectl-edit",
        "operation": "Update",
        "fieldsV1": {
            "f:spec": {
                "f:template": {"f:spec": {"f:containers": {'k:{"name":"mg"}': {"f:image": {}}}}}
            }
        },
    }
    assert not observe(_live(OURS, edited), FIELD_MANAGER).as_applied(DESIRED, digest, None)

    # A label someone else added touches nothing the operator applies.
    labelled = {
        "manager": "kubectl-label",
        "operation": "Update",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:team": {}}}},
    }
    assert observe(_live(OURS, labelled), FIELD_MANAGER).as_applied(DESIRED, digest, None)

    # Fewer fields than this process's last apply left: someone removed one.
    before = observe(_live(OURS), FIELD_MANAGER).applied_fields
    assert not observe(_live(ours_without), FIELD_MANAGER).as_applied(DESIRED, digest, before)

    # Never applied by the operator (no Apply entry): always applied.
    assert not observe(_live(STATUS), FIELD_MANAGER).as_applied(DESIRED, digest, None)
