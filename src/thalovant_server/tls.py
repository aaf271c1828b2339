"""The development certificate authority and the server certificate (EC P-256).

On first start the server writes ``DATA_DIR/ca.pem`` (trust it with ``SSL_CERT_FILE``) and
``ca-key.pem``, then a server certificate for ``localhost``, ``127.0.0.1`` and
``::1`` (plus the configured public host) signed by that CA. Later starts reuse both; either is
regenerated when it has expired (or is about to) or when a needed host name is missing. Every
file is mode 0600 in the data directory (0700): the certificates are public, but nothing else
needs to read them than the server's own user.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from thalovant.files import write_private
from thalovant_server.files import ensure_private_dir

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
CA_LIFETIME = dt.timedelta(days=3650)
CERT_LIFETIME = dt.timedelta(days=397)
RENEW_MARGIN = dt.timedelta(days=1)


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the PEM files uvicorn and the clients need."""

    ca_cert: Path
    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san_entries(names: tuple[str, ...]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def _still_valid(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - RENEW_MARGIN > _now() and cert.not_valid_before_utc <= _now()


def _load_ca(ca_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    if not (ca_path.is_file() and key_path.is_file()):
        return None
    try:
        cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _still_valid(cert):
        return None
    return cert, key


def _new_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Thalovant self-hosted"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Thalovant development CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_cert_usable(path: Path, ca: x509.Certificate, names: tuple[str, ...]) -> bool:
    if not path.is_file():
        return False
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    if cert.issuer != ca.subject or not _still_valid(cert):
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    present = set(san)
    return all(entry in present for entry in _san_entries(names))


def _new_server_cert(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: tuple[str, ...]
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(_san_entries(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def ensure_dev_tls(data_dir: Path, extra_names: tuple[str, ...] = ()) -> TLSFiles:
    """Create (or reuse) the development CA and a server certificate in ``data_dir``.

    ``extra_names`` adds host names or IP addresses (e.g. the public host) to the default
    ``localhost``/``127.0.0.1``/``::1``. Idempotent; safe to call on every start.
    """
    ensure_private_dir(data_dir)
    names = tuple(dict.fromkeys((*DEFAULT_NAMES, *(n for n in extra_names if n and n not in {"0.0.0.0", "::"}))))
    ca_path, ca_key_path = data_dir / CA_FILE, data_dir / CA_KEY_FILE
    cert_path, key_path = data_dir / CERT_FILE, data_dir / KEY_FILE
    loaded = _load_ca(ca_path, ca_key_path)
    if loaded is None:
        ca, ca_key = _new_ca()
        write_private(ca_key_path, _key_pem(ca_key))
        write_private(ca_path, ca.public_bytes(serialization.Encoding.PEM))
    else:
        ca, ca_key = loaded
    if not (_server_cert_usable(cert_path, ca, names) and key_path.is_file()):
        cert, key = _new_server_cert(ca, ca_key, names)
        write_private(key_path, _key_pem(key))
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return TLSFiles(ca_cert=ca_path, cert=cert_path, key=key_path)
