#!/usr/bin/env bash
# The anatomy of the batch tail: runs one server build through N fresh runs of the
# PostInvoices load and names, for every batch much slower than the run's median, what
# RocksDB was doing meanwhile (issue 12: the 1 M batch p99 is set by a few such batches).
#
#   benches/tail.sh [--runs N] [--invoices N] [--connections N --batch N] [--slower X] BIN [LABEL]
#
# Defaults: 3 runs of 1,000,000 invoices, 1 connection × 8,189, a batch is "slow" above
# 2× the run's median. Each run starts a fresh server (config/server.toml, a new data
# directory), drives it with this checkout's load generator, and keeps the server's
# access log and RocksDB's LOG in $SCRATCH/LABEL-K (default /var/tmp/voucher-ledger-tail).
# For each slow batch (server side: the access log's elapsed time) it prints its place in
# the run and the RocksDB events whose time overlaps it:
#   flush:FAMILY        a memtable of that column family being written to a table file
#   compaction:FAMILY   a compaction of that family
#   wal-deleted:N ms    a write-ahead-log file being unlinked, N the time since RocksDB's
#                       previous log line (on ext4 mounted with `discard` the unlink trims
#                       the file's blocks, and a concurrent fdatasync waits for it)
#   start               one of the first three batches after the server started
# and last a tally of the slow batches by cause over all runs. The server's data
# directories are removed after each run; the logs are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
runs=3 invoices=1000000 connections=1 batch=8189 slower=2
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --invoices) invoices="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --slower) slower="$2"; shift 2 ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n 2,21p "$0" >&2; exit 2; }
bin=$(realpath "$1"); label=${2:-$(basename "$bin")}
[ -x "$bin" ] || { echo "error: $bin is not executable" >&2; exit 2; }
load=$(load_generator)
scratch="${SCRATCH:-/var/tmp/voucher-ledger-tail}"
mkdir -p "$scratch"
server_pid=""
trap '[ -z "$server_pid" ] || kill -TERM "$server_pid" 2>/dev/null || true' EXIT

echo "# benches/tail.sh $(date -u +%FT%TZ): $bin, $runs runs of $invoices invoices, $connections × $batch, slow = above ${slower}× the run's median"
dirs=()
for run in $(seq "$runs"); do
  dir="$scratch/$label-$run" port=$((50700 + RANDOM % 300))
  rm -rf "$dir"; mkdir -p "$dir"
  "$bin" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" --config config/server.toml \
    > "$dir/serve.log" 2>&1 &
  server_pid=$!
  wait_until_listening "$dir/serve.log"
  grep -q "listening on" "$dir/serve.log" || { echo "error: the server did not start: $dir/serve.log" >&2; exit 1; }
  "$load" bench --target "127.0.0.1:$port" --invoices "$invoices" --connections "$connections" \
    --batch "$batch" --unary-rate 0 > "$dir/bench.txt" 2>&1
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
  cp "$dir/data/LOG" "$dir/rocksdb.LOG"
  rm -rf "$dir/data"
  dirs+=("$dir")
done

python3 - "$slower" "${dirs[@]}" <<'PYTHON'
import calendar, collections, re, sys, time

slower = float(sys.argv[1])
tally = collections.Counter()
slow_total = batches_total = 0

def utc(text):  # the server's log: 2026-12-01T19:38:49.361198Z
    seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds + float("0." + text[20:26])

def local(text):  # RocksDB's LOG: 2026/12/01-19:38:49.361198, in the local time zone
    seconds = time.mktime(time.strptime(text[:19], "%Y/%m/%d-%H:%M:%S"))
    return seconds + float("0." + text[20:26])

for directory in sys.argv[2:]:
    batches = []
    for line in open(f"{directory}/serve.log", errors="replace"):
        if "RedemptionService/PostInvoices grpc" in line:
            elapsed = int(re.search(r"elapsed_us=(\d+)", line).group(1)) / 1e6
            end = utc(line)
            batches.append((end - elapsed, end, elapsed))
    events, family_of_job, started, previous = [], {}, {}, None
    for line in open(f"{directory}/rocksdb.LOG", errors="replace"):
        stamp = re.match(r"(\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d\.\d{6})", line)
        if not stamp:
            continue
        at = local(stamp.group(1))
        job = re.search(r"\[([A-Za-z_]+)\] \[JOB (\d+)\]", line)
        if job:
            family_of_job[job.group(2)] = job.group(1)
        event = re.search(r'"job": (\d+), "event": "(flush|compaction)_(started|finished)"', line)
        if event:
            number, kind, phase = event.groups()
            if phase == "started":
                started[number] = at
            elif number in started:
                events.append((started.pop(number), at, f"{kind}:{family_of_job.get(number, '?')}"))
        deleted = re.search(r"Deleted file \S+\.log\b", line)
        if deleted and previous is not None:
            events.append((previous, at, f"wal-deleted:{(at - previous) * 1000:.0f} ms"))
        previous = at
    if not batches:
        print(f"{directory}: no PostInvoices calls in the access log")
        continue
    median = sorted(b[2] for b in batches)[len(batches) // 2]
    bench = open(f"{directory}/bench.txt").read()
    rate = re.search(r"= (\d+) invoices/s", bench)
    p99 = re.search(r"p99 ([\d.]+)", bench)
    print(f"\n{directory}: {len(batches)} batches, {rate.group(1) if rate else '?'} invoices/s, "
          f"client p99 {p99.group(1) if p99 else '?'} ms, server median {median * 1000:.1f} ms")
    for place, (begin, end, elapsed) in enumerate(batches):
        batches_total += 1
        if elapsed <= slower * median:
            continue
        slow_total += 1
        causes = [name for (a, b, name) in events if a < end and b > begin]
        if place < 3:
            causes.insert(0, "start")
        for cause in causes or ["none seen"]:
            # A flush or compaction counts by family; a deletion not by its duration.
            tally[cause if cause.startswith(("flush", "compaction")) else cause.split(":")[0]] += 1
        print(f"  batch {place:4d}  {elapsed * 1000:6.1f} ms  {' '.join(causes) or 'none seen'}")
print(f"\n{slow_total} slow batches of {batches_total}; overlapping (a batch may count under several):")
for cause, count in tally.most_common():
    print(f"  {cause:24s} {count}")
PYTHON
