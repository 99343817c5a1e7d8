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


def test_a_child_as_this_process_applied_it_needs_no_apply() -> None:
    observed = observe(_live(OURS, STATUS), FIELD_MANAGER)
    fields = observed.applied_fields
    assert fields is not None
    assert observed.as_applied(applied_hash(DESIRED), fields)
    # The controller writing the status takes nothing from the apply.
    assert observe(_live(OURS), FIELD_MANAGER).applied_fields == fields
    # A process that has not applied it yet cannot tell a removal: it applies once.
    assert not observed.as_applied(applied_hash(DESIRED), None)


def _without_replicas(entry: dict[str, Any]) -> dict[str, Any]:
    fields = dict(entry["fieldsV1"])
    fields["f:spec"] = {k: v for k, v in fields["f:spec"].items() if k != "f:replicas"}
    return {**entry, "fieldsV1": fields}


def test_a_changed_spec_a_value_taken_over_or_a_removed_field_needs_an_apply() -> None:
    digest = applied_hash(DESIRED)
    fields = observe(_live(OURS), FIELD_MANAGER).applied_fields
    changed = {**DESIRED, "spec": {**DESIRED["spec"], "replicas": 3}}
    assert not observe(_live(OURS), FIELD_MANAGER).as_applied(applied_hash(changed), fields)

    # `kubectl scale sts`: the replicas moved to another manager.
    scaled = {
        "manager": "kubectl",
        "operation": "Update",
        "subresource": "scale",
        "fieldsV1": {"f:spec": {"f:replicas": {}}},
    }
    moved = observe(_live(_without_replicas(OURS), scaled), FIELD_MANAGER)
    assert not moved.as_applied(digest, fields)
    assert moved.replicas_managers == {"kubectl"} and not moved.replicas_applied

    # Someone set the same value with an apply of their own: shared, nothing to repair.
    same = {**scaled, "manager": "gitops", "operation": "Apply", "subresource": None}
    shared = observe(_live(OURS, same), FIELD_MANAGER)
    assert shared.as_applied(digest, fields)
    assert shared.replicas_managers == {FIELD_MANAGER, "gitops"} and shared.replicas_applied

    # Never applied by the operator (no Apply entry of its own): always applied.
    assert not observe(_live(STATUS), FIELD_MANAGER).as_applied(digest, fields)
