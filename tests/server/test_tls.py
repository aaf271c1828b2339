"""The development CA and server certificate: created once, reused, renewed when expired."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from thalovant_server.tls import ensure_dev_tls


def test_ca_and_certificate_are_created_with_private_keys_0600(tmp_path: Path) -> None:
    files = ensure_dev_tls(tmp_path)
    assert files.ca_cert == tmp_path / "ca.pem"
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


def test_later_starts_reuse_and_expired_certificates_are_renewed(tmp_path: Path) -> None:
    first = ensure_dev_tls(tmp_path)
    ca_bytes, cert_bytes = first.ca_cert.read_bytes(), first.cert.read_bytes()
    ensure_dev_tls(tmp_path)
    assert first.ca_cert.read_bytes() == ca_bytes and first.cert.read_bytes() == cert_bytes
    ca = x509.load_pem_x509_certificate(ca_bytes)
    ca_key = serialization.load_pem_private_key((tmp_path / "ca-key.pem").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(past - dt.timedelta(days=1))
        .not_valid_after(past)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    first.cert.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    ensure_dev_tls(tmp_path)
    renewed = x509.load_pem_x509_certificate(first.cert.read_bytes())
    assert renewed.not_valid_after_utc > dt.datetime.now(dt.UTC)
    assert first.ca_cert.read_bytes() == ca_bytes


def test_a_tls_client_trusting_ca_pem_accepts_the_server(tmp_path: Path) -> None:
    files = ensure_dev_tls(tmp_path, extra_names=("hub.internal",))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.cert, files.key)
    client_ctx = ssl.create_default_context(cafile=str(files.ca_cert))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.recv(2) == b"ok"
    thread.join(10)
    listener.close()
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hub.internal" in san.get_values_for_type(x509.DNSName)
