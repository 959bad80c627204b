"""Bring-your-own TLS inspection with certificates generated here."""

from __future__ import annotations

import datetime as dt

from choreoctl import pki
from choreoctl.checks.tlsinspect import chain_findings, inspect_byo

NOW = dt.datetime.now(dt.UTC)
CA = pki.make_ca("byo root")
DOMAINS = ["console.example.com", "api.example.com", "identity.example.com"]


def _leaf(names: list[str], **kw: object) -> pki.CertKey:
    return pki.issue_cert(CA, names[0] if names else "x", dns_names=names, server=True, **kw)  # type: ignore[arg-type]


def _messages(
    cert: pki.CertKey, key: bytes | None = None, ca: bytes | None = CA.cert_pem, domains=DOMAINS
):
    return [
        (f.message, f.fatal) for f in inspect_byo(cert.cert_pem, key or cert.key_pem, ca, domains)
    ]


def test_good_certificate_has_no_findings() -> None:
    assert _messages(_leaf(DOMAINS)) == []


def test_wrong_sans_are_named() -> None:
    found = _messages(_leaf(["console.example.com", "other.example.com"]))
    assert len(found) == 1
    msg, fatal = found[0]
    assert fatal
    assert "api.example.com" in msg and "identity.example.com" in msg
    assert "other.example.com" in msg  # what the certificate has


def test_data_plane_needs_the_wildcard_itself() -> None:
    wild = ["*.apps.example.com"]
    assert _messages(_leaf(wild), domains=wild) == []
    found = _messages(_leaf(["x.apps.example.com"]), domains=wild)
    assert found and "*.apps.example.com" in found[0][0]


def test_key_mismatch() -> None:
    other = _leaf(DOMAINS)
    found = _messages(_leaf(DOMAINS), key=other.key_pem)
    assert ("the private key does not belong to the certificate", True) in found


def test_expired_fails_and_near_expiry_warns() -> None:
    old = _leaf(
        DOMAINS, not_before=NOW - dt.timedelta(days=60), not_after=NOW - dt.timedelta(days=1)
    )
    found = _messages(old)
    assert any("expired on" in m and fatal for m, fatal in found)
    soon = _leaf(DOMAINS, days=10)
    found = _messages(soon)
    assert len(found) == 1 and "expires in" in found[0][0] and not found[0][1]


def test_chain_against_the_wrong_ca_fails() -> None:
    other = pki.make_ca("someone else")
    found = _messages(_leaf(DOMAINS), ca=other.cert_pem)
    assert any("issued" in m and fatal for m, fatal in found)


def test_chain_through_an_intermediate_in_the_bundle() -> None:
    # An intermediate CA (issued by the root, itself a CA) between root and leaf.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    root_key = serialization.load_pem_private_key(CA.key_pem, None)
    key = ec.generate_private_key(ec.SECP256R1())
    inter = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate")]))
        .issuer_name(CA.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    inter_pair = pki.CertKey(
        inter.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    leaf = pki.issue_cert(inter_pair, "api.example.com", dns_names=DOMAINS, server=True)
    bundle = leaf.cert_pem + inter_pair.cert_pem
    assert inspect_byo(bundle, leaf.key_pem, CA.cert_pem, DOMAINS) == []
    # Without the intermediate the chain cannot reach the root.
    found = chain_findings(pki.load_certs(leaf.cert_pem), pki.load_certs(CA.cert_pem))
    assert found and found[0].fatal
