#!/usr/bin/env bash
# Static-scan benchmark (SPEC "Performance targets"): files per second of `modelvet scan` against
# `picklescan` on the same pickle-family corpus, in the same run, and MB/s of `modelvet scan` on
# a large benign pickle and on a large safetensors file, one core. Prints the ratios.
# Run: bash bench/scan_bench.sh (or make bench-scan). Rates are per CPU second (user + sys), best
# of three, so builds sharing the machine do not decide the ratio.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/$(bash "$ROOT/scripts/triple.sh")/release"
BIN="$OUT/modelvet"
GEN="$OUT/examples/gen_scan_corpus"
COPIES="${COPIES:-50}"          # corpus copies, so interpreter start-up is amortised for both tools
BIG_MB="${BIG_MB:-200}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/modelvet-scan-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

[ -x "$BIN" ] && [ -x "$GEN" ] || (cd "$ROOT" && cargo build --release --target "$(bash scripts/triple.sh)" -p modelvet --bin modelvet --example gen_scan_corpus)

now() { date +%s.%N; }
rate() { python3 -c "import sys; print(f'{float(sys.argv[1]) / max(float(sys.argv[2]), 1e-9):.1f}')" "$@"; }

# --- the pickle-family corpus, COPIES times over ------------------------------------------
"$GEN" "$WORK/gen" >/dev/null
mkdir -p "$WORK/corpus"
for i in $(seq 1 "$COPIES"); do
  mkdir -p "$WORK/corpus/$i"
  for kind in hostile benign; do
    for f in "$WORK/gen/$kind"/{pkl,zip,tar,npy,joblib}-*; do
      [ -e "$f" ] && cp "$f" "$WORK/corpus/$i/$kind-$(basename "$f")"
    done
  done
done
NFILES=$(find "$WORK/corpus" -type f | wc -l)

# --- picklescan, in its own virtualenv ----------------------------------------------------
python3 -m venv "$WORK/venv" >/dev/null
# numpy too: without it picklescan aborts the whole run at the first .npy/.npz member.
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check picklescan numpy >/dev/null
PS_VERSION=$("$WORK/venv/bin/python" -c "import importlib.metadata as m; print(m.version('picklescan'))")

# Best of three runs each, in CPU seconds (user + sys): the machine may be shared with builds,
# and CPU time is the tool's own cost. Wall seconds are printed too.
cpu_best_of_3() {
  local best=1e9 t
  for _ in 1 2 3; do
    /usr/bin/time -f "%U %S %e" -o "$WORK/time" "$@" >/dev/null 2>&1 || true
    t=$(tail -1 "$WORK/time" | awk '{print $1 + $2}')
    best=$(python3 -c "print(min($best, $t))")
  done
  echo "$best $(tail -1 "$WORK/time" | awk '{print $3}')"
}
read -r PS_S PS_WALL < <(cpu_best_of_3 sh -c "'$WORK/venv/bin/picklescan' --path '$WORK/corpus' >'$WORK/picklescan.out' 2>&1")
PS_SCANNED=$(sed -n 's/^Scanned files: //p' "$WORK/picklescan.out" | tail -1)
read -r MV_S MV_WALL < <(cpu_best_of_3 "$BIN" scan --format json "$WORK/corpus")
PS_FPS=$(rate "$NFILES" "$PS_S"); MV_FPS=$(rate "$NFILES" "$MV_S")

# --- a large benign torch-style pickle: an OrderedDict of big BINBYTES8 tensors ------------
python3 - "$WORK/big.pkl" "$BIG_MB" <<'EOF'
import struct, sys, random
path, mb = sys.argv[1], int(sys.argv[2])
chunk = 8 << 20
rnd = random.Random(7)
block = bytes(rnd.getrandbits(8) for _ in range(1 << 16))
with open(path, "wb") as f:
    f.write(b"\x80\x04\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94(")
    for i in range(max(1, (mb << 20) // chunk)):
        name = f"layers.{i}.weight".encode()
        f.write(b"\x8c" + bytes([len(name)]) + name + b"\x8e" + struct.pack("<Q", chunk))
        f.write(block * (chunk // len(block)))
    f.write(b"u.")
EOF
# --- a large safetensors file: many tensors in the header, data behind it -------------------
python3 - "$WORK/big.safetensors" "$BIG_MB" <<'EOF'
import json, struct, sys
path, mb = sys.argv[1], int(sys.argv[2])
n, size = 2000, (int(mb) << 20) // 2000 // 4 * 4
hdr, off = {"__metadata__": {"format": "pt"}}, 0
for i in range(n):
    hdr[f"model.layers.{i}.weight"] = {"dtype": "F32", "shape": [size // 4], "data_offsets": [off, off + size]}
    off += size
h = json.dumps(hdr, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    f.write(bytes(off))
EOF

mbps() {
  local t; read -r t _ < <(cpu_best_of_3 "$BIN" scan --format json "$1")
  python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1]) / 1e6 / max($t, 1e-9):.0f}')" "$1"
}
PKL_MBPS=$(mbps "$WORK/big.pkl")
ST_MBPS=$(mbps "$WORK/big.safetensors")

echo "scan benchmark (one core; corpus: $NFILES pickle-family files = $COPIES copies of the generated corpus)"
printf '  picklescan %-8s %8.1f files/s  (%.2f CPU s, %s wall s; it reports %s files scanned, skipping names it does not know)\n' "$PS_VERSION" "$PS_FPS" "$PS_S" "$PS_WALL" "${PS_SCANNED:-?}"
printf '  modelvet scan     %8.1f files/s  (%.2f CPU s, %s wall s)   ratio %sx (target >= 20x)\n' "$MV_FPS" "$MV_S" "$MV_WALL" "$(rate "$MV_FPS" "$PS_FPS")"
printf '  modelvet scan, %s MB benign pickle:      %s MB/s (target >= 500)\n' "$BIG_MB" "$PKL_MBPS"
printf '  modelvet scan, %s MB safetensors:        %s MB/s (target >= 500)\n' "$BIG_MB" "$ST_MBPS"
echo "  (rates are per CPU second, best of three, single-threaded tools; MB/s include reading the file and its sha256)"
