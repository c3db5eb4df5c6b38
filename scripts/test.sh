#!/usr/bin/env bash
# The test suite: builds the binaries the multi-process tests start, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --workspace --bins
cargo test --workspace --all-targets "$@"
