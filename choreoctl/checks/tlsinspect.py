"""Inspection of bring-your-own TLS material: key match, names, expiry, chain.

Pure functions over PEM bytes (the files or Secret a topology names), used by the
preflight ``byo-tls`` check and by doctor's certificate checks. Generic parsing and
fingerprints come from :mod:`choreoctl.pki`; what it lacks for inspection lives here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from choreoctl import pki
from choreoctl.errors import TrustError

if TYPE_CHECKING:
    from cryptography import x509

EXPIRY_WARN_DAYS = 30


@dataclass(frozen=True)
class Finding:
    """One problem found in TLS material; ``fatal`` False is a warning."""

    message: str
    fatal: bool = True


def key_matches(cert: x509.Certificate, key_pem: bytes) -> bool:
    """Whether the private key in ``key_pem`` belongs to ``cert``."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise TrustError(
            f"cannot parse the private key: {e}", hint="pass an unencrypted PEM key"
        ) from e
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki))


def covers(cert: x509.Certificate, domain: str) -> bool:
    """Whether the certificate serves ``domain``; a wildcard domain needs that wildcard."""
    if domain.startswith("*."):
        return domain.lower() in (n.lower() for n in pki.cert_names(cert))
    return pki.hostname_matches(cert, domain)


def expiry_findings(
    cert: x509.Certificate, what: str, now: dt.datetime | None = None
) -> list[Finding]:
    """Expired (fatal), not yet valid (fatal) or expiring within 30 days (warning)."""
    when = now or dt.datetime.now(dt.UTC)
    end = pki.not_after(cert)
    if end <= when:
        return [Finding(f"{what} expired on {end:%Y-%m-%d}")]
    if cert.not_valid_before_utc > when:
        return [Finding(f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")]
    days = (end - when).days
    if days < EXPIRY_WARN_DAYS:
        return [Finding(f"{what} expires in {days} day(s) ({end:%Y-%m-%d})", fatal=False)]
    return []


def chain_findings(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Walk leaf → intermediates → a root of ``roots`` (or a self-signed end of ``chain``)."""
    when = now or dt.datetime.now(dt.UTC)
    pool = list(chain[1:]) + list(roots)
    cert = chain[0]
    for _ in range(10):
        anchor = next((r for r in roots if pki.issued_by(cert, r)), None)
        if anchor is not None:
            return expiry_findings(anchor, "the root CA", when) if anchor is not cert else []
        if cert.issuer == cert.subject and pki.issued_by(cert, cert):
            if roots:
                return [
                    Finding(f"the chain ends at {cert.subject.rfc4514_string()}, not in caFile")
                ]
            return [
                Finding("no caFile given: the chain's self-signed root is trusted as is", False)
            ]
        parent = next((c for c in pool if c is not cert and pki.issued_by(cert, c)), None)
        if parent is None:
            if not roots:
                return [Finding("no caFile given and the chain is incomplete; not verified", False)]
            return [
                Finding(
                    f"no certificate in the chain or caFile issued {cert.subject.rfc4514_string()}"
                )
            ]
        cert = parent
    return [Finding("the chain is longer than 10 certificates")]


def inspect_byo(
    cert_pem: bytes,
    key_pem: bytes,
    ca_pem: bytes | None,
    domains: Sequence[str],
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Every finding for one plane's certificate, key, CA bundle and required domains."""
    chain = pki.load_certs(cert_pem, "the certificate")
    leaf = chain[0]
    findings: list[Finding] = []
    if not key_matches(leaf, key_pem):
        findings.append(Finding("the private key does not belong to the certificate"))
    missing = [d for d in domains if not covers(leaf, d)]
    if missing:
        names = ", ".join(pki.cert_names(leaf)) or "none"
        findings.append(Finding(f"SANs do not cover {', '.join(missing)} (has: {names})"))
    findings += expiry_findings(leaf, "the certificate", now)
    roots = pki.load_certs(ca_pem, "the CA bundle") if ca_pem else []
    findings += chain_findings(chain, roots, now)
    return findings
