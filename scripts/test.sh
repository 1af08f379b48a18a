#!/usr/bin/env bash
# The whole test suite: unit, integration and doc tests (the integration
# tests twice: behind `axum::serve` and `wshub::serve`), then the Autobahn
# conformance run when ../shared/tools/autobahn is present.
#
# What some tests need is installed first if missing, one line each, with
# the installers' own output in $CARGO_TARGET_DIR/test-setup.log:
#   chromium      tests/browser.rs (the chat example in headless Chromium)
#   redis-server  tests/redis.rs (the hub across two servers)
#   websockets    tests/deflate.rs, tests/tls.rs, tests/client_peers.rs (Python)
#   node, ws      tests/client_peers.rs (Node's `ws`, under ~/.cache/wshub/node)
# apt-get runs as root, or through sudo; without either, say so and stop.
set -euo pipefail
cd "$(dirname "$0")/.."
log=${CARGO_TARGET_DIR:-$PWD/target}/test-setup.log
mkdir -p "$(dirname "$log")"
: > "$log"

# Runs a command quietly; on failure, shows the end of its output.
quietly() {
    if ! "$@" >> "$log" 2>&1; then
        echo "setup: \`$*\` failed; the end of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}

apt_updated=false
apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
            sudo=(sudo -n)
        else
            echo "setup: the tests need $* and installing it takes root:" \
                "run \`sudo apt-get install -y $*\` once, or run this script as root" >&2
            exit 1
        fi
    fi
    if [ "$apt_updated" = false ]; then
        quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=true
    fi
    quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
    echo "setup: installed $* (apt)"
}

command -v chromium > /dev/null || apt_install chromium
command -v redis-server > /dev/null || apt_install redis-server
if ! python3 -c 'import websockets' 2> /dev/null; then
    quietly python3 -m pip install -q --root-user-action=ignore websockets
    echo "setup: installed websockets (pip)"
fi
command -v node > /dev/null || apt_install nodejs npm
# `ws` lives outside the clone, found through NODE_PATH.
node_modules=${WSHUB_NODE_MODULES:-$HOME/.cache/wshub/node/node_modules}
if [ ! -f "$node_modules/ws/package.json" ]; then
    quietly npm install --silent --prefix "$(dirname "$node_modules")" ws
    echo "setup: installed ws (npm, under $(dirname "$node_modules"))"
fi
export WSHUB_NODE_MODULES=$node_modules

# --workspace: also the tools' own tests (tools/chat-room, tools/testkit).
# --all-features: the `tls`, `http2`, `client`, `redis` and `metrics`
# features' tests too.
# Built first, then run under a bound: a test that hangs fails the run
# with its name printed, well before a CI job's own limit.
cargo test --workspace --all-features --no-run
# The tests that run an example build it with the features it reads
# (tests/common/process.rs: tls, metrics, http2; redis for redis_chat), a
# build of its own: made here, not inside a test's time limit.
cargo build --examples --features tls,metrics,http2
cargo build --example redis_chat --features redis,tls,metrics,http2
timeout --kill-after=30s 30m cargo test --workspace --all-features
# The crate's integration tests again with their servers on `wshub::serve`
# (tests/common's `serve`): its sockets run on socket loops, where
# `axum::serve`'s keep a task each, and both must behave alike.
WSHUB_TEST_SERVE=wshub timeout --kill-after=30s 20m cargo test --all-features --tests -q
scripts/autobahn.sh
