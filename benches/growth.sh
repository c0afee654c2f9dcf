#!/usr/bin/env bash
# How the gRPC PostInvoices path's cost grows through one long run: a server binary on a
# fresh data directory, the load generator posting INVOICES invoices (4 connections ×
# 4,096), and every 5 s the server's CPU by thread (/proc/PID/task/*/stat) beside the
# invoices answered so far (the access log's PostInvoices lines × the batch). Prints the
# whole run's rate and p99, then per segment of the run (SEGMENTS, in millions: default
# "0 10 30 50") the rate and the CPU µs per invoice of the writer and of all threads.
# A thread a change did not touch shows how fast the machine was in that segment.
#
#   benches/growth.sh [--invoices N] [--config FILE] BIN [LABEL]
#
# Defaults: 50,000,000 invoices (~15 GB of data directory, 3-4 minutes here), the repo's
# config/server.toml, the current build's load generator (CARGO_TARGET_DIR). SCRATCH
# (default /var/tmp/voucher-ledger-growth) holds the data directory, removed at the end,
# and LABEL's samples, kept (samples.txt, bench.txt, RocksDB's LOG). Run two binaries
# alternately for an A/B: the segments past ~15 M invoices are where the ledger's size
# shows (issue 12, twenty-first round).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
repo=$(pwd)
invoices=50000000 config="$repo/config/server.toml"
while [ $# -gt 0 ]; do
  case "$1" in
    --invoices) invoices="$2"; shift 2 ;;
    --config) config="$(realpath "$2")"; shift 2 ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { sed -n 2,18p "$0" >&2; exit 2; }
bin="$(realpath "$1")"; label="${2:-$(basename "$bin")}"
[ -x "$bin" ] || { echo "error: $bin is not executable" >&2; exit 2; }
load=$(load_generator)
scratch="${SCRATCH:-/var/tmp/voucher-ledger-growth}"
run="$scratch/$label"; batch=4096; port="${PORT:-50196}"
rm -rf "$run"; mkdir -p "$run"
"$bin" serve --data-dir "$run/data" --listen "127.0.0.1:$port" --config "$config" \
    > "$run/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; rm -rf "$run/data"' EXIT
wait_until_listening "$run/serve.log"
"$load" bench --target "127.0.0.1:$port" --invoices "$invoices" --connections 4 --batch "$batch" \
    --unary-rate 0 > "$run/bench.txt" &
bench=$!
# Sampling starts at the first answer, so the seeding is not counted.
for _ in $(seq 1200); do grep -q "RedemptionService/PostInvoices" "$run/serve.log" && break; sleep 0.05; done
start=$(date +%s)
sample() {
  local answered
  answered=$(grep -c "RedemptionService/PostInvoices" "$run/serve.log" || true)
  {
    printf 'T %s invoices=%s' "$(( $(date +%s) - start ))" "$(( answered * batch ))"
    for task in /proc/"$server"/task/*; do
      echo "$(cat "$task/comm" 2>/dev/null) $(awk '{print $14 + $15}' "$task/stat" 2>/dev/null)"
    done | awk '{ name = $1; sub(/:.*/, "", name); ticks[name] += $2 }
                END { for (name in ticks) printf " %s=%d", name, ticks[name]; print "" }'
  } >> "$run/samples.txt"
}
while kill -0 "$bench" 2>/dev/null; do sample; sleep 5; done
wait "$bench"
sample
cp "$run/data/LOG" "$run/LOG" 2>/dev/null || true
kill -TERM "$server"; wait "$server" || true
trap - EXIT
rm -rf "$run/data"
ticks_per_second=$(getconf CLK_TCK)
echo "$label: $(grep -o '[0-9]* accepted.*' "$run/bench.txt")"
grep -o 'p99 [0-9.]*' "$run/bench.txt" | head -1 | sed "s/^/$label: batch /; s/$/ ms/"
awk -v segments="${SEGMENTS:-0 10 30 50}" -v hz="$ticks_per_second" -v label="$label" '
  /^T / {
    n++; seconds[n] = $2; split($3, field, "="); done[n] = field[2]; total[n] = 0; writer[n] = 0
    for (i = 4; i <= NF; i++) {
      split($i, field, "="); total[n] += field[2]
      if (field[1] == "ledger-writer") writer[n] = field[2]
    }
  }
  # The sample nearest to `count` invoices answered.
  function nearest(count,   i, best) {
    best = 1
    for (i = 1; i <= n; i++) if ((done[i] - count)^2 < (done[best] - count)^2) best = i
    return best
  }
  END {
    k = split(segments, edge, " ")
    for (s = 1; s < k; s++) {
      a = nearest(edge[s] * 1e6); b = nearest(edge[s + 1] * 1e6); count = done[b] - done[a]
      if (count <= 0 || seconds[b] <= seconds[a]) continue
      printf "%s: %s-%s M  rate %.0f/s  writer %.2f us  all threads %.2f us per invoice\n",
        label, edge[s], edge[s + 1], count / (seconds[b] - seconds[a]),
        (writer[b] - writer[a]) * 1e6 / hz / count, (total[b] - total[a]) * 1e6 / hz / count
    }
  }' "$run/samples.txt"
