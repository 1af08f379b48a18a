#!/usr/bin/env bash
# Bun's chat-room benchmark against wshub, axum's extract::ws and Bun itself
# (tools/chat-room): the throughput table, server memory per idle
# connection, and fan-out latency. Needs 2+ cores; the servers run pinned to
# core 0 and the load client to core 1.
#
#   scripts/bench-chat.sh              # everything, 3 runs of 10 s per cell (~20 min)
#   scripts/bench-chat.sh quick        # 1 run of 3 s per cell, fewer connections (~5 min)
#   SERVERS=wshub,bun CLIENTS=32 MESSAGES=50 REPS=1 SECONDS_PER_RUN=5 scripts/bench-chat.sh
#   scripts/bench-chat.sh deflate      # permessage-deflate only (~15 min): the chat room with
#                                      # shared compression (wshub vs Bun's perMessageDeflate:
#                                      # true), memory per connection by compression mode at
#                                      # 1,000 (and 10,000) connections, and the publish bench
#   DEFLATE_SERVERS=... RSS_SERVERS=... scripts/bench-chat.sh deflate   # other servers/modes
#   scripts/bench-chat.sh multicore    # many cores: a room per client core, the server on
#                                      # 1, 2, 4 … worker threads on the other half of the cores
#   ROOMS=8 THREADS=1,2,4,8 SERVER_CORES=0-7 CLIENT_CORES=8-15 scripts/bench-chat.sh multicore
#
# Bun comes from npm into ~/.cache/wshub-bench (never into the repository);
# without it the Bun rows are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${WSHUB_BENCH_DIR:-$HOME/.cache/wshub-bench}
REPS=${REPS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONNECTIONS=${CONNECTIONS:-10000}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
SECTION=${1:-all}
case $SECTION in
    all | deflate | multicore) ;;
    quick) REPS=1 SECONDS_PER_RUN=3 CONNECTIONS=2000 SUBSCRIBERS=500 ;;
    *) echo "usage: $0 [quick|deflate|multicore]" >&2; exit 2 ;;
esac

for tool in taskset prlimit; do
    command -v "$tool" >/dev/null || { echo "needs $tool (util-linux)" >&2; exit 1; }
done
if (( $(nproc) < 2 )); then
    echo "needs at least 2 cores (server and client pinned apart)" >&2
    exit 1
fi

