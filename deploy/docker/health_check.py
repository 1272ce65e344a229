#!/usr/bin/python3
"""The container's HEALTHCHECK: one grpc.health.v1.Health/Check call to the local longnet-server.

Exit 0 when the service's status is SERVING, 1 otherwise (NOT_SERVING while loading or draining, no
answer, an unknown service), with one line on stdout saying what it saw; Docker keeps the line.

grpc_health_probe is not packaged by Debian; this uses Debian's python3-grpcio and nothing else. The
health messages are two fields, encoded here by hand (HealthCheckRequest: 1 = service, a string;
HealthCheckResponse: 1 = status, an enum), so no generated stubs or protobuf runtime are needed.

  longnet-health-check [--address HOST:PORT] [--service NAME] [--timeout SECONDS] [--tls-ca PEM]

The address defaults to 127.0.0.1 and LONGNET_PORT (else 50051), the port the server listens on. With
TLS on (--tls-cert), give the CA that signed the server's certificate with --tls-ca (or LONGNET_HEALTH_CA)
and the name in it with --server-name.
"""

import argparse
import os
import sys

import grpc

STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def encode_request(service):
    data = service.encode("utf-8")
    if len(data) > 127:
        raise ValueError("service name longer than 127 bytes")
    return (b"\x0a" + bytes([len(data)]) + data) if data else b""


def read_varint(data, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_status(data):
    """The `status` field of a HealthCheckResponse (0 = UNKNOWN when absent, as proto3 says)."""
    pos, status = 0, 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
            if field == 1:
                status = value
        elif wire == 2:
            length, pos = read_varint(data, pos)
            pos += length
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return status


def check(address, service="", timeout=3.0, root_certificates=None, server_name=None):
    """(exit code, message)."""
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    if root_certificates is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates), options=options)
    with channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            reply = call(encode_request(service), timeout=timeout)
        except grpc.RpcError as e:
            return 1, f"{address} service {service!r}: {e.code().name} {e.details() or ''}".rstrip()
    status = decode_status(reply)
    name = STATUS_NAMES.get(status, str(status))
    return (0 if status == 1 else 1), f"{address} service {service!r}: {name}"


def main(argv=None):
    parser = argparse.ArgumentParser(description="grpc.health.v1 check of longnet-server")
    parser.add_argument("--address", default=f"127.0.0.1:{os.environ.get('LONGNET_PORT') or '50051'}")
    parser.add_argument("--service", default="")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--tls-ca", default=os.environ.get("LONGNET_HEALTH_CA") or None)
    parser.add_argument("--server-name", default=None)
    args = parser.parse_args(argv)
    root = None
    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            root = f.read()
    code, message = check(args.address, args.service, args.timeout, root, args.server_name)
    print(message)
    return code


if __name__ == "__main__":
    sys.exit(main())
