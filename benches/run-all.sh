#!/usr/bin/env bash
# Runs every performance measurement of the README three times and prints the figures.
#   benches/run-all.sh [RUNS]        (about 12 minutes on two cores; nothing else running)
# Uses the release build; fsync is on everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/voucher-ledger-target}"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/voucher-ledger"
scratch="${SCRATCH:-/var/tmp/voucher-ledger-bench}"
mkdir -p "$scratch"

echo "== machine"
nproc; grep -m1 "model name" /proc/cpuinfo; free -g | head -2; uname -r; df -h "$scratch" | tail -1

for run in $(seq "$runs"); do
  echo "== run $run: state machine (criterion, batches of 8,189 redemptions, no I/O)"
  cargo bench --locked --quiet --bench state_machine -- --warm-up-time 2 --measurement-time 5 2>&1 | grep -E "thrpt:" | head -1
  echo "== run $run: engine (library, durable, fsync per batch)"
  cargo bench --locked --quiet --bench engine -- --warm-up-time 1 --measurement-time 2 2>&1 | grep -E "^engine (batch|via)"
  echo "== run $run: gRPC load generator on loopback (fresh data directory)"
  rm -rf "$scratch/grpc"
  "$bin" serve --data-dir "$scratch/grpc" --listen 127.0.0.1:50077 --config config/server.toml >/dev/null 2>&1 &
  server=$!
  sleep 1
  "$bin" bench --target 127.0.0.1:50077 --invoices 1000000 --connections 4 --batch 4096 --unary-rate 2000 --unary-seconds 10
  kill -TERM "$server"; wait "$server"
done

echo "== recovery: 10,000,000 events, graceful stop before each start"
rm -rf "$scratch/recovery"
"$bin" bench-recovery --data-dir "$scratch/recovery" --events 10000000 --runs "$runs" 2>/dev/null
for run in $(seq "$runs"); do
  echo "== recovery after a crash (no closing snapshot), run $run"
  rm -rf "$scratch/crash"
  "$bin" bench-recovery --data-dir "$scratch/crash" --events 10000000 --crash 2>/dev/null
done
rm -rf "$scratch"
