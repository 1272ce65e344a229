#!/usr/bin/env python3
"""Encodes a UTF-8 text file of any size (sent in chunks through EncodeStream): prints a JSON object with its
token count, the pooled vector's size and first values, and (decoder models) its bits per byte.

    PYTHONPATH=clients/python:build/clients/python/stubs \
        /usr/bin/python3 clients/python/examples/encode_file.py /usr/share/common-licenses/GPL-3 --score
"""

import json
import sys

from _common import client, parser
from longnet_client import DEFAULT_CHUNK_BYTES, POOLINGS, LongNetError


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("path")
    p.add_argument("--pooling", choices=list(POOLINGS), default="mean")
    p.add_argument("--normalize", action="store_true")
    p.add_argument("--score", action="store_true", help="also the document's likelihood (decoder models)")
    p.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES)
    p.set_defaults(timeout=600.0)  # long documents take long: one deadline for the whole upload and encoding
    args = p.parse_args()
    try:
        with client(args) as c:
            r = c.encode_file(args.path, pooling=args.pooling, normalize=args.normalize, score=args.score,
                              chunk_bytes=args.chunk_bytes)
    except (LongNetError, OSError, ValueError) as e:
        sys.exit(f"encode_file: {e}")
    out = {"tokens": r.tokens, "truncated_tokens": r.truncated_tokens, "dims": len(r.pooled),
           "pooled_head": [round(x, 6) for x in r.pooled[:4]], "seconds": round(r.timings.total_seconds, 3)}
    if r.score is not None:
        out["bits_per_byte"] = r.score.bits_per_byte
        out["bits_per_token"] = r.score.bits_per_token
    print(json.dumps(out))


if __name__ == "__main__":
    main()
