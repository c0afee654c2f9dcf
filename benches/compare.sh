#!/usr/bin/env bash
# Side by side, in one run: TigerBeetle's own benchmark, this project's gRPC PostInvoices
# load (1 connection × 8,189 and 4 connections × 4,096) and its engine and state-machine
# benchmarks, rounds interleaved, then the ratios (ours / TigerBeetle; new / old with
# --baseline). Only ratios from one run mean anything: this machine's speed moves by 2×
# from day to day.
#
#   benches/compare.sh [--rounds N] [--baseline COMMIT] [--no-engine] [--no-unary]
#                      [--brief] [--recovery EVENTS] [--time-limit S] SIZE...
#
#   SIZE           invoices (and transfers) per run: 1M, 10M, 50M or a plain number
#   --rounds N     interleaved rounds (default 2)
#   --baseline C   also build commit C (a git worktree) and run its gRPC and engine
#                  benchmarks right after the current build's, printing new / old
#   --no-engine    skip the engine and state-machine benchmarks
#   --brief        also run the current build's two shapes with PostInvoicesBrief (the
#                  same batches, answered with only the exceptions and the totals, as
#                  TigerBeetle answers only failures); rows "1x8189-brief", "4x4096-brief".
#                  Odd rounds run PostInvoices first, even rounds the brief calls
#   --no-unary     skip the unary step: PostInvoice at 2,000/s for 10 s after 100,000
#                  invoices, alone and (current build only) beside 8 ListVouchers clients
#   --recovery N   once per build after the rounds: fill a log to N events through the
#                  library, leave it as a crash would, time restart to SERVING and its RSS
#   --time-limit S stop starting new steps after S seconds (default 5400); each step is
#                  also killed past what is left
#
# Environment: CARGO_TARGET_DIR (the warm release target; the baseline builds in
# BASELINE_TARGET_DIR, default CARGO_TARGET_DIR-baseline, made on first use as a
# hard-linked copy of it; relative paths are taken from the project root), TB_DIR (default
# ../tb or /work/tb: a clone of tigerbeetle; built with ../shared/peers/tigerbeetle/build.sh
# when its binary is missing), ZIG_VENV (default beside TB_DIR: zigvenv), SHARED_DIR
# (default ../shared), SCRATCH (default /var/tmp/voucher-ledger-compare), PORT (50177),
# MIN_FREE_GB (8: a step is skipped when less disk is free).
#
# The load generator is always the current build's `voucher-ledger bench` (also against the
# baseline's server), so new / old compares servers, not clients. fsync is on everywhere. The server's CPU time per invoice is read from /proc/PID/stat
# (utime + stime) before and after each load run, less the CPU a run of one invoice takes
# (the load generator first seeds 25,050 commands; measured once per build).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

count_of() {
  case "$1" in
    *[Mm]) echo $(( ${1%[Mm]} * 1000000 )) ;;
    *[Kk]) echo $(( ${1%[Kk]} * 1000 )) ;;
    *[!0-9]*|'') echo "error: size '$1' is not a count (1M, 10M, 500K or a number)" >&2; exit 2 ;;
    *) echo "$1" ;;
  esac
}
rounds=2
baseline=""
engine=1
brief=0
unary=1
recovery=0
time_limit=5400
sizes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --baseline) baseline="$2"; shift 2 ;;
    --no-engine) engine=0; shift ;;
    --brief) brief=1; shift ;;
    --no-unary) unary=0; shift ;;
    --recovery) recovery="$(count_of "$2")"; shift 2 ;;
    --time-limit) time_limit="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) sizes+=("$1"); shift ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(1M 10M)

counts=()
for size in "${sizes[@]}"; do counts+=("$(count_of "$size")"); done

# Absolute: the baseline is built from inside its worktree, where a relative path would
# name another (empty) directory and start a cold build of RocksDB.
CARGO_TARGET_DIR="$(realpath -m "${CARGO_TARGET_DIR:-/var/cache/voucher-ledger-target}")"
export CARGO_TARGET_DIR
if [ -n "${BASELINE_TARGET_DIR:-}" ]; then
  BASELINE_TARGET_DIR="$(realpath -m "$BASELINE_TARGET_DIR")"
