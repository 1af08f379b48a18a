#!/usr/bin/env bash
# The whole test suite: unit, integration and doc tests, then the Autobahn
# conformance run when ../shared/tools/autobahn is present.
set -euo pipefail
cd "$(dirname "$0")/.."
# tests/browser.rs drives headless Chromium through the chat example.
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
cargo test --all-features
scripts/autobahn.sh
