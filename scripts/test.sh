#!/usr/bin/env bash
# The whole test suite: unit, integration and doc tests, then the Autobahn
# conformance run when ../shared/tools/autobahn is present.
set -euo pipefail
cd "$(dirname "$0")/.."
# tests/browser.rs drives headless Chromium through the chat example.
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
# tests/deflate.rs and tests/tls.rs check against Python's `websockets`.
python3 -c 'import websockets' 2>/dev/null || python3 -m pip install websockets
# --workspace: also the tools' own tests (tools/chat-room, tools/testkit).
# --all-features: the `tls` feature's tests too (tests/tls.rs,
# tests/tls_hostile.rs, the wss:// browser test).
cargo test --workspace --all-features
scripts/autobahn.sh