fi
shared="${SHARED_DIR:-$repo/../shared}"
[ -d "$shared" ] || shared=/work/shared
tb_dir="${TB_DIR:-$repo/../tb}"
[ -d "$tb_dir" ] || tb_dir=/work/tb
zig_venv="${ZIG_VENV:-$(dirname "$tb_dir")/zigvenv}"
scratch="${SCRATCH:-/var/tmp/voucher-ledger-compare}"
port="${PORT:-50177}"
min_free_gb="${MIN_FREE_GB:-8}"
clock_ticks=$(getconf CLK_TCK)
started=$(date +%s)
mkdir -p "$scratch"
results="$scratch/results.tsv"
: > "$results"

remaining() { echo $(( time_limit - ($(date +%s) - started) )); }
out_of_time() { [ "$(remaining)" -le 10 ]; }
free_gb() { df -BG --output=avail "$scratch" | tail -1 | tr -dc 0-9; }
record() { printf '%s\n' "$(IFS=$'\t'; echo "$*")" >> "$results"; }

# ------------------------------------------------------------------------- builds
echo "== building (if needed)"
tb="$tb_dir/zig-out/bin/tigerbeetle"
if [ ! -x "$tb" ]; then
  "$shared/peers/tigerbeetle/build.sh" "$tb_dir" "$zig_venv"
fi

# Copies a build's server binary and benchmark executables into $2, so that a second
# build in the same target directory cannot replace them under a running step.
build_into() {
  local source="$1" into="$2" target="$3"
  mkdir -p "$into"
  (cd "$source" && CARGO_TARGET_DIR="$target" cargo build --release --locked --quiet --bin voucher-ledger)
  cp "$target/release/voucher-ledger" "$into/voucher-ledger"
  cp "$source/config/server.toml" "$into/server.toml"
  if [ "$engine" = 1 ]; then
    (cd "$source" && CARGO_TARGET_DIR="$target" cargo bench --locked --no-run --message-format=json \
        --bench engine --bench state_machine 2>/dev/null) |
      python3 -c '
import json, sys
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and "bench" in message["target"]["kind"]:
        print(message["target"]["name"], message["executable"])
' | while read -r name executable; do cp "$executable" "$into/bench-$name"; done
  fi
  git -C "$source" rev-parse --short HEAD > "$into/commit"
  if ! git -C "$source" diff --quiet HEAD -- src benches Cargo.toml Cargo.lock; then
    echo "+uncommitted" >> "$into/commit"
  fi
}

builds=(new)
build_into "$repo" "$scratch/bin-new" "$CARGO_TARGET_DIR"
if [ -n "$baseline" ]; then
  builds+=(old)
  baseline_tree="$scratch/baseline-src"
  if [ ! -e "$baseline_tree/.git" ]; then
    git worktree add --detach "$baseline_tree" "$baseline" >/dev/null
  else
    git -C "$baseline_tree" checkout -q --detach "$baseline"
  fi
  # The baseline builds in its own target directory: cargo gives the build script's
  # output (the generated protos) the same directory in every checkout, so one target
  # shared by two trees would compile each against the other's protos. A hard-linked
  # copy of the warm target costs little disk and no cold RocksDB build; its lock file,
  # this crate's build-script outputs and RocksDB's (a rebuild writes librocksdb.a in
  # place: through a shared link it would change, and so rebuild, the other tree's too)
  # are made private. A baseline directory copied before this rule, or before the
  # current tree rebuilt RocksDB, may share them: delete it and let it be copied again.
  baseline_target="${BASELINE_TARGET_DIR:-$CARGO_TARGET_DIR-baseline}"
  if [ ! -d "$baseline_target" ]; then
    cp -al "$CARGO_TARGET_DIR" "$baseline_target"
    rm -f "$baseline_target/release/.cargo-lock"
    for out in "$baseline_target"/release/build/voucher-ledger-* "$baseline_target"/release/.fingerprint/voucher-ledger-* \
               "$baseline_target"/release/build/librocksdb-sys-* "$baseline_target"/release/.fingerprint/librocksdb-sys-*; do
      [ -d "$out" ] || continue
      cp -r "$out" "$out.private" && rm -rf "$out" && mv "$out.private" "$out"
    done
    # The copied build script was compiled from the other tree's build.rs: rebuild it.
    touch "$baseline_tree/build.rs"
  fi
  build_into "$baseline_tree" "$scratch/bin-old" "$baseline_target"
