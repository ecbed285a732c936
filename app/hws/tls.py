"""TLS credentials for the server (`--tls-cert`/`--tls-key`) and for clients (`--ca-cert`).

PEM files are read and checked here, at startup, because gRPC only reports a
bad certificate or key (or a key that belongs to another certificate) when a
handshake fails, with an error that names neither file.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read TLS {what} {path}: {exc.strerror or exc}") from None


def _read_certificates(path: str, what: str) -> bytes:
    data = _read(path, what)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError(f"TLS {what} {path} holds no PEM certificate ('-----BEGIN CERTIFICATE-----')")
    return data


def server_credentials(cert_path: str, key_path: str) -> grpc.ServerCredentials:
    """Credentials for add_secure_port from a PEM certificate chain (leaf first) and its PEM private key."""
    chain = _read_certificates(cert_path, "certificate")
    key = _read(key_path, "private key")
    # PKCS#8 ("PRIVATE KEY") as well as the RSA and EC forms ("RSA PRIVATE KEY", "EC PRIVATE KEY").
    if b"-----BEGIN " not in key or b"PRIVATE KEY-----" not in key:
        raise ValueError(f"TLS private key {key_path} holds no PEM private key ('-----BEGIN ... PRIVATE KEY-----')")
    if b"ENCRYPTED" in key:
        raise ValueError(f"TLS private key {key_path} is encrypted; gRPC needs an unencrypted key")
    # The stdlib parses both with OpenSSL now: a corrupt PEM or a key that does not belong to the certificate
    # fails here with both paths named, instead of as a handshake error on the first client connection.
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_path, key_path, password=_no_password)
    except ssl.SSLError as exc:
        reason = "the key does not match the certificate" if "MISMATCH" in str(exc) else f"OpenSSL: {exc}"
        raise ValueError(f"TLS certificate {cert_path} and private key {key_path} cannot be used: {reason}") from None
    return grpc.ssl_server_credentials([(key, chain)])


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise ValueError("encrypted private keys are not supported")


def channel_credentials(ca_path: str | None) -> grpc.ChannelCredentials:
    """Client credentials that trust the CA in `ca_path` (PEM), or the system roots when None."""
    roots = _read_certificates(ca_path, "CA certificate") if ca_path else None
    return grpc.ssl_channel_credentials(root_certificates=roots)
