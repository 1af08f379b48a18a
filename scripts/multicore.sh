#!/usr/bin/env bash
# Issue 10's many-core figures in one run, for a machine with 16 cores or
# more (a borrowed one has no registries: build the binary here first).
#
#   cargo build --release -p chat-room
#   scripts/multicore.sh target/release/chat-room [OUT_DIR]
#
# What it runs (server on cores 0-7, clients on 8-15, as the issue's table):
#   1. 8 rooms, each driven by its own client process on its own core,
#      server on T = 1, 2, 4, 8 worker threads, its sockets dealt to the
#      socket loops in turn (wshub) and kept together by room
#      (wshub+colocate: `Upgrade::colocate`);
#   2. one hot room (its client on core 8): 16 and 32 clients, 50- and
#      1,600-message batches, at T = 1 and 8;
#   3. axum's chat (extract::ws + broadcast, flushed once per wake-up; a
#      channel of 65,536 so that no message is lagged away, TCP_NODELAY as
#      wshub sets it) in the same hot room at T = 1 and 8, 50-message
#      batches.
# Each table goes to OUT_DIR (default: the current directory) and to stdout;
# then scripts/multicore_checks.py reads them back and prints the issue's
# checks (8 rooms >= 6x at T=8, hot room T=max >= T=1 and >= 2x axum, CPU per
# message <= 1.3x), one line each; the script exits 1 if any fails.
# About 7 minutes with the defaults.
#
# Smaller machines can try it with other cores (a smoke test, not the
# issue's figures), e.g. on 2 cores:
#   SERVER_CORES=0-1 CLIENT_CORES=1 THREADS=1,2 REPS=1 SECONDS_EACH=2 \
#     scripts/multicore.sh target/release/chat-room
set -euo pipefail

BIN=${1:?usage: scripts/multicore.sh CHAT_ROOM_BINARY [OUT_DIR]}
OUT=${2:-.}
if [ -z "${SERVER_CORES+set}" ] && [ "$(nproc)" -lt 16 ]; then
    echo "multicore: this machine has $(nproc) cores; the issue's figures need 16" >&2
    echo "multicore: (set SERVER_CORES and CLIENT_CORES to try it anyway)" >&2
    exit 2
fi
SERVER_CORES=${SERVER_CORES:-0-7}
CLIENT_CORES=${CLIENT_CORES:-8-15}
THREADS=${THREADS:-1,2,4,8}
REPS=${REPS:-3}
SECONDS_EACH=${SECONDS_EACH:-5}
# Ports above the default ephemeral range (32768-60999), so that thousands
# of client connections cannot take them.
PORT_BASE=${PORT_BASE:-61000}

mkdir -p "$OUT"
# The hot room's client: the first client core; the largest T: the last.
hot_client=${CLIENT_CORES%%[-,]*}
max_threads=${THREADS##*,}
first_server=${SERVER_CORES%%[-,]*}

echo "== 1. eight rooms, T = $THREADS" | tee "$OUT/rooms.txt"
"$BIN" multicore --servers wshub,wshub+colocate --rooms 8 --threads "$THREADS" \
    --server-cores "$SERVER_CORES" \
    --client-cores "$CLIENT_CORES" --clients 16 --messages 50 --reps "$REPS" \
    --seconds "$SECONDS_EACH" 2>&1 | grep -v '^\[' | tee -a "$OUT/rooms.txt"

echo "== 2. one hot room, T = 1 and $max_threads" | tee "$OUT/hot-room.txt"
"$BIN" multicore --rooms 1 --threads "1,$max_threads" --server-cores "$SERVER_CORES" \
    --client-cores "$hot_client" --clients 16,32 --messages 50,1600 --reps "$REPS" \
    --seconds "$SECONDS_EACH" 2>&1 | grep -v '^\[' | tee -a "$OUT/hot-room.txt"

echo "== 3. axum's chat in the hot room, T = 1 and $max_threads" | tee "$OUT/axum.txt"
echo "| server | T | clients | msgs/s (median second) | server CPU (user+sys) |" | tee -a "$OUT/axum.txt"
echo "|---|---:|---:|---:|---:|" | tee -a "$OUT/axum.txt"
port=$PORT_BASE
for threads in 1 "$max_threads"; do
    last_server=$((first_server + threads - 1))
    for clients in 16 32; do
        for _ in $(seq "$REPS"); do
            port=$((port + 1))
            taskset -c "$first_server-$last_server" "$BIN" server axum-batched+nodelay@65536 \
                --addr "127.0.0.1:$port" --threads "$threads" >/dev/null 2>&1 &
            server=$!
            sleep 0.5
            result=$(taskset -c "$hot_client" "$BIN" client --addr "127.0.0.1:$port" \
                --clients "$clients" --messages 50 --seconds "$SECONDS_EACH" \
                --server-pid "$server" 2>&1 | grep '^RESULT' || true)
            kill "$server" 2>/dev/null || true
            wait "$server" 2>/dev/null || true
            python3 - "$threads" "$clients" "$SECONDS_EACH" "$result" <<'EOF' | tee -a "$OUT/axum.txt"
import json, sys
threads, clients, seconds, line = sys.argv[1:5]
if not line.startswith("RESULT"):
    print(f"| axum-batched+nodelay@65536 | {threads} | {clients} | no result | |")
    sys.exit()
r = json.loads(line[len("RESULT"):])
cpu = r["server_cpu"]
print(f"| axum-batched+nodelay@65536 | {threads} | {clients} | {r['median'] / 1e6:.2f}M "
      f"| {cpu['user'] + cpu['system']:.0f}% ({cpu['user']:.0f}+{cpu['system']:.0f}) |")
EOF
        done
    done
done

echo "== 4. the issue's checks" | tee "$OUT/checks.txt"
python3 "$(dirname "$0")/multicore_checks.py" "$OUT" | tee -a "$OUT/checks.txt"
exit "${PIPESTATUS[0]}"
