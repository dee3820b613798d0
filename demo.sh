#!/usr/bin/env bash
# The demo command (README): broker + pipeline + lake + Flight SQL + dashboard, Ctrl-C to stop.
# One build serves the demo and the tests: the dev profile (dependencies optimised, see
# Cargo.toml), both binaries of the `shopwatch` package (`shopwatch`, and `shopwatch-broker`:
# Tansu 0.6.0 linked in).
set -euo pipefail
cd "$(dirname "$0")"
target="${CARGO_TARGET_DIR:-target}"
if [ ! -x "$target/debug/shopwatch" ] || [ ! -x "$target/debug/shopwatch-broker" ]; then
  echo "demo: first run: building shopwatch and its broker (Tansu 0.6.0, linked in);" \
       "about 17 minutes on 2 cores (measured 16 min 44 s), seconds on later runs" >&2
fi
cargo build -p shopwatch
exec "$target/debug/shopwatch" demo "$@"
