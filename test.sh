#!/usr/bin/env bash
# The test command (README): unit + integration tests of every crate, real broker included.
set -euo pipefail
cd "$(dirname "$0")"
export SHOPWATCH_TOOLS_DIR="${SHOPWATCH_TOOLS_DIR:-$HOME/.cache/shopwatch/tools}"
if ! command -v cargo-nextest >/dev/null 2>&1; then
  exec cargo test --workspace -- --test-threads 2
fi
exec cargo nextest run --workspace --no-fail-fast --test-threads 2
