"""choreoctl.pki: CAs, leaves, bundles and client-certificate checks with real certificates."""

from __future__ import annotations

import datetime as dt

import pytest

from choreoctl import pki
from choreoctl.errors import TrustError

NOW = dt.datetime.now(dt.UTC)


def test_issue_and_verify_client_cert() -> None:
    ca = pki.make_ca("agent-ca")
    leaf = pki.issue_cert(ca, "dp-1", client=True)
    pki.verify_client_cert(leaf.cert, [ca.cert])
    assert pki.cert_names(leaf.cert) == ["dp-1"]
    assert pki.not_after(leaf.cert) > NOW


def test_bundle_with_rotated_ca_accepts_both_generations() -> None:
    old, new = pki.make_ca("ca-old"), pki.make_ca("ca-new")
    bundle = pki.load_certs(pki.bundle_pem([old.cert, new.cert]))
    assert len(bundle) == 2
    for ca in (old, new):
        pki.verify_client_cert(pki.issue_cert(ca, "dp", client=True).cert, bundle)


def test_wrong_ca_is_refused_with_issuer_named() -> None:
    ca, other = pki.make_ca("right"), pki.make_ca("wrong")
    leaf = pki.issue_cert(other, "dp", client=True)
    with pytest.raises(TrustError, match="CN=wrong"):
        pki.verify_client_cert(leaf.cert, [ca.cert])


def test_same_subject_different_key_is_refused() -> None:
    ca, impostor = pki.make_ca("agent-ca"), pki.make_ca("agent-ca")
    leaf = pki.issue_cert(impostor, "dp", client=True)
    with pytest.raises(TrustError, match="not signed"):
        pki.verify_client_cert(leaf.cert, [ca.cert])


def test_expired_leaf_and_expired_ca_are_refused() -> None:
    ca = pki.make_ca("ca")
    old = pki.issue_cert(
        ca,
        "dp",
        client=True,
        not_before=NOW - dt.timedelta(days=10),
        not_after=NOW - dt.timedelta(days=1),
    )
    with pytest.raises(TrustError, match="not valid now"):
        pki.verify_client_cert(old.cert, [ca.cert])
    dead_ca = pki.make_ca(
        "dead", not_before=NOW - dt.timedelta(days=10), not_after=NOW - dt.timedelta(seconds=1)
    )
    leaf = pki.issue_cert(dead_ca, "dp", client=True)
    with pytest.raises(TrustError, match="expired"):
        pki.verify_client_cert(leaf.cert, [dead_ca.cert])


def test_server_only_certificate_is_not_a_client() -> None:
    ca = pki.make_ca("ca")
    leaf = pki.issue_cert(ca, "gw", server=True, dns_names=["gw"])
    with pytest.raises(TrustError, match="client authentication"):
        pki.verify_client_cert(leaf.cert, [ca.cert])


def test_names_and_hostname_matching() -> None:
    ca = pki.make_ca("ca")
    leaf = pki.issue_cert(
        ca,
        "gw",
        server=True,
        dns_names=["gw.example.com", "*.apps.example.com"],
        ip_addresses=["127.0.0.1"],
    )
    assert pki.cert_names(leaf.cert) == ["gw.example.com", "*.apps.example.com", "127.0.0.1"]
    assert pki.hostname_matches(leaf.cert, "GW.example.com.")
    assert pki.hostname_matches(leaf.cert, "a.apps.example.com")
    assert not pki.hostname_matches(leaf.cert, "a.b.apps.example.com")
    assert not pki.hostname_matches(leaf.cert, "other.example.com")


def test_fingerprint_and_bad_pem() -> None:
    ca = pki.make_ca("ca")
    fp = pki.fingerprint(ca.cert)
    assert len(fp) == 95 and fp.count(":") == 31
    assert fp != pki.fingerprint(pki.make_ca("ca").cert)
    with pytest.raises(TrustError, match="no PEM certificate"):
        pki.load_certs("hello")
    with pytest.raises(TrustError, match="cannot parse"):
        pki.load_certs(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(TrustError):
        pki.verify_client_cert(ca.cert, [])


def test_write_pair(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ca = pki.make_ca("ca")
    ca.write(tmp_path / "ca.crt", tmp_path / "ca.key")
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0
    assert pki.load_certs((tmp_path / "ca.crt").read_bytes())[0] == ca.cert
