#!/usr/bin/env bash
# `make bench`: every performance target of SPEC, each measured against a named alternative in
# the same run and printed as a ratio. Needs `make build` first (the Makefile does it).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for b in jail_bench.sh probe_bench.sh scan_bench.sh; do
  if [ -f "bench/$b" ]; then
    echo
    echo "################ $b"
    bash "bench/$b" || { echo "bench/$b failed"; status=1; }
  fi
done
exit $status
