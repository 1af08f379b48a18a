#!/usr/bin/env bash
# Bun's chat-room benchmark against wshub, axum's extract::ws and Bun itself
# (benches/chat_room): the throughput table, server memory per idle
# connection, and fan-out latency. Needs 2+ cores; the servers run pinned to
# core 0 and the load client to core 1.
#
#   scripts/bench-chat.sh              # everything, 3 runs of 10 s per cell (~20 min)
#   scripts/bench-chat.sh quick        # 1 run of 3 s per cell, fewer connections (~5 min)
#   SERVERS=wshub,bun CLIENTS=32 MESSAGES=50 REPS=1 SECONDS_PER_RUN=5 scripts/bench-chat.sh
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
if [[ ${1:-} == quick ]]; then
    REPS=1 SECONDS_PER_RUN=3 CONNECTIONS=2000 SUBSCRIBERS=500
fi

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
if ! BUN_BIN=$(find_bun); then
    if command -v npm >/dev/null; then
        echo "installing bun with npm into $BENCH_DIR" >&2
        mkdir -p "$BENCH_DIR"
        [[ -f $BENCH_DIR/package.json ]] || echo '{"private": true}' >"$BENCH_DIR/package.json"
        packages=(bun)
        if [[ $(uname -m) == x86_64 ]] && ! grep -qw avx2 /proc/cpuinfo; then
            packages+=(@oven/bun-linux-x64-baseline)
        fi
        npm install --prefix "$BENCH_DIR" --no-audit --no-fund --loglevel=error "${packages[@]}" >&2 ||
            echo "npm install bun failed" >&2
    fi
    BUN_BIN=$(find_bun) || BUN_BIN=
fi
bench_args=()
if [[ -n $BUN_BIN ]]; then
    bench_args+=(--bun "$BUN_BIN")
else
    echo "no working bun: the Bun rows are skipped" >&2
    SERVERS=${SERVERS:-wshub,wshub-ct,axum,axum-batched}
fi
[[ -n ${SERVERS:-} ]] && bench_args+=(--servers "$SERVERS")

mkdir -p target
out=target/bench-chat-$(date +%Y%m%d-%H%M%S).md
cargo bench --bench chat_room --no-run
bench() { cargo bench --quiet --bench chat_room -- "$@"; }
{
    echo "# wshub chat-room benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    bench run "${bench_args[@]}" --reps "$REPS" --seconds "$SECONDS_PER_RUN" \
        ${CLIENTS:+--clients "$CLIENTS"} ${MESSAGES:+--messages "$MESSAGES"}
    bench rss "${bench_args[@]}" --connections "$CONNECTIONS"
    bench latency "${bench_args[@]}" --subscribers "$SUBSCRIBERS" --seconds "$SECONDS_PER_RUN"
} 2>&1 | tee "$out"
echo "tables saved in $out" >&2
