"""Install record: JSON round trip, merge rules, created-by decisions, inventory."""

from __future__ import annotations

from choreoctl.install.inventory import (
    Entry,
    InstallRecord,
    StepRecord,
    created_by_attempt,
)
from choreoctl.install.objects import ObjectRef, by_rank, strip_server_fields

CM = ObjectRef("v1", "ConfigMap", "ns", "cfg")
NS = ObjectRef("v1", "Namespace", "", "ns")


def test_created_by_attempt_uses_server_times() -> None:
    assert created_by_attempt("2026-01-01T10:00:05Z", "2026-01-01T10:00:05Z")
    assert created_by_attempt("2026-01-01T10:00:06Z", "2026-01-01T10:00:05Z")
    assert not created_by_attempt("2026-01-01T10:00:04Z", "2026-01-01T10:00:05Z")
    assert not created_by_attempt("", "2026-01-01T10:00:05Z")
    assert not created_by_attempt("2026-01-01T10:00:06Z", "")


def test_merge_keeps_created_for_the_same_object_and_resets_for_a_replacement() -> None:
    rec = StepRecord()
    rec.merge([Entry("c", CM)])  # planned, not applied yet
    rec.merge([Entry("c", CM, "uid-1", True)])
    assert rec.objects == [Entry("c", CM, "uid-1", True)]
    rec.merge([Entry("c", CM, "uid-1", False)])  # re-run: still the object we created
    assert rec.objects[0].created is True
    rec.merge([Entry("c", CM, "uid-2", False)])  # someone replaced it; we did not create it
    assert rec.objects[0] == Entry("c", CM, "uid-2", False)
    rec.merge([Entry("other", CM, "uid-3", True)])  # same ref, other cluster: distinct
    assert len(rec.objects) == 2
    rec.drop([("c", CM)])
    assert [e.cluster for e in rec.objects] == ["other"]


def test_record_round_trip_and_inventory_dedupes_across_steps() -> None:
    record = InstallRecord("t", "abc", "0.1.0", "installing")
    record.step("plane/a").merge([Entry("c", NS, "u-ns", False, "hook")])
    record.step("plane/b").merge([Entry("c", NS, "u-ns", True, "hook"), Entry("c", CM, "u")])
    again = InstallRecord.from_dict(record.as_dict())
    assert again.as_dict() == record.as_dict()
    inv = again.inventory()
    assert [e.ref for e in inv["c"]] == [NS, CM]
    assert inv["c"][0].created is True  # whichever step created it says so
    assert inv["c"][0].origin == "hook"


def test_rank_groups_put_namespaces_and_crds_first() -> None:
    objs = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}},
        {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "c"},
        },
    ]
    kinds = [[o["kind"] for o in group] for group in by_rank(objs)]
    assert kinds == [["Namespace", "CustomResourceDefinition"], ["Deployment"], ["Widget"]]


def test_strip_server_fields() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "x",
            "uid": "u",
            "resourceVersion": "1",
            "managedFields": [{}],
            "creationTimestamp": "t",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        },
        "data": {"a": "1"},
        "status": {"x": 1},
    }
    assert strip_server_fields(live) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x"},
        "data": {"a": "1"},
    }
