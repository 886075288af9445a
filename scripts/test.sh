#!/usr/bin/env bash
# `make test`: every test of the workspace (release profile, shared with the build), then one
# closing line adding up the results of every test binary.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
${CARGO:-cargo} test --release --workspace --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
