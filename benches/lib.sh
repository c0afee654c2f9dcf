# Shared by the bench scripts (sourced, not run), from the repository's root.

# Prints the path of this checkout's load generator (`voucher-ledger` in the release
# target directory, `CARGO_TARGET_DIR` if set), building it first if it is missing.
load_generator() {
  # LOAD_GENERATOR names another build's binary, for an A/B of load generators.
  if [ -n "${LOAD_GENERATOR:-}" ]; then echo "$LOAD_GENERATOR"; return; fi
  local target_dir="${CARGO_TARGET_DIR:-target}"
  case "$target_dir" in /*) ;; *) target_dir="$(pwd)/$target_dir" ;; esac
  [ -x "$target_dir/release/voucher-ledger" ] ||
    cargo build --release --locked --quiet --bin voucher-ledger >&2
  echo "$target_dir/release/voucher-ledger"
}

# Waits up to 30 s for a server's log ($1) to say it is listening. Returns 0 either way;
# a caller that must know checks the log itself.
wait_until_listening() {
  for _ in $(seq 300); do grep -q "listening on" "$1" && break; sleep 0.1; done
}
