"""The trust step's pure parts: gateway SANs, re-use of valid Secrets, public-only PEM."""

from __future__ import annotations

import datetime as dt

import pytest

from choreoctl import pki
from choreoctl.errors import TrustError
from choreoctl.topology.model import (
    Cluster,
    Gateway,
    Plane,
    PlaneKind,
    TLSIssuer,
    Topology,
    TopologyType,
)
from choreoctl.trust.distribute import public_ca_pem
from choreoctl.trust.gateway_ca import _valid_ca, _valid_leaf
from choreoctl.trust.names import agent_planes, gateway_sans


def topo(external: str = "gw.example.com", extra: tuple[str, ...] = ()) -> Topology:
    return Topology(
        name="t",
        type=TopologyType.multi_cluster,
        clusters=(Cluster("a", "ctx-a"), Cluster("b", "ctx-b")),
        planes=(
            Plane(PlaneKind.control, "cp", "a", "cp-ns"),
            Plane(PlaneKind.data, "us", "b", "dp-ns", public_virtual_host="us.example.com"),
            Plane(PlaneKind.observability, "default", "a", "obs-ns"),
        ),
        gateway=Gateway(external_host=external, extra_sans=extra),
        trust_issuer=TLSIssuer.choreoctl,
    )


def test_gateway_sans_cover_services_external_host_and_loopback() -> None:
    dns, ips = gateway_sans(topo(extra=("10.0.0.7", "gw2.example.com")))
    assert dns == [
        "cluster-gateway",
        "cluster-gateway.cp-ns",
        "cluster-gateway.cp-ns.svc",
        "cluster-gateway.cp-ns.svc.cluster.local",
        "gw.example.com",
        "gw2.example.com",
        "localhost",
    ]
    assert ips == ["127.0.0.1", "10.0.0.7"]


def test_gateway_sans_ip_external_host_goes_to_ip_addresses() -> None:
    dns, ips = gateway_sans(topo(external="192.0.2.10"))
    assert "192.0.2.10" in ips and "192.0.2.10" not in dns


def test_agent_planes_excludes_control() -> None:
    assert [p.name for p in agent_planes(topo())] == ["us", "default"]


def _secret(leaf: pki.CertKey, ca: pki.CertKey) -> dict[str, bytes]:
    return {"tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem, "ca.crt": ca.cert_pem}


def test_valid_leaf_accepts_matching_and_refuses_wrong_ca_names_cn_expiry() -> None:
    ca, other = pki.make_ca("ca"), pki.make_ca("other")
    names = gateway_sans(topo())
    good = pki.issue_cert(ca, "cluster-gateway", dns_names=names[0], ip_addresses=names[1])
    assert _valid_leaf(_secret(good, ca), ca.cert, names=names, common_name="cluster-gateway")
    # issued by another CA
    assert not _valid_leaf(_secret(good, ca), other.cert, names=names)
    # a name the agents dial is missing
    short = pki.issue_cert(ca, "cluster-gateway", dns_names=names[0][:-1])
    assert not _valid_leaf(_secret(short, ca), ca.cert, names=names)
    # agent identity must be the planeID
    assert not _valid_leaf(_secret(good, ca), ca.cert, common_name="us")
    # ca.crt must name the current CA
    assert not _valid_leaf(_secret(good, other), ca.cert)
    # about to expire: re-issue
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    expiring = pki.issue_cert(ca, "x", not_after=soon)
    assert not _valid_leaf(_secret(expiring, ca), ca.cert)
    assert not _valid_leaf(None, ca.cert)


def test_valid_ca_needs_key_and_time_left() -> None:
    ca = pki.make_ca("ca")
    data = {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem}
    assert _valid_ca(data) is not None
    assert _valid_ca({"tls.crt": ca.cert_pem}) is None
    old = pki.make_ca("old", not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    assert _valid_ca({"tls.crt": old.cert_pem, "tls.key": old.key_pem}) is None


def test_public_ca_pem_never_carries_a_key() -> None:
    ca = pki.make_ca("ca")
    mixed = ca.cert_pem + ca.key_pem  # a careless bundle with the key inside
    out = public_ca_pem({"ca.crt": mixed}, "test")
    assert b"PRIVATE KEY" not in out
    assert pki.fingerprint(pki.load_certs(out)[0]) == pki.fingerprint(ca.cert)
    out = public_ca_pem({"tls.crt": ca.cert_pem, "tls.key": ca.key_pem}, "test")
    assert b"PRIVATE KEY" not in out


def test_public_ca_pem_refuses_non_pem() -> None:
    with pytest.raises(TrustError, match="no PEM certificate"):
        public_ca_pem({"ca.crt": b"garbage"}, "Secret x/y")


async def test_rotate_refuses_byo_issuer_before_touching_anything() -> None:
    import dataclasses

    from choreoctl.trust.rotate import rotate_gateway_ca

    byo = dataclasses.replace(topo(), trust_issuer=TLSIssuer.byo)
    with pytest.raises(TrustError, match="issuer byo"):
        await rotate_gateway_ca(byo, {}, timeout=1)
