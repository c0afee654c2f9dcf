#!/usr/bin/env bash
# Where the server's CPU goes on the gRPC PostInvoices path: `perf record` of every thread
# of `voucher-ledger serve` (fsync on, fresh data directory) while `voucher-ledger bench`
# posts INVOICES invoices from CONNECTIONS connections (1) in batches of BATCH (8,189);
# then the top symbols (self time) and the share of each thread. Recording starts at the
# first PostInvoices answer, so the seeding of centers, enterprises and vouchers is not in
# the samples.
#
#   benches/profile.sh [INVOICES]        (default 1,000,000; needs `perf`)
#   PERF_CALLGRAPH=1 …                   DWARF call stacks; fold them with
#                                        `perf script -F comm,ip,sym --no-inline` (seconds;
#                                        `perf report` of DWARF stacks takes minutes)
#
# Writes perf.data and the reports under $SCRATCH (default /var/tmp/voucher-ledger-profile).
# Proportions are meaningful on a busy machine; absolute times are not.
set -euo pipefail
cd "$(dirname "$0")/.."
invoices="${1:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/voucher-ledger-target}"
scratch="${SCRATCH:-/var/tmp/voucher-ledger-profile}"
port="${PORT:-50188}"
command -v perf >/dev/null || { echo "error: perf is not installed" >&2; exit 2; }
cargo build --release --locked --quiet --bin voucher-ledger
bin="$CARGO_TARGET_DIR/release/voucher-ledger"
rm -rf "$scratch"; mkdir -p "$scratch"
"$bin" serve --data-dir "$scratch/data" --listen "127.0.0.1:$port" --config config/server.toml \
    > "$scratch/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q "listening on" "$scratch/serve.log" && break; sleep 0.1; done
sleep 0.5
# Self time needs no call graph; PERF_CALLGRAPH=1 adds DWARF stacks (large perf.data).
graph=()
[ "${PERF_CALLGRAPH:-0}" = 1 ] && graph=(--call-graph dwarf,8192)
# The recording starts once the load generator has seeded the registry and vouchers, so
# the samples are those of the PostInvoices phase alone.
"$bin" bench --target "127.0.0.1:$port" --invoices "$invoices" --connections ${CONNECTIONS:-1} --batch ${BATCH:-8189} \
    --unary-rate 0 > "$scratch/bench.txt" &
bench=$!
for _ in $(seq 1200); do grep -q "RedemptionService/PostInvoices" "$scratch/serve.log" && break; sleep 0.05; done
perf record -F 999 "${graph[@]}" -p "$server" -o "$scratch/perf.data" 2> "$scratch/perf.log" &
recorder=$!
wait "$bench"
cat "$scratch/bench.txt"
kill -INT "$recorder"; wait "$recorder" || true
kill -TERM "$server"; wait "$server" || true
trap - EXIT
perf report -i "$scratch/perf.data" --no-children --sort symbol --percent-limit 0.7 --stdio \
    2>/dev/null | grep -v '^$' | grep -E '^ +[0-9]' > "$scratch/top-symbols.txt" || true
perf report -i "$scratch/perf.data" --no-children --sort comm --stdio 2>/dev/null |
    grep -E '^ +[0-9]' > "$scratch/threads.txt" || true
echo "== threads (share of samples)"; cat "$scratch/threads.txt"
echo "== top symbols (self)"; head -40 "$scratch/top-symbols.txt"
echo "(full data: $scratch/perf.data; flame graph: perf script -i … | stackcollapse | flamegraph)"
