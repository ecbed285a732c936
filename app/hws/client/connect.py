"""Why a server cannot be reached, in one line that names the cause and the setting that fixes it.

gRPC reports every failed connection as UNAVAILABLE; its details (the last connection error) tell a
TLS mismatch, an untrusted or misnamed certificate and an HTTP/1 port apart from a server that is
not there. An ambiguous failure (a plaintext client's socket closed by a TLS server) is probed once
more with the other security. The settings are named the way the caller spells them (`Names`).
"""

from __future__ import annotations

import dataclasses
import re

import grpc

from hws.client.channel import DEFAULT_PORT, close_after_polling, first_settled_state, make_channel, with_default_port
from hws.client.errors import ConnectError


@dataclasses.dataclass(frozen=True)
class Names:
    """How the caller spells the address and TLS settings: hws-client's flags, or the API's parameters."""

    addr: str = "--addr"
    tls: str = "--tls"
    ca_cert: str = "--ca-cert"
    ca_file: str = "--ca-cert FILE"


CLI_NAMES = Names()
API_NAMES = Names(addr="address", tls="tls=True", ca_cert="ca_cert", ca_file="ca_cert=PATH")


def check_address(address: str, names: Names = CLI_NAMES) -> str:
    """The address with the default port; raises ConnectError for a URL or a port out of range, before dialling."""
    scheme = re.match(r"(https?)://", address, re.IGNORECASE)
    if scheme:
        hint = f" and add {names.tls}" if scheme[1].lower() == "https" else ""
        rest = address[scheme.end() :].rstrip("/")
        raise ConnectError(f"{address} is a URL; {names.addr} takes host:port: drop '{scheme[0]}'{hint} ({rest})")
    address = with_default_port(address)
    port = re.search(r":([^:\]]*)$", address)
    uri = address.startswith(("unix:", "dns:", "ipv4:", "ipv6:"))
    if port is not None and not uri and not (port[1].isdigit() and 0 < int(port[1]) < 65536):
        raise ConnectError(f"cannot connect to {address}: the port must be a number from 1 to 65535")
    return address


def _attempt(address: str, tls: bool, ca_cert: str | None, timeout_s: float) -> str | None:
    """None once a connection is up; else gRPC's last connection error ('' when none came in time)."""
    channel = make_channel(address, tls, ca_cert)
    try:
        state = first_settled_state(channel, timeout_s)
        if state is None:
            return ""
        if state == grpc.ChannelConnectivity.READY:
            return None
        # A call on a channel in TRANSIENT_FAILURE fails at once with the connection error, never reaching a server.
        probe: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/hws.transcriber.v1.Transcriber/Ready")
        try:
            probe(b"", timeout=timeout_s, wait_for_ready=False)
        except grpc.RpcError as exc:
            return str(exc.details() or "")
        return None
    finally:
        close_after_polling(channel)


def _speaks_http1(details: str) -> bool:
    return "http1.x server" in details


def connect_error(
    address: str, tls: bool = False, ca_cert: str | None = None, names: Names = CLI_NAMES, timeout_s: float = 10.0
) -> str | None:
    """None when a connection to the address (host:port as given) comes up; else why not, in one line."""
    secure = tls or ca_cert is not None
    details = _attempt(address, secure, ca_cert, timeout_s)
    if details is None:
        return None
    where = f"cannot connect to {address}"
    drop_tls = f"drop {names.tls}" + (f" and {names.ca_cert}" if ca_cert else "")
    if details == "":
        return f"{where}: no answer in {timeout_s:g} s: is the server running there?"
    if "Connection refused" in details:
        return f"{where}: is the server running there?"
    if "WRONG_VERSION_NUMBER" in details or (secure and "Handshake read failed" in details):
        plain = _attempt(address, False, None, timeout_s)
        if plain is not None and _speaks_http1(plain):
            return _http1(where, names)
        if plain is None:
            return f"{where}: the server there does not use TLS: {drop_tls}"
        return f"{where}: the TLS handshake failed (no TLS server there?): {drop_tls}, or check {names.addr}"
    if "CERTIFICATE_VERIFY_FAILED" in details or "certificate verify failed" in details:
        if ca_cert:
            return (
                f"{where}: the server's certificate is not signed by the CA in {ca_cert}: "
                f"give its CA to {names.ca_cert}"
            )
        return (
            f"{where}: the server's certificate is not signed by a CA this system trusts (self-signed?): "
            f"give its CA with {names.ca_file}"
        )
    if "Hostname Verification" in details or "not in peer certificate" in details:
        host = re.sub(r":\d+$", "", address).strip("[]")
        return (
            f"{where}: the server's certificate is not issued for {host}: "
            f"give {names.addr} the host name the certificate names"
        )
    if _speaks_http1(details):
        return _http1(where, names)
    if not secure and "Socket closed" in details:
        tls_details = _attempt(address, True, None, timeout_s)
        if tls_details is None:
            return f"{where}: the server there uses TLS: add {names.tls}"
        if "CERTIFICATE_VERIFY_FAILED" in tls_details:
            return f"{where}: the server there uses TLS: add {names.ca_file} (its CA; implies TLS)"
    last = details.rpartition("last error: ")[2]
    return f"{where}: {last}"


def _http1(where: str, names: Names) -> str:
    return (
        f"{where}: an HTTP/1 server answers there, not gRPC (the metrics port?): "
        f"give {names.addr} the gRPC port (default {DEFAULT_PORT})"
    )
