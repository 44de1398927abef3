#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. install (only when missing) and start the real services the tests use — PostgreSQL,
#      MariaDB, the tansu Kafka-protocol broker, an SMTP server, Chromium (scripts/services.sh);
#   2. formatting and lints: cargo fmt --check, cargo clippy --all-targets -- -D warnings;
#   3. every Rust test (unit, integration against those services, CLI end to end);
#   4. the browser tests of the admin UI against a running demo node, and a standard Confluent
#      client (confluent-kafka) against the node's schema registry.
# Stops what it started, and exits non-zero if anything failed.

set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# shellcheck source=services.sh
source scripts/services.sh
demo_pid=""
cleanup() {
  [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null && wait "$demo_pid" 2>/dev/null
  lb_services_stop
}
trap cleanup EXIT
lb_services_start

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit and integration tests against the real services)"
cargo test --workspace --locked

step "admin UI in Chromium against a demo node"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
ui_data=$(mktemp -d -t ledgerbridge-ui.XXXXXX)
ui_port=$(free_port)
"$target_dir/debug/ledgerbridge" demo --data-dir "$ui_data" --listen "127.0.0.1:$ui_port" \
  >"$ui_data/demo.out" 2>"$ui_data/demo.err" &
demo_pid=$!
wait_for_port 127.0.0.1 "$ui_port" 60 "the demo node" || { cat "$ui_data/demo.err"; exit 1; }
(
  cd admin-ui
  npm ci --no-audit --no-fund --loglevel=error
  LEDGERBRIDGE_URL="http://127.0.0.1:$ui_port" LEDGERBRIDGE_TOKEN="$(cat "$ui_data/admin-token")" npm test
)
step "schema registry with a standard Confluent client against the same node"
LEDGERBRIDGE_URL="http://127.0.0.1:$ui_port" LEDGERBRIDGE_TOKEN="$(cat "$ui_data/admin-token")" \
  python3 registry/client-test/confluent_client.py
kill "$demo_pid" && wait "$demo_pid" || true
demo_pid=""
rm -rf "$ui_data"

step "all tests passed"
