#!/usr/bin/env bash
# The test command (README): unit + integration tests of every crate, real broker included.
# Built with failpoints (the drill test needs them; dormant unless a drill arms one) and the
# benchmarks (so they compile; neither is in the production binary).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v cargo-nextest >/dev/null 2>&1; then
  exec cargo test --workspace --features shopwatch/failpoints,shopwatch/bench -- --test-threads 2
fi
exec cargo nextest run --workspace --features shopwatch/failpoints,shopwatch/bench --no-fail-fast --test-threads 2
