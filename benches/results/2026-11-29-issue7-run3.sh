#!/bin/bash
I7=/work/baseline-target/release/deps/engine-dabc1dd424903355
C=/work/recon-target/release/deps/engine-0a25e6cfe3050e4b
for round in 1 2; do
  cd /work/issue7; echo "== round $round b3b1279 (issue 7) engine"; $I7 --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E '^engine (batch|via)'
  cd /work/main; echo "== round $round current engine"; $C --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E '^engine (batch|via)'
done
