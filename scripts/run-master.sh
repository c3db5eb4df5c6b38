#!/usr/bin/env bash
# Starts a single-member navarch master on the embedded defaults: data in ./navarch-data,
# QUIC on 127.0.0.1:7001, the API over HTTPS on 127.0.0.1:6443 (admin kubeconfig:
# navarch-data/admin.kubeconfig).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec cargo run --release --bin navarch-master -- "$@"
