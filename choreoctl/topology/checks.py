"""Value checks shared by the topology schema and rules: DNS names, quantities, images.

Each check returns an error text (what is wrong, for the problem's message) or "" when
the value is fine, so callers can report it with a location.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from choreoctl.checks.quantity import SUFFIXES

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REGISTRY = re.compile(
    r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$"
)


def dns_label(value: str) -> str:
    """RFC 1123 label: Kubernetes names, namespaces, DNS prefixes."""
    if _LABEL.match(value):
        return ""
    if value.lower() != value:
        return "has upper-case letters"
    if len(value) > 63:
        return "is longer than 63 characters"
    return (
        "is not a DNS label (lower-case letters, digits and '-', starting and ending alphanumeric)"
    )


def dns_name(value: str) -> str:
    """RFC 1123 subdomain: host names like ``console.example.com``."""
    if not value:
        return "is empty"
    if len(value) > 253:
        return "is longer than 253 characters"
    for label in value.split("."):
        problem = dns_label(label) if label else "has an empty label"
        if problem:
            return (
                f"is not a valid DNS name: {label!r} {problem}"
                if label
                else ("is not a valid DNS name: an empty label ('..', or a dot at an end)")
            )
    return ""


def wildcard_domain(value: str) -> str:
    """A wildcard domain ``*.x.y``: the data plane's apps domain."""
    if not value.startswith("*."):
        return "is not a wildcard domain"
    rest = value[2:]
    if rest.count(".") < 1:
        return "needs at least two labels after '*.'"
    problem = dns_name(rest)
    return f"after '*.' {problem}" if problem else ""


def host_or_ip(value: str) -> str:
    """A DNS name or an IP address (what agents dial, extra SANs)."""
    try:
        ipaddress.ip_address(value)
        return ""
    except ValueError:
        return dns_name(value)


def ip_address(value: str) -> str:
    """An IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
        return ""
    except ValueError:
        return "is not an IP address"


def quantity(value: str) -> Decimal | None:
    """The value of a Kubernetes quantity (``500m``, ``2Gi``, ``1.5``); None if invalid.

    Stricter than :func:`choreoctl.checks.quantity.parse_quantity`, which reads what a
    cluster reports: a topology takes no exponents and no ``n``/``u`` suffixes.
    """
    match = _QUANTITY.match(value)
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * SUFFIXES[match.group(2) or ""]
    except InvalidOperation:  # pragma: no cover - the regex admits only decimals
        return None


def image_tag(value: str) -> str:
    """An OCI image tag."""
    return "" if _TAG.match(value) else "is not a valid image tag"


def image_digest(value: str) -> str:
    """A ``sha256:<64 hex>`` digest."""
    return "" if _DIGEST.match(value) else "is not a sha256 digest"


def registry(value: str) -> str:
    """A registry host with optional port and path, without a scheme."""
    if "://" in value:
        return "has a scheme; write the host only"
    return "" if _REGISTRY.match(value) else "is not a registry host[:port][/path]"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`did you mean "x"?` for the closest option, or a list of the valid ones."""
    options = list(options)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    close = close or [o for o in options if word and (word in o or o in word)][:1]
    if close:
        return f'did you mean "{close[0]}"?'
    return "valid: " + ", ".join(options)
