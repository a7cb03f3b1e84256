#!/usr/bin/env bash
# Transactions and bulk import on a release build, SQLite or PostgreSQL (BACKEND=postgres uses
# HEARTH_TEST_POSTGRES_URL, a fresh schema per run). Phases, each on a fresh database:
#   create     single POST Patient at CONNS connections (the Foundation write, for the ratio)
#   small tx   transaction of a Patient and an Observation linked by urn:uuid, CONNS connections
#   synthea    the 117-entry Synthea transaction Bundle, at 4 and 8 connections (resources/s)
#   import     `hearth import` of generated NDJSON (PATIENTS Patients × OBS Observations each)
#
#   bash benches/bundles.sh
#   BACKEND=postgres DURATION=10s bash benches/bundles.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/server.sh
BACKEND="${BACKEND:-sqlite}"; DURATION="${DURATION:-10s}"; CONNS="${CONNS:-16}"; PORT="${PORT:-18090}"
PATIENTS="${PATIENTS:-10000}"; OBS="${OBS:-9}"
command -v wrk >/dev/null && command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk bc; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bin hearth

work=$(mktemp -d)
schemas=()
cleanup() {
  kill "${hearth_pid:-}" 2>/dev/null || true
  for s in "${schemas[@]}"; do psql -q "$HEARTH_TEST_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $s CASCADE" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fresh_database() { # prints a database URL
  if [ "$BACKEND" = postgres ]; then
    local schema="hearth_bench_$RANDOM$RANDOM"
    psql -q "$HEARTH_TEST_POSTGRES_URL" -c "CREATE SCHEMA $schema" >/dev/null
    schemas+=("$schema")
    echo "${HEARTH_TEST_POSTGRES_URL}?options=-csearch_path%3D${schema}"
  else
    local dir; dir=$(mktemp -d -p "$work"); echo "sqlite://$dir/hearth.db"
  fi
}
start() {
  local url; url=$(fresh_database)
  [ "$BACKEND" = postgres ] || true
  port_must_be_free "$PORT"
  HEARTH_LOG=warn target/release/hearth serve --addr "127.0.0.1:$PORT" --data-dir "$work" --database-url "$url" &
  hearth_pid=$!
  wait_for_server "$hearth_pid" "$PORT"
  TOKEN=$(HEARTH_LOG=warn target/release/hearth token --addr "127.0.0.1:$PORT" --data-dir "$work" --database-url "$url" --lifetime 86400)
  export TOKEN
}
stop() { kill "$hearth_pid"; wait "$hearth_pid" 2>/dev/null || true; unset hearth_pid; }
rate() { awk '/Requests\/sec/ {print $2} /failed answers/ {if ($3 != 0) print "FAILED " $3 > "/dev/stderr"}'; }
run_wrk() { # script conns url -> req/s
  wrk -t1 -c"$2" -d"$DURATION" -s "benches/$1" "$3" | tee -a "$work/wrk.log" | rate
}

start
create_rate=$(BODY=benches/patient.json run_wrk create.lua "$CONNS" "http://127.0.0.1:$PORT/fhir/Patient")
stop

start
small_rate=$(BODY=benches/small_transaction.json run_wrk bundle.lua "$CONNS" "http://127.0.0.1:$PORT/fhir")
stop

synthea=tests/fixtures/synthea/Chet_Thompson_eda17701.json
entries=$(python3 -c "import json,sys; print(len(json.load(open('$synthea'))['entry']))")
declare -A synthea_rate
for c in 4 8; do
  start
  synthea_rate[$c]=$(BODY=$synthea run_wrk bundle.lua "$c" "http://127.0.0.1:$PORT/fhir")
  stop
done

python3 benches/ndjson_gen.py "$work/ndjson" "$PATIENTS" "$OBS"
url=$(fresh_database)
import_line=$(HEARTH_LOG=warn target/release/hearth --data-dir "$work" --database-url "$url" import --quiet "$work/ndjson")
again_line=$(HEARTH_LOG=warn target/release/hearth --data-dir "$work" --database-url "$url" import --quiet "$work/ndjson")

r() { printf '%.0f' "$(echo "$1 * $2" | bc)"; }
cat <<REPORT

Hearth transactions and import ($(nproc) cores, $BACKEND, wrk -t1 -d$DURATION)
  create, single POST Patient, $CONNS conns        $create_rate req/s
  small transaction (Patient + Observation), $CONNS conns  $small_rate tx/s ($(r "$small_rate" 2) resources/s; $(echo "scale=2; $small_rate * 2 / $create_rate" | bc) × the create rate in resources)
  Synthea Bundle ($entries entries), 4 conns        ${synthea_rate[4]} tx/s ($(r "${synthea_rate[4]}" "$entries") resources/s)
  Synthea Bundle ($entries entries), 8 conns        ${synthea_rate[8]} tx/s ($(r "${synthea_rate[8]}" "$entries") resources/s)
  import of $((PATIENTS * (OBS + 1))) resources:  $import_line
  the same files again:         $again_line
REPORT
