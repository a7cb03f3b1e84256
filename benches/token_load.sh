#!/usr/bin/env bash
# The token endpoint under load, on a release build over SQLite (or PostgreSQL with
# BACKEND=postgres and HEARTH_TEST_POSTGRES_URL): backend services get tokens with
# client_credentials, each request a fresh ES384 client assertion, at CONNS connections.
# The load generator (benches/token_load.rs) runs on the same 2 cores and signs every assertion.
#
#   bash benches/token_load.sh
#   CONNS=32 DURATION=20 bash benches/token_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/server.sh
BACKEND="${BACKEND:-sqlite}"; DURATION="${DURATION:-15}"; CONNS="${CONNS:-16}"; PORT="${PORT:-18095}"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bin hearth --example token_load

work=$(mktemp -d)
schema=""
cleanup() {
  kill "${hearth_pid:-}" 2>/dev/null || true
  [ -z "$schema" ] || psql -q "$HEARTH_TEST_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$BACKEND" = postgres ]; then
  schema="hearth_bench_$RANDOM$RANDOM"
  psql -q "$HEARTH_TEST_POSTGRES_URL" -c "CREATE SCHEMA $schema" >/dev/null
  url="${HEARTH_TEST_POSTGRES_URL}?options=-csearch_path%3D${schema}"
else
  url="sqlite://$work/hearth.db"
fi
hearth() { HEARTH_LOG=warn target/release/hearth --addr "127.0.0.1:$PORT" --data-dir "$work" --database-url "$url" "$@"; }

target/release/examples/token_load keygen "$work"
client_id=$(hearth client add --name "Token bench" --jwks-file "$work/jwks.json" --scope 'system/*.rs' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
port_must_be_free "$PORT"
HEARTH_LOG=warn target/release/hearth serve --addr "127.0.0.1:$PORT" --data-dir "$work" --database-url "$url" &
hearth_pid=$!
wait_for_server "$hearth_pid" "$PORT"

read -r grants rate p50 p99 failed < <(target/release/examples/token_load run \
  "http://127.0.0.1:$PORT/auth/token" "$client_id" "$work" "$CONNS" "$DURATION")
cat <<REPORT

Hearth token endpoint ($(nproc) cores, $BACKEND, $CONNS connections, ${DURATION} s, ES384 assertions)
  client_credentials grants   $grants ($failed failed)
  grants per second           $rate
  latency median / p99        $p50 ms / $p99 ms
REPORT
