#!/usr/bin/env python3
"""Generates a continuation of a prompt and prints it with the finish reason and token counts.

    PYTHONPATH=clients/python:build/clients/python/stubs \
        /usr/bin/python3 clients/python/examples/generate.py "In the beginning" --max-new-tokens 48
"""

import sys

from _common import client, parser
from longnet_client import LongNetError


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int)
    p.add_argument("--seed", type=int)
    args = p.parse_args()
    try:
        with client(args) as c:
            g = c.generate(args.prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                           top_k=args.top_k, seed=args.seed)
    except LongNetError as e:
        sys.exit(f"generate: {e}")
    print(g.text)
    print(f"[finish_reason={g.finish_reason} prompt_tokens={g.usage.prompt_tokens} "
          f"generated_tokens={g.usage.generated_tokens} seed={g.seed}]", file=sys.stderr)


if __name__ == "__main__":
    main()
