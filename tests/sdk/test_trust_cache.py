"""One TLS context per CA bundle: shared by every connect, loaded again when the file changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from thalovant.trust import TRUST_VARIABLES, TrustStoreError, client_ssl_context
from thalovant_server.tls import ensure_dev_tls


def test_a_bundle_is_loaded_once_and_again_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_dev_tls(tmp_path / "one").ca_cert
    second = ensure_dev_tls(tmp_path / "two").ca_cert
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(first.read_bytes())
    for variable in TRUST_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))

    context = client_ssl_context()
    assert client_ssl_context() is context
    assert client_ssl_context(str(bundle)) is context  # the same file, however it is named
    assert len(context.get_ca_certs()) == 1

    bundle.write_bytes(first.read_bytes() + second.read_bytes())
    os.utime(bundle, ns=(1, 1))  # a changed file, even within the clock's resolution
    reloaded = client_ssl_context()
    assert reloaded is not context and len(reloaded.get_ca_certs()) == 2
    assert client_ssl_context() is reloaded

    bundle.unlink()
    with pytest.raises(TrustStoreError, match="SSL_CERT_FILE"):
        client_ssl_context()
