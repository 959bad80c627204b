"""Component overrides of a plane: replicas, resources and storage over the seed's figures.

A plane always carries the full default list of :data:`defaults.COMPONENTS`; the file
may change any field of any of them, never add one. Requests above limits and storage on
stateless components are refused here, because Kubernetes (or the charts) would only
fail later and less clearly.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from choreoctl.topology import checks, defaults
from choreoctl.topology.fields import Reader
from choreoctl.topology.model import Component, PlaneKind, Resources
from choreoctl.topology.yamlsource import Path


def components(r: Reader, kind: PlaneKind, value: Any, path: Path) -> tuple[Component, ...]:
    """The plane's default components with the file's overrides applied field by field."""
    base = defaults.COMPONENTS[kind]
    names = [c.name for c in base]
    given = r.obj(value, path, names)
    return tuple(
        _component(r, c, given[c.name], (*path, c.name)) if c.name in given else c for c in base
    )


def _component(r: Reader, base: Component, value: Any, path: Path) -> Component:
    storage_only = base.replicas == 0 and bool(base.storage)
    allowed = ("storage",) if storage_only else ("replicas", "resources", "storage")
    c = r.obj(value, path, allowed)
    if "storage" in c and not base.storage:
        r.add((*path, "storage"), f"{base.name} keeps no data; storage cannot be set", key=True)
        c.pop("storage")
    res = base.resources
    if "resources" in c:
        rp = (*path, "resources")
        rr = r.obj(c["resources"], rp, ("requests", "limits"))
        req = r.obj(rr.get("requests"), (*rp, "requests"), ("cpu", "memory"))
        lim = r.obj(rr.get("limits"), (*rp, "limits"), ("cpu", "memory"))
        res = Resources(
            cpu_request=_quantity(r, req, (*rp, "requests"), "cpu", res.cpu_request),
            cpu_limit=_quantity(r, lim, (*rp, "limits"), "cpu", res.cpu_limit),
            memory_request=_quantity(r, req, (*rp, "requests"), "memory", res.memory_request),
            memory_limit=_quantity(r, lim, (*rp, "limits"), "memory", res.memory_limit),
        )
        for what, low, high in (
            ("cpu", res.cpu_request, res.cpu_limit),
            ("memory", res.memory_request, res.memory_limit),
        ):
            if _amount(low) > _amount(high):
                r.add(
                    (*rp, "requests", what),
                    f"request {low} is more than the limit {high}",
                    expected=f"at most {high}",
                    hint="Kubernetes refuses a request above its limit",
                )
    storage = base.storage
    if "storage" in c:
        storage = _quantity(r, c, path, "storage", base.storage)
        if _amount(storage) <= 0:
            r.add((*path, "storage"), f"storage {storage} is not positive", expected="e.g. 10Gi")
    return Component(
        name=base.name,
        replicas=r.integer(c, path, "replicas", base.replicas, 0, 1000),
        resources=res,
        storage=storage,
    )


def _amount(text: str) -> Decimal:
    return checks.quantity(text) or Decimal(0)


def _quantity(r: Reader, d: dict[str, Any], path: Path, key: str, default: str) -> str:
    value = d.get(key)
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    before = len(r.problems)
    text = r.text_value(value, (*path, key), default, expected="a Kubernetes quantity")
    if len(r.problems) == before:
        amount = checks.quantity(text)
        if amount is None or amount < 0:
            r.add(
                (*path, key),
                f"{text!r} is not a valid Kubernetes quantity",
                expected="a quantity like 500m, 2, 256Mi or 10Gi",
            )
            return default
    return text
