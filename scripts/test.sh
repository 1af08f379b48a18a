#!/usr/bin/env bash
# The whole test suite: unit, integration and doc tests, then the Autobahn
# conformance run when ../shared/tools/autobahn is present.
set -euo pipefail
cd "$(dirname "$0")/.."
# tests/browser.rs drives headless Chromium through the chat example.
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
# tests/redis.rs starts a redis-server of its own per test.
command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)
# tests/deflate.rs and tests/tls.rs check against Python's `websockets`.
python3 -c 'import websockets' 2>/dev/null || python3 -m pip install websockets
# tests/client_peers.rs runs the client against Node's `ws` (and Python's
# `websockets`): `ws` lives outside the clone, found through NODE_PATH.
command -v node >/dev/null || (apt-get update && apt-get install -y nodejs npm)
node_modules=${WSHUB_NODE_MODULES:-$HOME/.cache/wshub/node/node_modules}
[ -f "$node_modules/ws/package.json" ] || npm install --prefix "$(dirname "$node_modules")" ws
export WSHUB_NODE_MODULES=$node_modules
# --workspace: also the tools' own tests (tools/chat-room, tools/testkit).
# --all-features: the `tls` feature's tests too (tests/tls.rs,
# tests/tls_hostile.rs, the wss:// browser test).
cargo test --workspace --all-features
scripts/autobahn.sh
