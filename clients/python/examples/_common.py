"""Command-line options every example shares: where the server is and how to reach it."""

import argparse


def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--target", default="localhost:50051", help="the server's host:port (default %(default)s)")
    p.add_argument("--api-key", help="sent as authorization: Bearer <key> (servers run with --api-key-file)")
    p.add_argument("--root-cert", help="PEM file of the CA that signed the server's certificate (turns on TLS)")
    p.add_argument("--client-cert", help="PEM client certificate, for mutual TLS (with --client-key)")
    p.add_argument("--client-key", help="PEM key of --client-cert")
    p.add_argument("--timeout", type=float, default=60.0, help="deadline of each call, seconds (default %(default)s)")
    return p


def client(args):
    from longnet_client import Client
    return Client(args.target, root_certificates=args.root_cert, client_certificate=args.client_cert,
                  client_key=args.client_key, api_key=args.api_key, timeout=args.timeout)
