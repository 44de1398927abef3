#!/usr/bin/env bash
# Makes sure every real service the tests use is installed and running, reusing what already
# runs. Meant to be *sourced* by scripts/test.sh (it exports the addresses and registers the
# clean-up of what it started); run on its own it starts them and prints the addresses.
#
#   PostgreSQL  127.0.0.1:5432, trust auth for 127.0.0.1   LEDGERBRIDGE_TEST_PG
#   MariaDB     127.0.0.1:3306, root without password       LEDGERBRIDGE_TEST_MARIADB
#   tansu       Kafka-protocol broker on a free port         LEDGERBRIDGE_TEST_KAFKA, LEDGERBRIDGE_TEST_TANSU
#   aiosmtpd    SMTP server on a free port                   LEDGERBRIDGE_TEST_SMTP
#   chromium    /usr/bin/chromium for the browser tests      CHROMIUM
#   confluent-kafka[avro] (PyPI): a standard Confluent client for the registry test
#   moto[server] (PyPI): a local S3 server, the durable storage of the private tansu broker that
#               the broker stop/restart crash test starts (python3 -m moto.server)
#
# Installs with apt-get / pip / cargo only what is missing (needs root on a fresh Debian).

set -euo pipefail

LB_STATE_DIR="${LB_STATE_DIR:-}"
LB_STARTED_PIDS=()

log() { printf '[services] %s\n' "$*" >&2; }

apt_updated=""
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root, or install them)"; return 1
  fi
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # host port seconds what
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then log "$4 did not open $1:$2 within $3 s"; return 1; fi
    sleep 0.3
  done
}

lb_services_stop() {
  for pid in "${LB_STARTED_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${LB_STARTED_PIDS[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  LB_STARTED_PIDS=()
}

# Build prerequisites of the workspace itself (libpq for diesel's PostgreSQL backend, OpenSSL for
# librdkafka's TLS, a C toolchain for the bundled librdkafka and SQLite).
ensure_build_deps() {
  apt_install build-essential pkg-config libpq-dev libssl-dev python3 python3-pip curl postgresql-client openssl ca-certificates gdb
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    log "PostgreSQL: reusing 127.0.0.1:5432"
  else
    apt_install postgresql postgresql-client
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
      # Test machines only: trust loopback, as the development machines do.
      sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    fi
    log "PostgreSQL: starting cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
    local deadline=$((SECONDS + 60))
    until pg_isready -q -h 127.0.0.1 -p 5432; do
      [ $SECONDS -ge $deadline ] && { log "PostgreSQL did not start"; return 1; }
      sleep 0.5
    done
  fi
  export LEDGERBRIDGE_TEST_PG="${LEDGERBRIDGE_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
}

ensure_mariadb() {
  if mariadb-admin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; then
    log "MariaDB: reusing 127.0.0.1:3306"
  else
    apt_install mariadb-server mariadb-client
    log "MariaDB: starting"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql >&2
    local deadline=$((SECONDS + 60))
    until mariadb-admin -u root ping >/dev/null 2>&1; do
      [ $SECONDS -ge $deadline ] && { log "MariaDB did not start"; return 1; }
      sleep 0.5
    done
    # Test machines only: root over TCP without a password, as on the development machines.
    mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); \
      CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
      CREATE DATABASE IF NOT EXISTS test;" >&2
  fi
  export LEDGERBRIDGE_TEST_MARIADB="${LEDGERBRIDGE_TEST_MARIADB:-mysql://root@127.0.0.1:3306}"
}

