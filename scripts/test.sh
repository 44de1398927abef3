#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
#   1. install (only when missing) and start the real services the tests use — PostgreSQL,
#      MariaDB, the tansu Kafka-protocol broker, an SMTP server, Chromium (scripts/services.sh);
#   2. formatting and lints: cargo fmt --check, cargo clippy --all-targets -- -D warnings;
#   3. every Rust test (unit, integration against those services, CLI end to end);
#   4. the browser tests of the admin UI against a running demo node, a standard Confluent
#      client (confluent-kafka) against the node's schema registry, and a standard Confluent
#      consumer decoding a connector's raw topic on the broker through that registry.
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
# The shipped demo, writing faster and with more anomalies so the alert dashboard's tests see
# alerts within seconds rather than after a minute and a half.
sed -e 's/^rate = 5.0$/rate = 50.0\nanomaly_rate = 0.1/' examples/config/demo.toml >"$ui_data.toml"
"$target_dir/debug/ledgerbridge" demo --config "$ui_data.toml" --data-dir "$ui_data" --listen "127.0.0.1:$ui_port" \
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
rm -rf "$ui_data" "$ui_data.toml"

step "a connector's raw topic on Kafka decoded by a standard Confluent consumer (AvroDeserializer through /registry)"
src_db="lb_ci_confluent_$$"
psql -q "$LEDGERBRIDGE_TEST_PG/postgres" -c "DROP DATABASE IF EXISTS $src_db" -c "CREATE DATABASE $src_db"
psql -q "$LEDGERBRIDGE_TEST_PG/$src_db" -v ON_ERROR_STOP=1 -f connectors/client-test/source.sql
kafka_data=$(mktemp -d -t ledgerbridge-kafka.XXXXXX)
kafka_port=$(free_port)
prefix="ci$$."
cat >"$kafka_data/node.toml" <<TOML
[node]
id = "ci-kafka"
data_dir = "$kafka_data/data"
[api]
listen = "127.0.0.1:$kafka_port"
[bus]
backend = "kafka"
topic_prefix = "$prefix"
[bus.kafka]
bootstrap_servers = "$LEDGERBRIDGE_TEST_KAFKA"
# tansu 0.6 skips the rest of a multi-record batch when a fetch starts inside it.
properties = { "batch.num.messages" = "1" }
[[connectors]]
name = "mall-orders"
type = "postgres"
[connectors.database]
url = "$LEDGERBRIDGE_TEST_PG/$src_db"
[[connectors.database.tables]]
name = "public.orders"
TOML
"$target_dir/debug/ledgerbridge" serve --config "$kafka_data/node.toml" \
  >"$kafka_data/node.out" 2>"$kafka_data/node.err" &
demo_pid=$!
wait_for_port 127.0.0.1 "$kafka_port" 60 "the Kafka node" || { cat "$kafka_data/node.err"; exit 1; }
LEDGERBRIDGE_URL="http://127.0.0.1:$kafka_port" KAFKA="$LEDGERBRIDGE_TEST_KAFKA" TOPIC="${prefix}raw.mall-orders" \
  python3 connectors/client-test/confluent_consumer.py || { cat "$kafka_data/node.err"; exit 1; }
kill "$demo_pid" && wait "$demo_pid" || true
demo_pid=""
psql -q "$LEDGERBRIDGE_TEST_PG/postgres" -c "DROP DATABASE IF EXISTS $src_db WITH (FORCE)"
rm -rf "$kafka_data"

step "all tests passed"
