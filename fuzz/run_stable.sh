#!/usr/bin/env bash
# Runs a fuzz target with libFuzzer on a stable toolchain (no cargo-fuzz, no nightly): the
# coverage instrumentation cargo-fuzz adds is passed as stable -C flags, sanitizers are off.
# Usage: fuzz/run_stable.sh TARGET [SECONDS] [SEED_DIR...]
# Crashes land in fuzz/artifacts/TARGET-*; the grown corpus in fuzz/corpus/TARGET.
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: run_stable.sh TARGET [SECONDS] [SEED_DIR...]}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps RUSTFLAGS off build scripts and proc macros.
cargo build --release --bin "$target" --target "$triple"
mkdir -p "corpus/$target" artifacts
for seeds in "$@"; do cp -n "$seeds"/* "corpus/$target/" 2>/dev/null || true; done
exec "target/$triple/release/$target" "corpus/$target" -max_total_time="$seconds" -timeout=5 \
  -rss_limit_mb=2048 -malloc_limit_mb=256 -artifact_prefix="artifacts/$target-" -print_final_stats=1
