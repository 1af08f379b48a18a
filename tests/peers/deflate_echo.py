#!/usr/bin/env python3
"""A permessage-deflate client written with Python's `websockets`, a peer
nobody on wshub wrote.

    python3 tests/peers/deflate_echo.py URL OFFER [--sizes 0,1,100] [--rounds N] [--ca FILE]

A wss:// URL is verified against the certificates in FILE (PEM) when --ca
is given, against the system's otherwise.

OFFER picks the client's offer:
  default                      permessage-deflate; client_max_window_bits
  client_no_context_takeover   ... and client_no_context_takeover
  server_max_window_bits=10    ... and server_max_window_bits=10
  client_max_window_bits=9     permessage-deflate; client_max_window_bits=9
  server_no_context_takeover   ... and server_no_context_takeover

For every size it sends four messages (text and binary, highly compressible
and random), one at a time, and checks that the echo is the same message.
It prints one JSON line:

  {"extensions": <Sec-WebSocket-Extensions of the 101, or null>,
   "sent": n, "matched": n, "mismatches": [...],
   "sent_compressed": n,      # data frames it sent with RSV1
   "received_compressed": n,  # data frames it received with RSV1
   "received_plain": n,       # data frames it received without RSV1
   "close_code": code or null, "error": null or a message}

and exits with 0 only if every echo matched.
"""

import argparse
import asyncio
import json
import random
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from rsv1 import count_rsv1

OFFERS = {
    "default": {},
    "client_no_context_takeover": {"client_no_context_takeover": True},
    "server_max_window_bits=10": {"server_max_window_bits": 10},
    "client_max_window_bits=9": {"client_max_window_bits": 9},
    "server_no_context_takeover": {"server_no_context_takeover": True},
}


def messages(sizes, seed):
    """(label, message) pairs: str for text, bytes for binary."""
    rng = random.Random(seed)
    # Characters of 1 to 4 bytes in UTF-8.
    alphabet = "abcdefghijklmnopqrstuvwxyz 0123456789éß€漢😀"
    out = []
    for size in sizes:
        phrase = "the quick brown fox jumps over the lazy dog, "
        text = (phrase * (size // len(phrase) + 1))[:size]
        out.append((f"text/compressible/{size}", text))
        # Random characters until the UTF-8 encoding reaches `size` bytes.
        chars, length = [], 0
        while length < size:
            c = rng.choice(alphabet)
            if length + len(c.encode()) > size:
                c = "x"
            chars.append(c)
            length += len(c.encode())
        out.append((f"text/random/{size}", "".join(chars)))
        out.append((f"binary/compressible/{size}", bytes(i % 7 for i in range(size))))
        out.append((f"binary/random/{size}", rng.randbytes(size)))
    return out


async def run(args, result):
    factory = ClientPerMessageDeflateFactory(**OFFERS[args.offer])
    tls = {}
    if args.ca is not None:
        tls["ssl"] = ssl.create_default_context(cafile=args.ca)
    async with connect(
        args.url,
        **tls,
        extensions=[factory],
        compression=None,
        proxy=None,
        max_size=None,
        ping_interval=None,
        open_timeout=args.timeout,
        close_timeout=args.timeout,
    ) as ws:
        result["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
        count_rsv1(ws, result)
        for _ in range(args.rounds):
            for label, message in messages(args.sizes, args.seed):
                await ws.send(message)
                result["sent"] += 1
                echo = await asyncio.wait_for(ws.recv(), args.timeout)
                if echo == message:
                    result["matched"] += 1
                else:
                    got = f"{type(echo).__name__} of {len(echo)}"
                    result["mismatches"].append(f"{label}: got {got}")
        await ws.close()
        result["close_code"] = ws.close_code


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("offer", choices=sorted(OFFERS))
    parser.add_argument("--sizes", default="0,1,100,10240,204800")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7692)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--ca", help="PEM file of the certificates to trust for wss://")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    result = {
        "extensions": None,
        "sent": 0,
        "matched": 0,
        "mismatches": [],
        "sent_compressed": 0,
        "received_compressed": 0,
        "received_plain": 0,
        "close_code": None,
        "error": None,
    }
    try:
        asyncio.run(asyncio.wait_for(run(args, result), args.timeout * 6))
    except Exception as error:  # reported in the JSON line, not as a traceback
        result["error"] = f"{type(error).__name__}: {error}"
    print(json.dumps(result), flush=True)
    ok = result["error"] is None and not result["mismatches"] and result["matched"] == result["sent"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