# Bun: the npm package ships the binary in its platform package
# (@oven/bun-linux-x64, or -baseline for CPUs without AVX2).
find_bun() {
    local candidate
    for candidate in "${BUN:-}" \
        "$BENCH_DIR/node_modules/@oven/bun-linux-x64-baseline/bin/bun" \
        "$BENCH_DIR/node_modules/bun/bin/bun.exe" \
        "$BENCH_DIR/node_modules/@oven/bun-linux-x64/bin/bun"; do
        if [[ -n $candidate ]] && "$candidate" --version >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
install_bun() {
    command -v npm >/dev/null || return 0
    echo "installing bun with npm into $BENCH_DIR" >&2
    mkdir -p "$BENCH_DIR"
    [[ -f $BENCH_DIR/package.json ]] || echo '{"private": true}' >"$BENCH_DIR/package.json"
    packages=(bun)
    if [[ $(uname -m) == x86_64 ]] && ! grep -qw avx2 /proc/cpuinfo; then
        packages+=(@oven/bun-linux-x64-baseline)
    fi
    npm install --prefix "$BENCH_DIR" --no-audit --no-fund --loglevel=error "${packages[@]}" >&2 ||
        echo "npm install bun failed" >&2
}
# Bun runs one event loop: the multi-core table is wshub's alone.
BUN_BIN=
if [[ $SECTION != multicore ]]; then
    BUN_BIN=$(find_bun) || { install_bun; BUN_BIN=$(find_bun) || BUN_BIN=; }
fi
bench_args=()
if [[ -n $BUN_BIN ]]; then
    bench_args+=(--bun "$BUN_BIN")
    DEFLATE_SERVERS=${DEFLATE_SERVERS:-wshub-deflate-shared,bun-deflate-shared}
    RSS_SERVERS=${RSS_SERVERS:-wshub,wshub-deflate-shared,wshub-deflate-dedicated,wshub-deflate-3kb,wshub-deflate-256kb,bun,bun-deflate-shared,bun-deflate-dedicated,bun-deflate-3kb}
else
    [[ $SECTION == multicore ]] || echo "no working bun: the Bun rows are skipped" >&2
    SERVERS=${SERVERS:-wshub,wshub-ct,axum,axum-batched}
    DEFLATE_SERVERS=${DEFLATE_SERVERS:-wshub-deflate-shared}
    RSS_SERVERS=${RSS_SERVERS:-wshub,wshub-deflate-shared,wshub-deflate-dedicated,wshub-deflate-3kb,wshub-deflate-256kb}
fi
[[ -n ${SERVERS:-} ]] && bench_args+=(--servers "$SERVERS")

mkdir -p target
out=target/bench-chat-$(date +%Y%m%d-%H%M%S).md
cargo build --release -p chat-room
bench() { cargo run --quiet --release -p chat-room -- "$@"; }

# permessage-deflate: every deflate server is offered it by the clients, who
# count the frames that arrive compressed (RSV1). The rss rows exchange one
# compressed message per connection first, so lazily made compressors exist.
deflate_section() {
    local bun_arg=()
    [[ -n $BUN_BIN ]] && bun_arg=(--bun "$BUN_BIN")
    # Bun compresses a 1,600-message batch to 32 clients (1.6M frames) in
    # more than the default 5 s stall timeout.
    bench run "${bun_arg[@]}" --servers "$DEFLATE_SERVERS" --reps "$REPS" \
        --seconds "$SECONDS_PER_RUN" --stall-timeout 30 \
        ${CLIENTS:+--clients "$CLIENTS"} ${MESSAGES:+--messages "$MESSAGES"}
    bench rss "${bun_arg[@]}" --deflate --servers "$RSS_SERVERS" \
        --connections "${DEFLATE_CONNECTIONS:-1000}"
    bench rss --deflate --servers "${RSS_SERVERS_10K:-wshub,wshub-deflate-shared}" \
        --connections "$CONNECTIONS"
    echo
    echo "Publishing 16 KiB to N subscribers (time per publish, median and range; cargo bench --bench publish):"
    cargo bench --quiet --bench publish 2>&1 | grep -E '^(compress|publish)|bytes compress'
}

{
    echo "# wshub chat-room benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    if [[ $SECTION == deflate ]]; then
        deflate_section
    elif [[ $SECTION == multicore ]]; then
        bench multicore --reps "$REPS" --seconds "$SECONDS_PER_RUN" \
            ${ROOMS:+--rooms "$ROOMS"} ${THREADS:+--threads "$THREADS"} \
            ${SERVER_CORES:+--server-cores "$SERVER_CORES"} ${CLIENT_CORES:+--client-cores "$CLIENT_CORES"} \
            ${CLIENTS:+--clients "$CLIENTS"} ${MESSAGES:+--messages "$MESSAGES"}
    else
        bench run "${bench_args[@]}" --reps "$REPS" --seconds "$SECONDS_PER_RUN" \
            ${CLIENTS:+--clients "$CLIENTS"} ${MESSAGES:+--messages "$MESSAGES"}
        bench rss "${bench_args[@]}" --connections "$CONNECTIONS"
        bench latency "${bench_args[@]}" --subscribers "$SUBSCRIBERS" --seconds "$SECONDS_PER_RUN"
        # 1 GiB published into a room with one socket that never reads.
        bench slow --reps "$REPS"
    fi
} 2>&1 | tee "$out"
echo "tables saved in $out" >&2
