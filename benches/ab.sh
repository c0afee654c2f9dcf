#!/usr/bin/env bash
# A quick A/B of two server binaries on the gRPC PostInvoices path, rounds interleaved:
# for each run the rate, the batch p99, the server's CPU per invoice and how it splits
# over the server's threads (writer, encoder, tokio workers, RocksDB's flush and
# compaction, …), read from /proc/PID/task/*/stat from the first PostInvoices answer to
# the end (so the seeding is not counted), and the share of the machine left idle over
# the same span (/proc/stat: what neither the server nor the load generator used), and the
# load generator's own CPU per invoice over the batches (`client=`, as it reports it). For
# one change, before `benches/compare.sh`: the split shows where a change moved CPU, and a thread the change did not touch shows
# how fast the machine was during that run (its µs per invoice moves with the machine).
#
#   benches/ab.sh [--rounds N] [--invoices N] [--connections C] [--batch B]
#                 [--answer every|brief | --answers A_ANSWER,B_ANSWER] BIN_A BIN_B
#   benches/ab.sh --unary [--rounds N] [--list-clients L] BIN_A BIN_B
#
#   --answer  the batches' method: PostInvoices (`every`, the default) or
#             PostInvoicesBrief (`brief`: only the exceptions and the totals answered);
#             both binaries must serve it; `--answers every,brief` gives each side its
#             own (with the same binary twice: what the brief answer changes)
#   --unary   instead of batches: unary PostInvoice at 2,000/s for 10 s (beside L
#             ListVouchers clients, default 0), with the latency the load generator saw
#             beside the latency the server's access log records (`elapsed_us`): the
#             difference is the client's own scheduling on a machine it shares.
#
# Rounds alternate the order of the two builds (A then B, then B then A). Defaults: 3
# rounds, 1,000,000 invoices, 4 connections × 4,096. fsync is on. The load
# generator is the current build's (CARGO_TARGET_DIR, default target), or LOAD_GENERATOR's
# (another build's binary, for an A/B of load generators). SCRATCH (default
# /var/tmp/voucher-ledger-ab) holds each run's data directory and logs.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
rounds=3 invoices=1000000 connections=4 batch=4096 answer=every unary=0 list_clients=0
while [ $# -gt 2 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --invoices) invoices="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --answer) answer="$2"; shift 2 ;;
    --answers) answer="$2"; shift 2 ;;
    --unary) unary=1; shift ;;
    --list-clients) list_clients="$2"; shift 2 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done