fi

echo "== machine"
echo "date       $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu        $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory     $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
echo "kernel     $(uname -r)"
echo "disk       $(df -h "$scratch" | tail -1 | awk '{print $1 ", " $4 " free"}')"
echo "load       $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the start"
echo "builds     new $(tr '\n' ' ' < "$scratch/bin-new/commit")${baseline:+ old $(tr '\n' ' ' < "$scratch/bin-old/commit")}"
echo "peer       TigerBeetle $(git -C "$tb_dir" rev-parse --short HEAD 2>/dev/null || echo '?') ($tb)"

# ------------------------------------------------------------------------- steps
run_tigerbeetle() {
  local round="$1" count="$2" directory="$scratch/tb" output need_gb
  # TigerBeetle's benchmark file takes ~1.9 KB per transfer (18 GB at 10 M on
  # 2026-11-29); a full disk kills the replica and leaves the driver waiting forever.
  need_gb=$(( count * 2 / 1000000 + min_free_gb ))
  if [ "$(free_gb)" -lt "$need_gb" ]; then
    echo "round $round  $count  tigerbeetle skipped: its data file needs ~$(( count * 2 / 1000000 )) GiB, $(free_gb) GiB free"
    return 0
  fi
  rm -rf "$directory"; mkdir -p "$directory"
  output=$(cd "$directory" && timeout "$(remaining)" "$tb" benchmark --transfer-count="$count" 2>&1) || {
    echo "tigerbeetle benchmark failed or timed out:"; echo "$output" | tail -5; rm -rf "$directory"; return 0; }
  rm -rf "$directory"
  # TigerBeetle's data file (over 1 GB at 1 M) is still being written back: finish that
  # here, or the next step's fsyncs wait for it and its batch p99 grows (seen on
  # 2026-11-29: the build run right after TigerBeetle lost 1.2-1.6x in p99).
  sync
  local rate p99
  rate=$(echo "$output" | sed -n 's/^load accepted = \([0-9]*\) tx\/s.*/\1/p')
  p99=$(echo "$output" | sed -n 's/^batch latency p99 *= *\([0-9]*\) ms.*/\1/p')
  echo "round $round  $count  tigerbeetle              ${rate:-?} tx/s  batch p99 ${p99:-?} ms"
  record "$round" "$count" tigerbeetle "1x8189" "${rate:-}" "${p99:-}" "" ""
}

# Removes a run's data directory and waits until the file system has finished with it.
# The machines of issue 12 mount ext4 with `discard`: deleting gigabytes sends the device
# discards, and a step started meanwhile shares the disk with them. Before this, the unary
# step right after a 10 M directory's removal had a p99 of 412 and 436 ms in two runs; not
# in the one run since (twenty-sixth round), which is too few to say it was the cause.
remove_and_settle() {
  rm -rf "$1"
  sync
}

cpu_ticks() {
  local stat rest
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return 0; }
  rest=${stat##*) }
  # shellcheck disable=SC2086
  set -- $rest
  echo $(( ${12} + ${13} ))
}

# Starts `serve` of build $1 on a fresh data directory $2; sets `server` to its pid and
# returns 1 (printing the log's tail) if it does not listen within 30 s.
start_server() {
  local bin="$scratch/bin-$1" directory="$2" log="$scratch/serve.log" waited=0
  rm -rf "$directory"
  "$bin/voucher-ledger" serve --data-dir "$directory" --listen "127.0.0.1:$port" \
      --config "$bin/server.toml" > "$log" 2>&1 &
  server=$!
  until grep -q "listening on" "$log" 2>/dev/null; do
    sleep 0.1; waited=$((waited + 1))
    if [ "$waited" -gt 300 ] || ! kill -0 "$server" 2>/dev/null; then
      echo "serve did not start:"; tail -5 "$log"; kill "$server" 2>/dev/null || true; return 1
    fi
  done
  sleep 0.5
}

