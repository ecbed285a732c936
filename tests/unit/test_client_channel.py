"""hws.client.channel: the address a client dials."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("given", "dialled"),
    [
        ("localhost", "localhost:50051"),
        ("localhost:50061", "localhost:50061"),
        ("::1", "[::1]:50051"),
        ("[::1]", "[::1]:50051"),
        ("[::1]:50061", "[::1]:50061"),
        ("dns:///speech.example.com:443", "dns:///speech.example.com:443"),
    ],
)
def test_a_client_address_without_a_port_means_the_default_grpc_port(given: str, dialled: str) -> None:
    from hws.client import with_default_port

    assert with_default_port(given) == dialled
