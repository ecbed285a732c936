"""A throwaway certificate authority and a server certificate signed by it, made with the openssl command."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Pki:
    ca: Path  # the CA's certificate, for clients' --ca-cert
    cert: Path  # the server's certificate, signed by the CA
    key: Path  # its key
    other_key: Path  # a key that matches no certificate


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(folder: Path, subject_alt_names: str) -> Pki:
    """A CA and a server certificate (CN=localhost) for `subject_alt_names` ("DNS:localhost,IP:127.0.0.1")."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command (apt-get install openssl)")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca_ext = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    _openssl(
        "req", "-x509", *ec, *ca_ext, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=CA", cwd=folder
    )
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=folder)
    (folder / "ext.cnf").write_text(f"subjectAltName={subject_alt_names}\nextendedKeyUsage=serverAuth\n")
    sign = ("-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf")
    _openssl("x509", "-req", *sign, "-in", "server.csr", "-out", "server.pem", cwd=folder)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "other.key", cwd=folder)
    return Pki(
        ca=folder / "ca.pem", cert=folder / "server.pem", key=folder / "server.key", other_key=folder / "other.key"
    )
