#!/usr/bin/env bash
# `make demo`: the main job on the project's own fixtures. Probes a backdoored digit classifier
# inside the sandbox (validation, noise, edge cases, trigger search, STRIP on triggered inputs)
# and prints the report; then a clean one for contrast.
set -uo pipefail
cd "$(dirname "$0")/.."
MV=${CARGO_TARGET_DIR:-target}/$(bash scripts/triple.sh)/release/modelvet
[ -x "$MV" ] || { echo "no $MV: run make build first" >&2; exit 2; }
F=tests/fixtures
OUT=target/demo
mkdir -p "$OUT"

echo "=== 1. A backdoored CNN (BadNets 3x3 patch, top-right, target class 3), probed in the sandbox"
$MV probe $F/models/mnist_cnn_patch_tr.onnx \
  --inputs $F/data/mnist_val_x.npy --labels $F/data/mnist_val_y.npy \
  --check $F/data/mnist_cnn_patch_tr_triggered_x.npy \
  --seed 7 -o "$OUT/backdoored.txt"
echo "exit code $? (1: findings at or above high)"
cat "$OUT/backdoored.txt"
echo "(trigger image: $OUT/backdoored.trigger.png; JSON: run with --format json)"

echo
echo "=== 2. A clean MLP for contrast"
$MV probe $F/models/mnist_mlp_clean_a.onnx \
  --inputs $F/data/mnist_val_x.npy --labels $F/data/mnist_val_y.npy --seed 7 -o "$OUT/clean.txt"
echo "exit code $?"
cat "$OUT/clean.txt"
exit 0
