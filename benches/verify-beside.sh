#!/usr/bin/env bash
# What a read-only view of a running server meets once the server has gone quiet (issue 12,
# thirty-first round: the server flushes its invoice index when idle): for each server
# build BIN, serve a fresh data directory, post INVOICES invoices (1 connection × 8,189),
# wait QUIET seconds, run `verify` beside the server (its time, peak RSS, and whether it
# had to derive index entries from the log), then SIGKILL the server and restart it (the
# open's phases: how much of the index the restart derived).
#
#   benches/verify-beside.sh [--rounds N] [--invoices N] [--quiet S] [--verify-bin BIN] BIN...
#
# Defaults: 2 rounds, 900,000 invoices (just short of the index's second memtable
# filling, so ~433 k entries are unflushed when the load stops: near the worst case),
# 5 s quiet, `verify` from the first BIN (an older build's verify may not print its
# notes). Builds are run in turn within each round. Scratch: $SCRATCH (default
# /var/tmp/voucher-ledger-verify-beside), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=2 invoices=900000 quiet=5 verify_bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --invoices) invoices="$2"; shift 2 ;;
    --quiet) quiet="$2"; shift 2 ;;
    --verify-bin) verify_bin="$2"; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--rounds N] [--invoices N] [--quiet S] [--verify-bin BIN] BIN..." >&2; exit 2; }
verify_bin="${verify_bin:-$1}"
scratch="${SCRATCH:-/var/tmp/voucher-ledger-verify-beside}"
port="${PORT:-50231}"
server=""
trap '[ -n "$server" ] && kill -9 "$server" 2>/dev/null; rm -rf "$scratch"' EXIT

wait_for() { # FILE PATTERN TRIES SLEEP
  for _ in $(seq "$3"); do grep -q "$2" "$1" && return 0; sleep "$4"; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}

for round in $(seq "$rounds"); do
  for bin in "$@"; do
    dir="$scratch/run"; rm -rf "$dir"; mkdir -p "$dir"
    "$bin" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" --config config/server.toml \
        > "$dir/serve.log" 2>&1 &
    server=$!
    wait_for "$dir/serve.log" "ledger opened" 600 0.1
    "$bin" bench --target "127.0.0.1:$port" --invoices "$invoices" --connections 1 --batch 8189 \
        --unary-rate 0 > "$dir/bench.txt" 2>&1
    sleep "$quiet"
    /usr/bin/time -f "%e %M" -o "$dir/verify.time" "$verify_bin" verify --data-dir "$dir/data" \
        > "$dir/verify.txt" 2>&1
    read -r verify_s verify_kib < "$dir/verify.time"
    derived=$(grep -o "the [0-9]* entries of records" "$dir/verify.txt" | grep -o "[0-9]*" | head -1 || true)
    flushes=$(grep -c "invoice index flushed" "$dir/serve.log" || true)
    kill -9 "$server"; wait "$server" 2>/dev/null || true
    "$bin" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" --config config/server.toml \
        > "$dir/restart.log" 2>&1 &
    server=$!
    wait_for "$dir/restart.log" "ledger opened" 3000 0.02
    phases=$(grep -o "elapsed_ms=[0-9]*.*index_catch_up_ms=[0-9]*" "$dir/restart.log" | head -1)
    kill -TERM "$server"; wait "$server" 2>/dev/null || true
    server=""
    printf 'round %s  %-40s verify %6.2f s  rss %4d MiB  derived %7s entries  idle flushes %s  restart: %s\n' \
        "$round" "$bin" "$verify_s" $((verify_kib / 1024)) "${derived:-0}" "$flushes" "$phases"
  done
done
