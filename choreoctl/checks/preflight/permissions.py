"""Permission checks: the installing identity may do everything the install will do.

One SelfSubjectAccessReview per (verb, resource, namespace) the install uses on a
cluster; the missing ones are listed, so an admin can grant exactly those.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from choreoctl.checks.framework import Category, Check, CheckContext, Outcome, failed, passed
from choreoctl.checks.preflight.needs import needs_cert_manager, plane_namespaces, planes_on
from choreoctl.topology.model import Topology

VERBS = ("get", "list", "create", "patch", "delete")


@dataclass(frozen=True)
class Access:
    """One permission: ``verb`` on ``group/resource`` (in ``namespace``, "" = cluster)."""

    verb: str
    resource: str
    group: str = ""
    namespace: str = ""

    def line(self) -> str:
        """``kubectl auth can-i`` style: ``create deployments.apps -n ns``."""
        res = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f" -n {self.namespace}" if self.namespace else " (cluster-wide)"
        return f"{self.verb} {res}{where}"


_NAMESPACED = (
    ("", "configmaps"),
    ("", "secrets"),
    ("", "services"),
    ("", "serviceaccounts"),
    ("", "persistentvolumeclaims"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
)
_CLUSTER = (
    ("", "namespaces"),
    ("rbac.authorization.k8s.io", "clusterroles"),
    ("rbac.authorization.k8s.io", "clusterrolebindings"),
)
_PLANE_CRS = ("environments", "dataplanes", "buildplanes", "observabilityplanes")


def required_access(topology: Topology, cluster: str) -> list[Access]:
    """Every permission the install needs on ``cluster``."""
    out: list[Access] = []
    for group, res in _CLUSTER:
        out += [Access(v, res, group) for v in VERBS]
    namespaces = plane_namespaces(topology, cluster)
    cert_manager = bool(needs_cert_manager(topology, cluster))
    for ns in namespaces:
        kinds = list(_NAMESPACED)
        if cert_manager and ns != topology.organization:
            kinds += [("cert-manager.io", "certificates"), ("cert-manager.io", "issuers")]
        out += [Access(v, res, group, ns) for group, res in kinds for v in VERBS]
    if topology.control.cluster == cluster:
        crd = "customresourcedefinitions"
        out += [Access(v, crd, "apiextensions.k8s.io") for v in ("get", "create", "patch")]
        out += [Access(v, "organizations", "openchoreo.dev") for v in VERBS]
        org = topology.organization
        out += [Access(v, r, "openchoreo.dev", org) for r in _PLANE_CRS for v in VERBS]
    if not planes_on(topology, cluster):
        return []
    return out


class RuleSet:
    """RBAC resource rules (from a SelfSubjectRulesReview), compiled once for matching.

    A cluster's ~150 permissions are matched against the same rules: sets make each
    match a few lookups instead of scanning every rule's lists.
    """

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self._rules = [
            (
                frozenset(rule.get("verbs") or ()),
                frozenset(rule.get("apiGroups") or ()),
                frozenset(rule.get("resources") or ()),
            )
            for rule in rules
            # limited to named objects: not enough to create or list
            if not rule.get("resourceNames")
        ]

    def allows(self, a: Access) -> bool:
        """Whether the rules grant ``a``."""
        return any(
            (a.verb in verbs or "*" in verbs)
            and (a.group in groups or "*" in groups)
            and (a.resource in resources or "*" in resources)
            for verbs, groups, resources in self._rules
        )


def rules_allow(rules: list[dict[str, Any]], a: Access) -> bool:
    """Whether RBAC resource rules (from a SelfSubjectRulesReview) grant ``a``."""
    return RuleSet(rules).allows(a)


async def _rules(ctx: CheckContext, namespace: str) -> tuple[list[dict[str, Any]], bool]:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    out = await ctx.kc.create(review)
    status = out.get("status") or {}
    return list(status.get("resourceRules") or []), bool(status.get("incomplete"))


async def check_permissions(ctx: CheckContext) -> Outcome:
    wanted = required_access(ctx.topology, ctx.name)
    if not wanted:
        return passed("no plane on this cluster")
    # One SelfSubjectRulesReview per namespace answers most questions at once (cluster
    # bindings show in every namespace); whatever it does not grant is asked again, one
    # authoritative SelfSubjectAccessReview each, so other authorizers are honoured.
    namespaces = sorted({a.namespace for a in wanted if a.namespace})
    reviews = await asyncio.gather(*(_rules(ctx, ns) for ns in namespaces))
    rules = {ns: RuleSet(found) for ns, (found, _) in zip(namespaces, reviews, strict=True)}
    cluster_rules = RuleSet(reviews[0][0] if reviews else [])
    unsure = [
        a for a in wanted if not (rules[a.namespace] if a.namespace else cluster_rules).allows(a)
    ]
    limit = asyncio.Semaphore(16)

    async def review(a: Access) -> bool:
        async with limit:
            return await ctx.kc.can_i(a.verb, a.resource, a.group, a.namespace or None)

    allowed = await asyncio.gather(*(review(a) for a in unsure))
    missing = [a.line() for a, ok in zip(unsure, allowed, strict=True) if not ok]
    if missing:
        return failed(f"{len(missing)} of {len(wanted)} permissions missing", missing)
    return passed(f"all {len(wanted)} permissions granted")


CHECKS: tuple[Check, ...] = (
    Check(
        "permissions",
        Category.permissions,
        "the current identity holds every permission the install uses",
        "use a cluster-admin context, or grant the listed verbs "
        "(`kubectl auth can-i VERB RESOURCE -n NAMESPACE` to verify)",
        check_permissions,
    ),
)
