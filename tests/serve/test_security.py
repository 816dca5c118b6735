"""Secure by default: loopback bind, refusal of an open non-loopback bind, --insecure, TLS."""

from __future__ import annotations

import datetime
import logging

import httpx
import pytest

from .conftest import PENGUIN_ROW


def test_loopback_detection():
    from fulcrum.serve import is_loopback

    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com"):
        assert not is_loopback(host), host


def test_non_loopback_bind_needs_keys_or_insecure(registry, caplog):
    from fulcrum.errors import ServeError
    from fulcrum.serve import KeyStore, ServeSettings, check_bind

    check_bind(ServeSettings(), registry)  # 127.0.0.1 by default
    with pytest.raises(ServeError, match="Refusing to bind 0.0.0.0.*fulcrum keys create"):
        check_bind(ServeSettings(host="0.0.0.0"), registry)
    with caplog.at_level(logging.WARNING, logger="fulcrum.serve"):
        check_bind(ServeSettings(host="0.0.0.0", insecure=True), registry)
    assert any("INSECURE" in r.getMessage() for r in caplog.records)
    rec, _ = KeyStore(registry).create("predict")
    check_bind(ServeSettings(host="0.0.0.0"), registry)
    KeyStore(registry).revoke(rec["id"])
    with pytest.raises(ServeError):
        check_bind(ServeSettings(host="0.0.0.0"), registry)


def test_cli_refuses_open_public_bind(registry, capsys):
    from fulcrum.cli import main

    rc = main(["serve", "penguins", "--host", "0.0.0.0", "--registry", str(registry.root)])
    assert rc == 1 and "Refusing to bind" in capsys.readouterr().err
    rc = main(["serve", "nosuchmodel", "--registry", str(registry.root)])
    assert rc == 1 and "nosuchmodel" in capsys.readouterr().err


def test_settings_validation():
    from fulcrum.errors import ConfigError
    from fulcrum.serve import BatchSpec, ServeSettings

    with pytest.raises(ConfigError, match="max_batch_size"):
        BatchSpec(max_batch_size=0)
    with pytest.raises(ConfigError, match="Did you mean 'max_queue'"):
        BatchSpec.from_dict({"max_queu": 3})
    with pytest.raises(ConfigError, match="both"):
        ServeSettings(ssl_certfile="cert.pem")
    assert ServeSettings(batch={"max_batch_size": 8}).batch.max_batch_size == 8


@pytest.fixture
def self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_tls_round_trip(serve, self_signed):
    import ssl

    srv = serve(ssl=self_signed)
    assert srv.url.startswith("https://")
    ctx = ssl.create_default_context(cafile=self_signed[0])
    with httpx.Client(base_url=srv.url, verify=ctx, timeout=30) as c:
        r = c.post("/v1/models/penguins/predict", json={"records": [PENGUIN_ROW]})
        assert r.status_code == 200 and r.json()["predictions"]
    with httpx.Client(base_url=srv.url, timeout=30) as c, pytest.raises(httpx.ConnectError):
        c.get("/v2/health/live")  # an untrusted certificate is refused by a verifying client
