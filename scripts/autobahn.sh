#!/usr/bin/env bash
# Runs the Autobahn|Testsuite against wshub both ways: its fuzzing client
# against examples/echo (once with shared and once with dedicated
# permessage-deflate compressors), and its fuzzing server against the wshub
# client (examples/autobahn_client, offering dedicated compressors).
#
#   scripts/autobahn.sh            every case (517 per run, three runs side by
#                                  side; about 17 minutes on 2 cores)
#   scripts/autobahn.sh --quick    cases 1.* to 10.*, without compression (under a minute)
#
# Needs ../shared/tools/autobahn (see its README), or $AUTOBAHN_TOOLS. Without
# it the run is skipped, except under CI=true, where that is a failure: CI
# must not pass without the conformance run. Reports go to
# $CARGO_TARGET_DIR/autobahn/servers/{shared,dedicated} and .../clients
# (target/ by default), each run's output to .../autobahn/<run>.out;
# exits non-zero if any case FAILED, is UNIMPLEMENTED or is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
autobahn=${AUTOBAHN_TOOLS:-$root/../shared/tools/autobahn}
if [ ! -x "$autobahn/run-fuzzingclient.sh" ]; then
    if [ "${CI:-}" = true ]; then
        echo "autobahn: $autobahn/run-fuzzingclient.sh not found, and CI=true:" \
            "install the tools there (see its README) or set AUTOBAHN_TOOLS" >&2
        exit 1
    fi
    echo "autobahn: skipped, no conformance suite at $autobahn" \
        "(set AUTOBAHN_TOOLS to one; README.md, \"Conformance\", says where to get it)" >&2
    exit 0
fi
modes=(shared dedicated)
client_mode=dedicated
cases=()
if [ "${1:-}" = "--quick" ]; then
    modes=(off)
    client_mode=off
    cases=(--exclude '12.*,13.*')
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
cargo build --release --example echo
cargo build --release --features client --example autobahn_client
# Once, before the runs start side by side: its first run builds a venv.
"$autobahn/setup.sh" -q
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The runs go side by side, each its own wstest: wstest is one Python
# process that spends most of a run on its own CPU (the compression groups
# above all), so one after another they leave a core idle. Each run's output
# goes to its own file and is printed whole when the run ends.
children=()
trap 'kill "${children[@]}" 2>/dev/null || true' EXIT
names=()
pids=()
logs=()
start_run() {
    local name=$1
    shift
    local log=$target_dir/autobahn/$name.out
    mkdir -p "$(dirname "$log")"
    "$@" > "$log" 2>&1 &
    children+=($!)
    names+=("$name")
    pids+=($!)
    logs+=("$log")
}

for mode in "${modes[@]}"; do
    port=$(free_port)
    "$target_dir/release/examples/echo" "127.0.0.1:$port" "$mode" > "$target_dir/autobahn-echo-$mode.log" 2>&1 &
    children+=($!)
    for _ in $(seq 50); do
        (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    start_run "server-$mode" "$autobahn/run-fuzzingclient.sh" --url "ws://127.0.0.1:$port" \
        --agent "wshub-$mode" "${cases[@]}" --out "$target_dir/autobahn/servers/$mode"
done

# The client: the fuzzing server starts it once it listens.
client=$target_dir/release/examples/autobahn_client
start_run "client-$client_mode" "$autobahn/run-fuzzingserver.sh" --port "$(free_port)" \
    --agent "wshub-client-$client_mode" "${cases[@]}" --out "$target_dir/autobahn/clients" \
    --run "'$client' \"\$AUTOBAHN_URL\" wshub-client-$client_mode $client_mode"

failed=()
for i in "${!pids[@]}"; do
    rc=0
    wait "${pids[$i]}" || rc=$?
    cat "${logs[$i]}"
    [ "$rc" -eq 0 ] || failed+=("${names[$i]} (exit $rc)")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "autobahn: failed: ${failed[*]}" >&2
    exit 1
fi
echo "autobahn: all ${#pids[@]} runs passed"
