#!/usr/bin/env python3
"""Streams a generation: prints the text as the server produces it.

    PYTHONPATH=clients/python:build/clients/python/stubs \
        /usr/bin/python3 clients/python/examples/stream.py "The LORD is my shepherd" --temperature 0.8 --seed 1
"""

import sys

from _common import client, parser
from longnet_client import LongNetError


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--seed", type=int)
    p.add_argument("--stop", action="append", default=[], help="a stop string (repeatable)")
    args = p.parse_args()
    try:
        with client(args) as c:
            for chunk in c.generate_stream(args.prompt, max_new_tokens=args.max_new_tokens,
                                           temperature=args.temperature, seed=args.seed, stop=args.stop):
                print(chunk.text, end="", flush=True)
                last = chunk
    except LongNetError as e:
        sys.exit(f"\nstream: {e}")
    print()
    print(f"[finish_reason={last.finish_reason} generated_tokens={last.usage.generated_tokens} "
          f"time_to_first_token={last.timings.time_to_first_token_seconds:.3f}s]", file=sys.stderr)


if __name__ == "__main__":
    main()
