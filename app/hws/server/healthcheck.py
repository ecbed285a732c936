"""`hws-healthcheck`: exit 0 when grpc.health.v1 says SERVING (for container HEALTHCHECKs)."""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hws.tls import channel_credentials


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hws-healthcheck", description=__doc__)
    parser.add_argument("--addr", default="localhost:50051")
    parser.add_argument("--service", default="", help="service name to check ('' = the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--ca-cert", help="PEM CA to trust when the server serves TLS itself (--tls-cert)")
    parser.add_argument("--server-name", help="name to check the server's certificate against (default: from --addr)")
    args = parser.parse_args(argv)
    if args.ca_cert:
        options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
        channel = grpc.secure_channel(args.addr, channel_credentials(args.ca_cert), options=options)
    else:
        channel = grpc.insecure_channel(args.addr)
    try:
        with channel:
            # typeshed's HealthStub lacks the methods that its __init__ sets.
            reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        raise SystemExit(1) from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    raise SystemExit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)


if __name__ == "__main__":
    main()
