#!/usr/bin/env bash
# The target the project builds for, printed as a triple: $CARGO_BUILD_TARGET when set; else the
# host's architecture with musl where rustup has that standard library (.ci/run adds it: a static
# musl binary starts ~0.6 ms sooner than a glibc one here, see README "Fourteenth session"); else
# the host's own triple (a static glibc build, .cargo/config.toml).
set -euo pipefail
if [ -n "${CARGO_BUILD_TARGET:-}" ]; then
  echo "$CARGO_BUILD_TARGET"
  exit 0
fi
host=$(rustc -vV | sed -n 's/^host: //p')
musl=${host%-gnu}-musl
if [ "$musl" != "$host-musl" ] && rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
  echo "$musl"
else
  echo "$host"
fi
