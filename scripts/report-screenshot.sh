#!/usr/bin/env bash
# Makes docs/report.png, the README's picture of the bureau's report: seeds the demo year
# into DATA_DIR (about 20 s; skipped if DATA_DIR already holds a ledger), writes the 2026
# report and has headless Chromium photograph the top of the page (no network: the page
# loads nothing).
#
#   scripts/report-screenshot.sh [DATA_DIR]     (default /tmp/year2026)
set -euo pipefail
cd "$(dirname "$0")/.."
data_dir=${1:-/tmp/year2026}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --locked --quiet
binary=${CARGO_TARGET_DIR:-target}/release/voucher-ledger
if [ ! -e "$data_dir/CURRENT" ]; then
  "$binary" demo --data-dir "$data_dir"
fi
"$binary" report --data-dir "$data_dir" --year 2026 --out "$work/report.html"
chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --hide-scrollbars --force-device-scale-factor=1 --window-size=1100,2400 \
  --screenshot="$work/report.png" "file://$work/report.html"
cp "$work/report.png" docs/report.png
echo "docs/report.png: $(stat -c %s docs/report.png) bytes"
