"""Storage checks: one default StorageClass, and room for the topology's volumes."""

from __future__ import annotations

from typing import Any

from choreoctl.checks.framework import (
    Category,
    Check,
    CheckContext,
    Outcome,
    failed,
    passed,
    skipped,
    warned,
)
from choreoctl.checks.preflight.needs import cluster_needs
from choreoctl.checks.quantity import bytes_of, format_bytes

DEFAULT_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def is_default(sc: dict[str, Any]) -> bool:
    """Whether a StorageClass is marked as the cluster default."""
    ann = (sc.get("metadata") or {}).get("annotations") or {}
    return any(ann.get(a) == "true" for a in DEFAULT_ANNOTATIONS)


async def default_classes(ctx: CheckContext) -> list[dict[str, Any]]:
    """The StorageClasses marked default (fetched once per run)."""
    return [sc for sc in await ctx.listed("storage.k8s.io/v1", "StorageClass") if is_default(sc)]


async def check_default_class(ctx: CheckContext) -> Outcome:
    defaults = await default_classes(ctx)
    names = [sc["metadata"]["name"] for sc in defaults]
    if len(defaults) == 1:
        return passed(f"{names[0]} ({defaults[0].get('provisioner', '?')})")
    if not defaults:
        return failed("no StorageClass is marked default; PVCs without a class stay Pending")
    return warned(f"{len(defaults)} StorageClasses are marked default: {', '.join(names)}")


async def check_storage(ctx: CheckContext) -> Outcome:
    need = cluster_needs(ctx.topology, ctx.name)
    if not need.storage:
        return skipped("no plane on this cluster requests persistent storage")
    defaults = await default_classes(ctx)
    if not defaults:
        return failed(f"{format_bytes(need.storage)} of PVCs need a default StorageClass; none")
    sc = defaults[0]["metadata"]["name"]
    caps = await ctx.listed("storage.k8s.io/v1", "CSIStorageCapacity")
    mine = [c for c in caps if c.get("storageClassName") == sc]
    if not mine:
        return passed(
            f"{format_bytes(need.storage)} of PVCs on class {sc} "
            "(its provisioner publishes no capacity to compare with)"
        )
    best = max(bytes_of(c.get("capacity", 0)) for c in mine)
    largest = max(bytes_of(c.storage) for p in ctx.planes for c in p.components if c.storage)
    if largest > best:
        return failed(
            f"the largest volume ({format_bytes(largest)}) exceeds the most capacity "
            f"{sc} reports in one topology segment ({format_bytes(best)})"
        )
    return passed(f"{format_bytes(need.storage)} of PVCs; {sc} reports up to {format_bytes(best)}")


CHECKS: tuple[Check, ...] = (
    Check(
        "default-storageclass",
        Category.storage,
        "exactly one default StorageClass",
        "mark one class default: kubectl patch storageclass NAME -p "
        '\'{"metadata":{"annotations":{"storageclass.kubernetes.io/is-default-class":"true"}}}\'',
        check_default_class,
    ),
    Check(
        "storage-capacity",
        Category.storage,
        "the default StorageClass can hold the topology's volumes",
        "install a provisioner with enough capacity, or lower `components.<name>.storage`",
        check_storage,
    ),
)
