#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client against examples/echo.
#
#   scripts/autobahn.sh            cases 1.* to 11.*
#   scripts/autobahn.sh --full     every case, compression groups 12.* and 13.* included
#
# Needs ../shared/tools/autobahn (see its README). Reports go to
# target/autobahn/servers; exits non-zero if any case FAILED or is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
autobahn=${AUTOBAHN_TOOLS:-$root/../shared/tools/autobahn}
if [ ! -x "$autobahn/run-fuzzingclient.sh" ]; then
    echo "autobahn: $autobahn not found, skipping" >&2
    exit 0
fi
exclude=(--exclude '12.*,13.*')
if [ "${1:-}" = "--full" ]; then
    exclude=()
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --example echo
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$target_dir/release/examples/echo" "127.0.0.1:$port" > "$target_dir/autobahn-echo.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

"$autobahn/run-fuzzingclient.sh" --url "ws://127.0.0.1:$port" --agent wshub \
    "${exclude[@]}" --out "$target_dir/autobahn/servers"
