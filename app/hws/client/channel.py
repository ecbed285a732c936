"""The channel to the server: default port, reachability, TLS and keep-alive, call credentials."""

from __future__ import annotations

import threading
import time

import grpc

from hws.tls import channel_credentials

DEFAULT_PORT = 50051


def with_default_port(address: str, port: int = DEFAULT_PORT) -> str:
    """`host` means host:port here (gRPC itself would dial 443); host:port, [v6]:port and URIs stay."""
    if "://" in address or address.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        return address
    if address.startswith("["):
        return address if "]:" in address else f"{address}:{port}"
    colons = address.count(":")
    if colons == 1:
        return address
    return f"[{address}]:{port}" if colons > 1 else f"{address}:{port}"


def reachable(address: str, tls: bool = False, ca_cert: str | None = None, timeout_s: float = 10.0) -> bool:
    """Whether a connection to the address can be made now: True once it is up, False at the first failure."""
    channel = make_channel(address, tls, ca_cert)
    try:
        return first_settled_state(channel, timeout_s) == grpc.ChannelConnectivity.READY
    finally:
        close_after_polling(channel)


def first_settled_state(channel: grpc.Channel, timeout_s: float) -> grpc.ChannelConnectivity | None:
    """READY or TRANSIENT_FAILURE, whichever the channel reaches first as it connects; None after `timeout_s`."""
    seen: list[grpc.ChannelConnectivity] = []
    settled = threading.Event()
    final = (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE)

    def watch(state: grpc.ChannelConnectivity) -> None:
        if state in final:
            seen.append(state)
            settled.set()

    channel.subscribe(watch, try_to_connect=True)
    try:
        settled.wait(timeout_s)
        return seen[0] if seen else None
    finally:
        channel.unsubscribe(watch)


def close_after_polling(channel: grpc.Channel) -> None:
    """Close a channel once gRPC's connectivity poller has stopped (within 0.2 s of the last unsubscribe).

    Closed under it, that thread dies with a traceback on stderr ("Exception in thread ... _poll_connectivity").
    """
    state = getattr(channel, "_connectivity_state", None)  # grpc's own, not its API: absent, nothing is waited
    deadline = time.monotonic() + 1.0
    while getattr(state, "polling", False) and time.monotonic() < deadline:
        time.sleep(0.01)
    channel.close()


def make_channel(address: str, tls: bool = False, ca_cert: str | None = None) -> grpc.Channel:
    options = [
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ]
    if not tls and ca_cert is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, channel_credentials(ca_cert), options=options)


# CANCELLED too: this client never cancels a stream it resumes, so a cancel came from the way between,
# e.g. HAProxy 2.6 turns a server's status sent before the client's half-close (a drain, the stream age
# limit) into RST_STREAM(CANCEL) (haproxy/haproxy#1219). The final offset received before it still holds.


def auth_metadata(key: str) -> list[tuple[str, str]]:
    """Call metadata that authenticates a client call (the server reads it in hws.server.auth)."""
    return [("authorization", f"Bearer {key}")]
