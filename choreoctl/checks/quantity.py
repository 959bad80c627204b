"""Kubernetes quantities and versions as numbers: the arithmetic of capacity checks.

CPU is counted in millicores and memory/storage in bytes, as integers, so sums of
many requests stay exact (``100m`` × 3 is exactly ``300m``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from choreoctl.errors import InputError

# The multiplier of each quantity suffix; the topology's value checks share it.
SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)$")


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a Kubernetes quantity (``500m`` → 0.5, ``1Gi`` → 1073741824)."""
    value = str(text).strip()
    match = _QUANTITY.match(value)
    if not match:
        raise InputError(f"{value!r} is not a Kubernetes quantity", hint="e.g. 500m, 2, 1Gi")
    number, suffix = match.groups()
    try:
        return Decimal(number) * SUFFIXES[suffix]
    except InvalidOperation as e:
        raise InputError(f"{value!r} is not a Kubernetes quantity") from e


def millicores(text: str | int | float) -> int:
    """CPU quantity in millicores, rounded up (as the scheduler does)."""
    return int((parse_quantity(text) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def bytes_of(text: str | int | float) -> int:
    """Memory or storage quantity in bytes, rounded up."""
    return int(parse_quantity(text).to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(mcpu: int) -> str:
    """Millicores for people: ``3500m`` → ``3.5``, ``250`` → ``250m``."""
    if mcpu % 1000 == 0:
        return str(mcpu // 1000)
    if abs(mcpu) >= 1000:
        return f"{mcpu / 1000:.2f}".rstrip("0").rstrip(".")
    return f"{mcpu}m"


def format_bytes(n: int) -> str:
    """Bytes for people in binary units (``1.5Gi``, ``512Mi``)."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f}".rstrip("0").rstrip(".") + unit
    return str(n)


def pod_requests(pod: Mapping[str, Any]) -> tuple[int, int]:
    """A pod's effective (millicores, bytes) requests, as the scheduler counts them.

    The sum over containers, at least the largest init container, plus the pod overhead.
    """
    spec = pod.get("spec") or {}

    def req(containers: Iterable[Mapping[str, Any]]) -> list[tuple[int, int]]:
        out = []
        for c in containers:
            r = (c.get("resources") or {}).get("requests") or {}
            out.append((millicores(r.get("cpu", 0)), bytes_of(r.get("memory", 0))))
        return out

    main = req(spec.get("containers") or [])
    init = req(spec.get("initContainers") or [])
    cpu = max([sum(c for c, _ in main)] + [c for c, _ in init])
    mem = max([sum(m for _, m in main)] + [m for _, m in init])
    overhead = spec.get("overhead") or {}
    cpu += millicores(overhead.get("cpu", 0))
    mem += bytes_of(overhead.get("memory", 0))
    return cpu, mem


_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` from ``v1.36.3``, ``1.32+``, ``v1.12.0-beta.1`` …"""
    match = _VERSION.search(text.strip())
    if not match:
        raise InputError(f"{text!r} is not a version", hint="expected e.g. v1.32.0")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def version_at_least(text: str, minimum: str) -> bool:
    """Whether version ``text`` is ``minimum`` or newer (pre-release tags ignored)."""
    return parse_version(text) >= parse_version(minimum)