[ $# -eq 2 ] || { sed -n 2,30p "$0" >&2; exit 2; }
# One answer for both sides, or "A,B".
answer_a=${answer%%,*} answer_b=${answer##*,}
binaries=("$(realpath "$1")" "$(realpath "$2")")
for bin in "${binaries[@]}"; do [ -x "$bin" ] || { echo "error: $bin is not executable" >&2; exit 2; }; done
load=$(load_generator)
scratch="${SCRATCH:-/var/tmp/voucher-ledger-ab}"
mkdir -p "$scratch"

# CPU ticks per thread name of process $1 (thread pools folded: rocksdb:low0 → rocksdb).
thread_ticks() {
  local pid=$1 task name fields
  for task in /proc/"$pid"/task/*; do
    read -r fields < "$task/stat" 2>/dev/null || continue
    name=${fields#*(}; name=${name%)*}; name=${name%%:*}
    set -- ${fields##*) }
    echo "$name ${12} ${13}"
  done | awk '{ticks[$1] += $2 + $3} END {for (n in ticks) print n, ticks[n]}' | sort
}

# Starts server binary $2 on a fresh data directory under $scratch/$1 and waits until it
# listens; sets run_dir, run_port and server_pid. Each run is a subshell (`$(…)`): its
# EXIT trap stops a server the run left running (an interrupt, a failed step).
start_server() {
  trap '[ -z "$server_pid" ] || kill -TERM "$server_pid" 2>/dev/null || true' EXIT
  run_dir="$scratch/$1" run_port=$((50300 + RANDOM % 400))
  rm -rf "$run_dir"; mkdir -p "$run_dir"
  "$2" serve --data-dir "$run_dir/data" --listen "127.0.0.1:$run_port" --config config/server.toml \
    > "$run_dir/serve.log" 2>&1 &
  server_pid=$!
  wait_until_listening "$run_dir/serve.log"
}

# One batch run of side $1 (binary $2, answer $3): prints "rate p99 cpu_us_per_invoice split".
batch_run() {
  start_server "$1" "$2"
  local dir=$run_dir port=$run_port server=$server_pid
  "$load" bench --target "127.0.0.1:$port" --invoices "$invoices" --connections "$connections" \
    --batch "$batch" --answer "$3" --unary-rate 0 > "$dir/bench.txt" 2>&1 &
  local bench=$!
  # The first PostInvoices (or PostInvoicesBrief) answer ends the seeding.
  for _ in $(seq 6000); do
    grep -aqE "RedemptionService/PostInvoices(Brief)? grpc" "$dir/serve.log" && break; sleep 0.01
  done
  thread_ticks "$server" > "$dir/before.txt"
  local stat_before; stat_before=$(head -1 /proc/stat)
  wait "$bench"
  thread_ticks "$server" > "$dir/after.txt"
  local idle; idle=$(machine_idle_share "$stat_before" "$(head -1 /proc/stat)")
  kill -TERM "$server"; wait "$server" || true; server_pid=""
  local rate p99
  rate=$(grep -o "= [0-9]* invoices/s" "$dir/bench.txt" | grep -o "[0-9]*")
  p99=$(grep -o "p99 [0-9.]*" "$dir/bench.txt" | head -1 | cut -d' ' -f2)
  # Ticks are 1/100 s: µs per invoice = ticks × 10,000 / invoices.
  join -a2 -e 0 -o 0,1.2,2.2 "$dir/before.txt" "$dir/after.txt" | awk -v n="$invoices" -v rate="$rate" -v p99="$p99" '
    {d = ($3 - $2) * 10000 / n; total += d; if (d > 0) split_ = split_ sprintf(" %s=%.2f", $1, d)}
    END {printf "%s %s %.2f%s", rate, p99, total, split_}'
  # The load generator's own CPU over the batches (µs per invoice), where it says.
  local client; client=$(grep -o "load generator CPU over the batches: [0-9.]*" "$dir/bench.txt" | grep -o "[0-9.]*$" || true)
  echo " machine-idle=$idle client=${client:-?}"
}

# The share of the machine's CPU time that was idle (or waiting for I/O) between two
# `cpu` lines of /proc/stat: what no thread of any process used.
machine_idle_share() {
  awk -v before="$1" -v after="$2" 'BEGIN {
    n = split(before, b); split(after, a)
    for (i = 2; i <= n && i <= 9; i++) total += a[i] - b[i]
    idle = a[5] - b[5] + a[6] - b[6]
    printf "%.3f", (total > 0 ? idle / total : 0) }'
}

unary_run() {
  start_server "$1" "$2"
  local dir=$run_dir port=$run_port server=$server_pid
  "$load" bench --target "127.0.0.1:$port" --invoices 0 --connections 4 --unary-rate 2000 \
    --unary-seconds 10 --list-clients "$list_clients" > "$dir/bench.txt" 2>&1
  kill -TERM "$server"; wait "$server" || true; server_pid=""
  local client server_side
  client=$(grep -A1 "PostInvoice unary" "$dir/bench.txt" | tail -1 | sed 's/ *latency ms: //')
  server_side=$(grep -a "RedemptionService/PostInvoice grpc" "$dir/serve.log" |
    grep -o "elapsed_us=[0-9]*" | cut -d= -f2 | sort -n |
    awk '{a[NR] = $1} END {printf "p50 %.2f  p99 %.2f  p999 %.2f  max %.2f", a[int(NR/2)]/1000, a[int(NR*0.99)]/1000, a[int(NR*0.999)]/1000, a[NR]/1000}')
  echo "client: $client | server (access log): $server_side"
}

# The two builds' sides in the order round $1 runs them: "a b" in odd rounds, "b a" in
# even ones, so that whatever a run leaves for the next one (its data directory deleted
# at the next start, on ext4 mounted with `discard`; the page cache it filled) falls on
# both builds alike, not on one. In the thirty-sixth round, in A B A B order, one build's
# writer ran at ~1.8x its usual CPU per invoice in 12 of 14 rounds and made the other
# look 1.4x faster; with the order alternated it did in none of 16 runs. The cause was
# not found (`benches/results/2026-12-04-issue12-thirty-sixth-round.txt`, 5d and 5e).
sides_in_order() { if [ $(($1 % 2)) = 1 ]; then echo "a b"; else echo "b a"; fi; }
binary_of() { if [ "$1" = a ]; then echo "${binaries[0]}"; else echo "${binaries[1]}"; fi; }
answer_of() { if [ "$1" = a ]; then echo "$answer_a"; else echo "$answer_b"; fi; }

echo "# benches/ab.sh $(date -u +%FT%TZ): A=${binaries[0]} B=${binaries[1]}"
if [ "$unary" = 1 ]; then
  echo "# unary PostInvoice at 2,000/s for 10 s, $list_clients ListVouchers clients; latency ms"
  for round in $(seq "$rounds"); do
    for side in $(sides_in_order "$round"); do
      echo "round $round ${side^^}  $(unary_run "$side" "$(binary_of "$side")")"
    done
  done
  exit 0
fi
echo "# $invoices invoices, $connections connections × $batch, answers A $answer_a, B $answer_b; rate invoices/s, batch p99 ms, server CPU µs per invoice (by thread)"
ratios=()
for round in $(seq "$rounds"); do
  for side in $(sides_in_order "$round"); do
    printf -v "$side" '%s' "$(batch_run "$side" "$(binary_of "$side")" "$(answer_of "$side")")"
    echo "round $round ${side^^}  rate ${!side}"
  done
  ratios+=("$(awk -v a="${a%% *}" -v b="${b%% *}" -v ca="$(echo "$a" | cut -d' ' -f3)" \
    -v cb="$(echo "$b" | cut -d' ' -f3)" 'BEGIN {printf "%.3f %.3f", b / a, cb / ca}')")
done
printf '%s\n' "${ratios[@]}" | awk '{printf "round %d B / A: rate %s, server CPU per invoice %s\n", NR, $1, $2}'
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2)}'; }
echo "median B / A over $rounds rounds: rate $(printf '%s\n' "${ratios[@]}" | cut -d' ' -f1 | median), server CPU per invoice $(printf '%s\n' "${ratios[@]}" | cut -d' ' -f2 | median)"