ensure_tansu() {
  # The binary is needed even when an existing broker is reused: the broker-pause crash test
  # starts a private one (LEDGERBRIDGE_TEST_TANSU) to SIGSTOP.
  local bin="${LEDGERBRIDGE_TEST_TANSU:-${CARGO_HOME:-$HOME/.cargo}/bin/tansu}"
  if [ ! -x "$bin" ]; then
    log "tansu: building it once into ~/.cargo/bin (about 10 minutes on 2 cores)"
    cargo install tansu --locked --features dynostore >&2
  fi
  export LEDGERBRIDGE_TEST_TANSU="$bin"
  if [ -n "${LEDGERBRIDGE_TEST_KAFKA:-}" ]; then
    log "Kafka: reusing $LEDGERBRIDGE_TEST_KAFKA"; return 0
  fi
  local port
  port=$(free_port)
  "$bin" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$LB_STATE_DIR/tansu.log" 2>&1 &
  LB_STARTED_PIDS+=($!)
  wait_for_port 127.0.0.1 "$port" 30 tansu
  export LEDGERBRIDGE_TEST_KAFKA="127.0.0.1:$port"
  log "Kafka: tansu on $LEDGERBRIDGE_TEST_KAFKA (log $LB_STATE_DIR/tansu.log)"
}

ensure_smtp() {
  if [ -n "${LEDGERBRIDGE_TEST_SMTP:-}" ]; then
    log "SMTP: reusing $LEDGERBRIDGE_TEST_SMTP"; return 0
  fi
  if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    log "SMTP: installing aiosmtpd"
    python3 -m pip install --quiet aiosmtpd >&2 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages aiosmtpd >&2
  fi
  local port
  port=$(free_port)
  python3 -m aiosmtpd -n -l "127.0.0.1:$port" >"$LB_STATE_DIR/smtp.log" 2>&1 &
  LB_STARTED_PIDS+=($!)
  wait_for_port 127.0.0.1 "$port" 30 aiosmtpd
  export LEDGERBRIDGE_TEST_SMTP="127.0.0.1:$port"
  log "SMTP: aiosmtpd on $LEDGERBRIDGE_TEST_SMTP"
}

# A local S3 server for the crash test that stops and restarts a broker: its private tansu keeps
# its topics in S3 (tansu's dynostore) so that they outlive the process.
ensure_s3_server() {
  if ! python3 -c 'import moto.server, flask_cors' 2>/dev/null; then
    log "installing moto[server] (the S3 server a restarted broker keeps its data in)"
    python3 -m pip install --quiet "moto[server]" >&2 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages "moto[server]" >&2
  fi
}

# A standard Confluent client (confluent-kafka with its Avro serializers) for the registry tests.
ensure_confluent_client() {
  # The import the tests make, not just the package: confluent-kafka without its extras lacks
  # the registry client's dependencies (authlib, httpx, …).
  if ! python3 -c 'from confluent_kafka.schema_registry.avro import AvroDeserializer' 2>/dev/null; then
    log "installing confluent-kafka[avro] (the Confluent client the registry is tested with)"
    python3 -m pip install --quiet "confluent-kafka[avro]" >&2 2>/dev/null \
      || python3 -m pip install --quiet --break-system-packages "confluent-kafka[avro]" >&2
  fi
}

ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium
  fi
  if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
}

lb_services_start() {
  LB_STATE_DIR="${LB_STATE_DIR:-$(mktemp -d -t ledgerbridge-services.XXXXXX)}"
  ensure_build_deps
  ensure_postgres
  ensure_mariadb
  ensure_tansu
  ensure_smtp
  ensure_confluent_client
  ensure_s3_server
  ensure_browser
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  trap lb_services_stop EXIT
  lb_services_start
  printf 'LEDGERBRIDGE_TEST_PG=%s\nLEDGERBRIDGE_TEST_MARIADB=%s\nLEDGERBRIDGE_TEST_KAFKA=%s\nLEDGERBRIDGE_TEST_SMTP=%s\nCHROMIUM=%s\n' \
    "$LEDGERBRIDGE_TEST_PG" "$LEDGERBRIDGE_TEST_MARIADB" "$LEDGERBRIDGE_TEST_KAFKA" "$LEDGERBRIDGE_TEST_SMTP" "$CHROMIUM"
  log "running; press Ctrl-C to stop the services this script started"
  while true; do sleep 3600; done
fi
