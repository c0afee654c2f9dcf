#!/bin/bash
for round in 1 2; do
  cd /work/baseline; echo "== round $round 8eeeefa (before issue 7) engine"; /tmp/perf7/engine-base --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E '^engine (batch|via)'
  cd /work/issue7; echo "== round $round b3b1279 (issue 7) engine"; /tmp/perf7/engine-issue7 --bench --warm-up-time 1 --measurement-time 2 2>&1 | grep -E '^engine (batch|via)'
done
