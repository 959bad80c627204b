"""Certificates for the gateway/agent trust: make CAs, issue leaves, parse and verify bundles.

Used by the runtime (the gateway verifies agent certificates against each plane CR's
``clientCA`` bundle) and by the install engine's trust step (it makes the gateway CA and
agent certificates when cert-manager is not the issuer). Keys are ECDSA P-256: fast to
make in tests and accepted everywhere; verification accepts RSA and ECDSA alike, since
cert-manager issues RSA by default. Every parse or verification failure is a
:class:`~choreoctl.errors.TrustError` that says what was wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from choreoctl.errors import TrustError

if TYPE_CHECKING:
    from cryptography import x509

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class CertKey:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        """The parsed certificate."""
        return load_certs(self.cert_pem)[0]

    def write(self, cert_path: str | Path, key_path: str | Path) -> None:
        """Write the pair to files; the key file is made readable by the owner only."""
        Path(cert_path).write_bytes(self.cert_pem)
        key = Path(key_path)
        key.touch(mode=0o600, exist_ok=True)
        key.write_bytes(self.key_pem)


def _new_key() -> object:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(pem: bytes) -> object:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise TrustError("cannot parse the CA private key", hint="pass a PEM key") from e


def make_ca(
    common_name: str,
    *,
    days: int = 3650,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> CertKey:
    """A self-signed CA certificate (path length 0) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = _new_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = not_before or _now() - dt.timedelta(minutes=5)
    end = not_after or start + dt.timedelta(days=days)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives import serialization

    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue_cert(
    ca: CertKey,
    common_name: str,
    *,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    server: bool = False,
    client: bool = False,
    days: int = 365,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> CertKey:
    """A leaf certificate signed by ``ca`` for server and/or client authentication."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = ca.cert
    ca_key = _load_key(ca.key_pem)
    key = _new_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    start = not_before or _now() - dt.timedelta(minutes=5)
    end = not_after or start + dt.timedelta(days=days)
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def load_certs(pem: bytes | str, source: str = "certificate bundle") -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; a bundle without one is a :class:`TrustError`."""
    from cryptography import x509

    data = pem.encode() if isinstance(pem, str) else pem
    if _PEM_BEGIN not in data:
        raise TrustError(
            f"{source}: no PEM certificate found",
            hint="the value must hold one or more '-----BEGIN CERTIFICATE-----' blocks",
        )
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise TrustError(f"{source}: cannot parse PEM: {e}", hint="check the PEM text") from e


def load_der(der: bytes) -> x509.Certificate:
    """A certificate from DER bytes (what a TLS peer presents)."""
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise TrustError(f"cannot parse the peer certificate: {e}") from e


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated upper-case hex (as openssl prints it)."""
    from cryptography.hazmat.primitives import serialization

    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def not_after(cert: x509.Certificate) -> dt.datetime:
    """When the certificate expires (UTC)."""
    return cert.not_valid_after_utc


def cert_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses of the SAN extension, else the common name."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [str(cn.value) for cn in cns]
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    return names + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def hostname_matches(cert: x509.Certificate, host: str) -> bool:
    """Whether ``host`` is one of the certificate's names (``*.`` wildcards: one label)."""
    return any(name_covers(name, host) for name in cert_names(cert))


def name_covers(name: str, host: str) -> bool:
    """Whether certificate name ``name`` covers ``host``: equal, or a ``*.`` wildcard for
    exactly one label (case and a trailing dot ignored)."""
    name, host = name.lower().rstrip("."), host.lower().rstrip(".")
    if name == host:
        return True
    return name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]


def _is_ca(cert: x509.Certificate) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.issuer == cert.subject  # v1 self-signed roots


def _client_usage_ok(cert: x509.Certificate) -> bool:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return (
        ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
    )


def verify_client_cert(
    leaf: x509.Certificate,
    bundle: Sequence[x509.Certificate],
    *,
    now: dt.datetime | None = None,
) -> None:
    """Check that ``leaf`` was issued by a CA of ``bundle`` and that both are valid now.

    Every certificate of the bundle is a trust anchor (as with Go's ``x509.Verify`` and
    the bundle as roots), so a bundle holding the old and the new CA during a rotation
    accepts agents of either; an intermediate CA works when it is in the bundle.
    Raises :class:`TrustError` naming the reason.
    """
    when = now or _now()
    if not bundle:
        raise TrustError("the clientCA bundle is empty")
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise TrustError(
            f"certificate {leaf.subject.rfc4514_string()} is not valid now "
            f"(valid {leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
            f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ})",
            hint="renew the agent certificate",
        )
    if not _client_usage_ok(leaf):
        raise TrustError("certificate is not for client authentication (extendedKeyUsage)")
    issuers = [c for c in bundle if _is_ca(c) and issued_by(leaf, c)]
    if any(c.not_valid_before_utc <= when <= c.not_valid_after_utc for c in issuers):
        return
    if issuers:
        raise TrustError(
            f"the CA that issued {leaf.subject.rfc4514_string()} has expired",
            hint="rotate the agent CA and put the new CA in spec.clusterAgent.clientCA",
        )
    raise TrustError(
        f"certificate {leaf.subject.rfc4514_string()} (issuer "
        f"{leaf.issuer.rfc4514_string()}) is not signed by any CA of the clientCA bundle",
        hint="set spec.clusterAgent.clientCA to the CA that issued the agent certificate",
    )


def bundle_pem(certs: Iterable[x509.Certificate]) -> bytes:
    """A PEM bundle of ``certs``."""
    from cryptography.hazmat.primitives import serialization

    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` signed ``cert`` (names match and the signature verifies).

    Used to verify client certificates, by the trust step to decide whether an existing
    leaf still belongs to the current CA, and to walk bring-your-own chains.
    """
    from cryptography.exceptions import InvalidSignature

    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


__all__ = [
    "CertKey",
    "bundle_pem",
    "cert_names",
    "fingerprint",
    "hostname_matches",
    "issue_cert",
    "issued_by",
    "load_certs",
    "load_der",
    "make_ca",
    "not_after",
    "verify_client_cert",
]
