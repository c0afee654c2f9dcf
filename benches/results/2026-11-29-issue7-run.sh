#!/bin/bash
B_SM=/work/baseline-target/release/deps/state_machine-ece6f852b70cdb5b
B_EN=/work/baseline-target/release/deps/engine-dabc1dd424903355
C_SM=/work/recon-target/release/deps/state_machine-57e6f044e13684d7
C_EN=/work/recon-target/release/deps/engine-0a25e6cfe3050e4b
for round in 1 2 3; do
 for which in baseline current; do
  if [ $which = baseline ]; then SM=$B_SM; EN=$B_EN; dir=/work/baseline; else SM=$C_SM; EN=$C_EN; dir=/work/main; fi
  cd $dir
  echo "== round $round $which state_machine"; $SM --bench --warm-up-time 2 --measurement-time 5 2>&1 | grep -E 'thrpt:' | head -1
  echo "== round $round $which engine"; $EN --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E '^engine (batch|via)'
 done
done
