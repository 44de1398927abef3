#!/usr/bin/env bash
# Quick start: builds ledgerbridge (installing the few build prerequisites when missing) and runs
# `ledgerbridge demo` on the embedded default — SQLite and the embedded log in ./ledgerbridge-data,
# the API and UI on http://127.0.0.1:8080/. Arguments are passed on, e.g.
#   scripts/demo.sh --data-dir /tmp/lb --listen 127.0.0.1:9090
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=services.sh
source scripts/services.sh
ensure_build_deps
exec cargo run --locked -p ledgerbridge -- demo "$@"
