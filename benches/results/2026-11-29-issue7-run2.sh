#!/bin/bash
# gRPC bench interleaved, then recovery + verify memory
S=/var/tmp/perf7; mkdir -p $S
for round in 1 2; do
 for which in baseline current; do
  if [ $which = baseline ]; then BIN=/work/baseline-target/release/voucher-ledger; dir=/work/baseline; else BIN=/work/recon-target/release/voucher-ledger; dir=/work/main; fi
  cd $dir; rm -rf $S/grpc
  $BIN serve --data-dir $S/grpc --listen 127.0.0.1:50077 --config config/server.toml >/dev/null 2>&1 &
  server=$!; sleep 1.5
  echo "== round $round $which grpc"
  timeout 300 $BIN bench --target 127.0.0.1:50077 --invoices 1000000 --connections 4 --batch 4096 --unary-rate 2000 --unary-seconds 10 2>&1 | tail -12
  kill -TERM $server; wait $server
 done
done
for which in baseline current; do
  if [ $which = baseline ]; then BIN=/work/baseline-target/release/voucher-ledger; dir=/work/baseline; else BIN=/work/recon-target/release/voucher-ledger; dir=/work/main; fi
  cd $dir; rm -rf $S/crash
  echo "== $which recovery after crash 10M"
  timeout 900 $BIN bench-recovery --data-dir $S/crash --events 10000000 --crash 2>/dev/null | tail -6
  echo "== $which verify 10M"
  /usr/bin/time -f "verify wall %e s maxrss %M KiB" $BIN verify --data-dir $S/crash 2>&1 | tail -4
done
rm -rf $S
