#!/usr/bin/env bash
# Soak test: a served ledger under gRPC load (PostInvoices batches and unary PostInvoice
# calls), killed with SIGKILL at random moments (0.5 to 5 s apart), restarted, and after
# every kill checked: acknowledged invoices lost, invoices doubled, batches found in part,
# the auditor's full verify, and the server's RSS just before the kill.
#
#   scripts/soak.sh MINUTES            (default 30)
#
# Not part of `make test` (tests/crash.rs runs ten short cycles of the same tool).
# SOAK_DATA_DIR keeps the data directory somewhere chosen; otherwise a temporary one is
# used and removed at the end. Extra arguments after MINUTES go to `voucher-ledger soak`
# (e.g. --batch 1024 --unary-clients 8 --kill-max-ms 10000).
set -euo pipefail
minutes="${1:-30}"
shift || true
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
binary="${CARGO_TARGET_DIR:-target}/release/voucher-ledger"
if [[ -n "${SOAK_DATA_DIR:-}" ]]; then
    work="$SOAK_DATA_DIR"
    mkdir -p "$work"
else
    work="$(mktemp -d /tmp/voucher-ledger-soak.XXXXXX)"
    trap 'rm -rf "$work"' EXIT
fi
echo "soak: ${minutes} min, data in $work/data, $(nproc) cores, $(date -u +%FT%TZ)"
"$binary" soak --data-dir "$work/data" --config config/server.toml \
    --seconds "$((minutes * 60))" "$@"
