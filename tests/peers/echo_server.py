#!/usr/bin/env python3
"""An echo server written with Python's `websockets`, a peer nobody on
wshub wrote, for testing wshub's client.

    python3 tests/peers/echo_server.py MODE [--cert CERT --key KEY]

MODE picks permessage-deflate: `none`, `default` (websockets' defaults),
`client_max_window_bits=9`, `server_max_window_bits=10` or
`no_context_takeover` (both directions). With --cert and --key it serves
wss:// with that certificate.

It prints {"port": N} once it listens, then one JSON line per connection
when it ends:

  {"extensions": <Sec-WebSocket-Extensions of its 101, or null>,
   "received_compressed": n, "received_plain": n, "sent_compressed": n,
   "echoed": n, "close_code": code}
"""

import argparse
import asyncio
import json
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from rsv1 import count_rsv1

MODES = {
    "default": {},
    "client_max_window_bits=9": {"client_max_window_bits": 9},
    "server_max_window_bits=10": {"server_max_window_bits": 10},
    "no_context_takeover": {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
    },
}


async def echo(ws):
    result = {
        "extensions": ws.response.headers.get("Sec-WebSocket-Extensions"),
        "received_compressed": 0,
        "received_plain": 0,
        "sent_compressed": 0,
        "echoed": 0,
        "close_code": None,
    }
    count_rsv1(ws, result)
    try:
        async for message in ws:
            await ws.send(message)
            result["echoed"] += 1
    finally:
        result["close_code"] = ws.close_code
        print(json.dumps(result), flush=True)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["none", *sorted(MODES)])
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    extensions = None if args.mode == "none" else [ServerPerMessageDeflateFactory(**MODES[args.mode])]
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    async with serve(
        echo,
        "127.0.0.1",
        0,
        extensions=extensions,
        compression=None,
        max_size=None,
        ping_interval=None,
        ssl=context,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        # Until the test closes our stdin (or kills us).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
