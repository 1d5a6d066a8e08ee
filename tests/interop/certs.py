"""Test certificates, made at test time with ``cryptography``: a CA, a server and client certificates it
issued, a client certificate from another CA, an expired one, a revoked one and the CA's CRL. PEM files in
one session-wide directory (``tls_certs`` fixture); RSA keys, which every profile's TLS 1.2 suites need."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certs:
    directory: Path
    ca: Path  # the CA every test peer trusts
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA nobody trusts
    other_client_cert: Path
    other_client_key: Path
    other_server_cert: Path
    other_server_key: Path
    expired_client_cert: Path
    expired_client_key: Path
    revoked_client_cert: Path
    revoked_client_key: Path
    crl: Path  # the CA's CRL: revoked_client is on it


_NOW = datetime.datetime.now(datetime.UTC)
_DAY = datetime.timedelta(days=1)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aiodicom tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca(common_name: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - _DAY)
        .not_valid_after(_NOW + 30 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    ca: tuple[x509.Certificate, rsa.RSAPrivateKey],
    *,
    server: bool,
    expired: bool = False,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    ca_cert, ca_key = ca
    start, end = (_NOW - 10 * _DAY, _NOW - 2 * _DAY) if expired else (_NOW - _DAY, _NOW + 30 * _DAY)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                if server
                else [ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: rsa.RSAPrivateKey | None) -> None:
    (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )


def make_certs(directory: Path) -> Certs:
    """Write every test certificate and key into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("aiodicom test CA")
    other = _ca("another CA")
    _write(directory, "ca", ca[0], None)
    _write(directory, "other-ca", other[0], None)
    _write(directory, "server", *_leaf("aiodicom test server", ca, server=True))
    _write(directory, "client", *_leaf("aiodicom test client", ca, server=False))
    _write(directory, "other-client", *_leaf("client of another CA", other, server=False))
    _write(directory, "other-server", *_leaf("server of another CA", other, server=True))
    _write(directory, "expired-client", *_leaf("expired client", ca, server=False, expired=True))
    revoked = _leaf("revoked client", ca, server=False)
    _write(directory, "revoked-client", *revoked)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca[0].subject)
        .last_update(_NOW - _DAY)
        .next_update(_NOW + 30 * _DAY)
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked[0].serial_number)
            .revocation_date(_NOW - _DAY)
            .build()
        )
        .sign(ca[1], hashes.SHA256())
    )
    (directory / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    d = directory
    return Certs(
        directory=d,
        ca=d / "ca.crt",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        client_cert=d / "client.crt",
        client_key=d / "client.key",
        other_ca=d / "other-ca.crt",
        other_client_cert=d / "other-client.crt",
        other_client_key=d / "other-client.key",
        other_server_cert=d / "other-server.crt",
        other_server_key=d / "other-server.key",
        expired_client_cert=d / "expired-client.crt",
        expired_client_key=d / "expired-client.key",
        revoked_client_cert=d / "revoked-client.crt",
        revoked_client_key=d / "revoked-client.key",
        crl=d / "ca.crl",
    )


_MADE: dict[str, Certs] = {}


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """The test certificates (made once per run, whichever module asks first)."""
    if "certs" not in _MADE:
        _MADE["certs"] = make_certs(tmp_path_factory.mktemp("tls-certs"))
    return _MADE["certs"]
