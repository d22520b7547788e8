#!/usr/bin/env bash
# Runs every fault script against BINARY; exits non-zero if any finds its
# defect. `--quick` (CI) uses smaller numbers and fits in a few minutes;
# without it, the numbers of the README "Failure modes" table (build with
# `cargo build --release` and pass target/release/parcel-hub).
#
#   tests/faults/run.sh target/debug/parcel-hub --quick
set -euo pipefail
binary="${1:?usage: tests/faults/run.sh BINARY [--quick]}"
mode="${2:-}"
here="$(dirname "$0")"
failed=0
for check in attachments half-open sigterm log-flood get-all join-storm learn-leak; do
  printf '\n-- %s --\n' "$check"
  if ! python3 "$here/faults.py" "$binary" "$check" $mode; then
    failed=1
  fi
done
exit "$failed"
