#!/usr/bin/env bash
# The state-machine benchmark of several builds, rounds interleaved: each round runs each
# binary once and prints criterion's throughput [low median high]. For a change to the
# pure state machine, before `benches/compare.sh` (which runs the same benchmark).
#
#   benches/state-machine-ab.sh ROUNDS BENCH_BINARY...
#
# A bench binary is what `cargo bench --no-run --bench state_machine` names
# (`$CARGO_TARGET_DIR/release/deps/state_machine-<hash>`); copy it aside before building
# the next commit, since the next build overwrites it.
set -eu
[ $# -ge 2 ] || { sed -n 2,9p "$0" >&2; exit 2; }
rounds=$1; shift
for bin in "$@"; do [ -x "$bin" ] || { echo "error: $bin is not executable" >&2; exit 2; }; done
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    "$bin" --bench --warm-up-time 2 --measurement-time 8 --noplot > "$scratch/out" 2>&1 || true
    echo "round $round $(basename "$bin") $(grep -m1 "thrpt:" "$scratch/out" | sed 's/.*thrpt: *\[//; s/\]//')"
  done
done