declare -A seed_ticks
run_grpc() {
  local round="$1" count="$2" build="$3" connections="$4" batch="$5" answer="${6:-every}"
  local bin="$scratch/bin-$build" directory="$scratch/grpc-$build" server
  start_server "$build" "$directory" || return 0
  local before output client_cpu after TIMEFORMAT='%U %S'
  before=$(cpu_ticks "$server")
  # One load generator for every server (the current build's): new / old compares servers.
  client_cpu=$( { time timeout "$(remaining)" "$scratch/bin-new/voucher-ledger" bench --target "127.0.0.1:$port" \
      --invoices "$count" --connections "$connections" --batch "$batch" --answer "$answer" \
      --unary-rate 0 > "$scratch/bench.out" 2>&1; } 2>&1 ) || true
  after=$(cpu_ticks "$server")
  output=$(cat "$scratch/bench.out")
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  remove_and_settle "$directory"
  local rate p99 accepted server_us client_us mode="${connections}x$batch"
  [ "$answer" = every ] || mode="$mode-$answer"
  rate=$(echo "$output" | sed -n 's/^PostInvoices: .* = \([0-9]*\) invoices\/s.*/\1/p')
  accepted=$(echo "$output" | sed -n 's/^PostInvoices: \([0-9]*\) accepted.*/\1/p')
  p99=$(echo "$output" | sed -n 's/.*batch latency ms: .*p99 \([0-9.]*\).*/\1/p')
  if [ -z "$rate" ] || [ -z "$accepted" ] || [ "$accepted" = 0 ]; then
    echo "voucher-ledger bench ($build, $mode) failed:"; echo "$output" | tail -5
    return 0
  fi
  if [ "$count" = 1 ]; then
    seed_ticks[$build]=$((after - before))
    echo "seeding cost of build $build: $((after - before)) ticks of server CPU (subtracted below)"
    return 0
  fi
  server_us=$(awk -v t=$((after - before - ${seed_ticks[$build]:-0})) -v hz="$clock_ticks" -v n="$accepted" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
  # The load generator's CPU over the batches alone, as it reports it; a build that does
  # not say gets its whole run's CPU from `time`, which counts the seeding too (~1 s).
  client_us=$(echo "$output" | sed -n 's/.*load generator CPU over the batches: \([0-9.]*\) .*/\1/p')
  [ -n "$client_us" ] || client_us=$(echo "$client_cpu" | awk -v n="$accepted" '{printf "%.2f", ($1 + $2) * 1e6 / n}')
  echo "round $round  $count  voucher-ledger $build $mode  $rate invoices/s  batch p99 $p99 ms  server CPU $server_us µs/invoice (client $client_us)"
  record "$round" "$count" "voucher-ledger-$build" "$mode" "$rate" "$p99" "$server_us" "$client_us"
}

run_engine() {
  local round="$1" build="$2" bin="$scratch/bin-$2" output
  [ -x "$bin/bench-engine" ] || return 0
  # A filter that matches no criterion case: only the plain timed runs print (each batch
  # size, then through the engine's queue); criterion's own sampling is skipped.
  output=$(cd "$scratch" && CRITERION_HOME="$scratch/criterion" timeout "$(remaining)" \
      "$bin/bench-engine" --bench plain-runs-only 2>&1) || true
  echo "$output" | grep -E '^engine (batch|via queue batch) +(8189|1024)' | sed "s/^/round $round  $build  /"
  local line rate p99
  for kind in "engine batch  8189" "engine via queue batch  8189"; do
    line=$(echo "$output" | grep -F "$kind:" | head -1)
    rate=$(echo "$line" | sed -n 's/.*: *\([0-9]*\) durable.*/\1/p')
    p99=$(echo "$line" | sed -n 's/.* p99 \([0-9.]*\) ms.*/\1/p')
    [ -n "$rate" ] && record "$round" 0 "engine-$build" "$(echo "$kind" | tr -s ' ' '-')" "$rate" "$p99" "" ""
  done
  output=$(cd "$scratch" && CRITERION_HOME="$scratch/criterion" timeout "$(remaining)" \
      "$bin/bench-state_machine" --bench --warm-up-time 2 --measurement-time 5 2>&1) || true
  rate=$(echo "$output" | grep -m1 'thrpt:' | sed -n 's/.*\[[^ ]* [^ ]* \([0-9.]*\) \([KMG]\)elem\/s.*/\1 \2/p' |
      awk '{m = ($2 == "G") ? 1e9 : ($2 == "M") ? 1e6 : 1e3; printf "%.0f", $1 * m}')
  if [ -n "$rate" ]; then
    echo "round $round  $build  state machine $rate redemptions/s (criterion median)"
    record "$round" 0 "state-machine-$build" "8189" "$rate" "" "" ""
  fi
}

# Unary PostInvoice at 2,000/s for 10 s after 100,000 batched invoices, with $4 clients
# listing vouchers beside it (issue 12's goal: p99 ≤ 2 ms with that read load).
run_unary() {
  local round="$1" build="$2" listers="$3" bin="$scratch/bin-$2" directory="$scratch/unary-$2" server
  start_server "$build" "$directory" || return 0
  local extra=() output p99 lists
  [ "$listers" -gt 0 ] && extra=(--list-clients "$listers")
  output=$(timeout "$(remaining)" "$scratch/bin-new/voucher-ledger" bench --target "127.0.0.1:$port" \
      --invoices 100000 --connections 4 --batch 4096 --unary-rate 2000 --unary-seconds 10 \
      "${extra[@]}" 2>&1) || true
  kill -TERM "$server"; wait "$server" 2>/dev/null || true
  remove_and_settle "$directory"
  p99=$(echo "$output" | sed -n '/PostInvoice unary/,$p' | sed -n 's/.*latency ms: p50 [0-9.]*  p99 \([0-9.]*\).*/\1/p' | head -1)
  lists=$(echo "$output" | sed -n 's/.*ListVouchers clients made \([0-9]*\) calls.*/\1/p')
  if [ -z "$p99" ]; then echo "unary step ($build, $listers listers) failed:"; echo "$output" | tail -5; return 0; fi
  echo "round $round  $build  unary PostInvoice at 2,000/s: p99 $p99 ms  ($listers ListVouchers clients${lists:+, $lists list calls})"
  record "$round" 0 "unary-$build" "2000/s+${listers}-listers" "2000" "$p99" "" ""
}

# Restart after a crash with $2 events in the log: time to SERVING and RSS.
run_recovery() {
  local build="$1" events="$2" bin="$scratch/bin-$1" directory="$scratch/recovery-$1" output
  rm -rf "$directory"
  output=$(cd "$bin" && timeout "$(remaining)" ./voucher-ledger bench-recovery --data-dir "$directory" \
      --events "$events" --config server.toml --crash 2>/dev/null) || true
  remove_and_settle "$directory"
  local seconds rss
  seconds=$(echo "$output" | sed -n 's/.*serving \([0-9.]*\) s after start.*/\1/p')
  rss=$(echo "$output" | sed -n 's/.*RSS \([0-9]*\) MiB.*/\1/p')
  echo "$build  restart after a crash with $events events: ${seconds:-?} s to SERVING, RSS ${rss:-?} MiB  ($(echo "$output" | head -1))"
  [ -n "$seconds" ] && record 1 0 "restart-$build" "$events-events" "$rss" "$(awk -v s="$seconds" 'BEGIN {print s * 1000}')" "" ""
}

step() {
  if out_of_time; then echo "(time limit: skipped $*)"; return 0; fi
  if [ "$(free_gb)" -lt "$min_free_gb" ]; then echo "(less than $min_free_gb GiB free: skipped $*)"; return 0; fi
  "$@"
}

# The server CPU of seeding alone (a run of one invoice), per build.
for build in "${builds[@]}"; do step run_grpc 0 1 "$build" 1 1; done

for round in $(seq "$rounds"); do
  echo "== round $round of $rounds"
  if [ "$engine" = 1 ]; then
    for build in "${builds[@]}"; do step run_engine "$round" "$build"; done
  fi
  # The builds take turns going first, so neither always follows TigerBeetle.
  order=("${builds[@]}")
  if [ $((round % 2)) = 0 ] && [ "${#builds[@]}" = 2 ]; then order=("${builds[1]}" "${builds[0]}"); fi
  for count in "${counts[@]}"; do
    step run_tigerbeetle "$round" "$count"
    for build in "${order[@]}"; do
      answers=(every)
      if [ "$brief" = 1 ] && [ "$build" = new ]; then
        answers=(every brief)
        [ $((round % 2)) = 0 ] && answers=(brief every)
      fi
      for answer in "${answers[@]}"; do
        step run_grpc "$round" "$count" "$build" 1 8189 "$answer"
        step run_grpc "$round" "$count" "$build" 4 4096 "$answer"
      done
    done
  done
  if [ "$unary" = 1 ]; then
    for build in "${builds[@]}"; do step run_unary "$round" "$build" 0; done
    step run_unary "$round" new 8
  fi
done
if [ "$recovery" -gt 0 ]; then
  echo "== restart after a crash"
  for build in "${builds[@]}"; do step run_recovery "$build" "$recovery"; done
fi

# ------------------------------------------------------------------------- summary
echo "== summary (each ratio pairs figures of the same round; min–max over rounds)"
python3 - "$results" <<'PYTHON'
import sys
from collections import defaultdict

rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
by = defaultdict(dict)  # (count, system, mode) -> round -> (rate, p99, server_us, client_us)
for round_, count, system, mode, rate, p99, server_us, client_us in rows:
    by[(int(count), system, mode)][round_] = (
        float(rate) if rate else None,
        float(p99) if p99 else None,
        float(server_us) if server_us else None,
        float(client_us) if client_us else None,
    )

def spread(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return "–"
    median = values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
    fmt = (lambda v: f"{v:,.0f}") if median >= 100 else (lambda v: f"{v:.2f}")
    return fmt(median) + (f" ({fmt(values[0])}–{fmt(values[-1])})" if len(values) > 1 else "")

def ratios(numerator, denominator, field):
    out = []
    for round_, values in numerator.items():
        other = denominator.get(round_)
        if other and values[field] and other[field]:
            out.append(values[field] / other[field])
    return out

counts = sorted({key[0] for key in by if key[0] > 0})
print("| invoices | who | rate /s | batch p99 ms | server CPU µs/invoice | client CPU µs/invoice | rate ÷ TigerBeetle | p99 ÷ TigerBeetle |")
print("|--:|---|--:|--:|--:|--:|--:|--:|")
for count in counts:
    tigerbeetle = by.get((count, "tigerbeetle", "1x8189"), {})
    for key in sorted(k for k in by if k[0] == count):
        runs = by[key]
        who = key[1] if key[1] == "tigerbeetle" else f"{key[1]} {key[2]}"
        rate_ratio = "" if key[1] == "tigerbeetle" else spread(ratios(runs, tigerbeetle, 0)) + "×"
        p99_ratio = "" if key[1] == "tigerbeetle" else spread(ratios(runs, tigerbeetle, 1)) + "×"
        print(f"| {count:,} | {who} | {spread(r[0] for r in runs.values())} | {spread(r[1] for r in runs.values())} "
              f"| {spread(r[2] for r in runs.values())} | {spread(r[3] for r in runs.values())} | {rate_ratio} | {p99_ratio} |")

benchmarks = sorted(key for key in by if key[0] == 0)
if benchmarks:
    print()
    print("| benchmark | build | rate /s (restart: RSS MiB) | batch p99 ms (unary: call p99; restart: ms to SERVING) |")
    print("|---|---|--:|--:|")
    for key in benchmarks:
        runs = by[key]
        name, build = key[1].rsplit("-", 1)
        print(f"| {name} {key[2]} | {build} | {spread(r[0] for r in runs.values())} | {spread(r[1] for r in runs.values())} |")

new_old = [key for key in by if key[1].endswith("-new")]
if any(key[1].replace("-new", "-old") == other[1] for key in new_old for other in by):
    print()
    print("| what | new ÷ old, rate | new ÷ old, batch p99 | new ÷ old, server CPU |")
    print("|---|--:|--:|--:|")
    for key in sorted(new_old):
        old = by.get((key[0], key[1].replace("-new", "-old"), key[2]))
        if not old:
            continue
        what = f"{key[1][:-4]} {key[2]}" + (f" at {key[0]:,}" if key[0] else "")
        print(f"| {what} | {spread(ratios(by[key], old, 0))}× | {spread(ratios(by[key], old, 1))}× | {spread(ratios(by[key], old, 2))}× |")
PYTHON
echo "raw figures: $results"
echo "load       $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at the end; took $(( $(date +%s) - started )) s"
