#!/usr/bin/env bash
# Search load on a release build: seeds the data set of benches/search_seed.rs (PATIENTS
# patients, 18 resources each: 1,000,008 for the default) into SQLite or PostgreSQL unless it is
# there already, then runs each query with wrk (random patients, names and codes) and prints
# req/s and latency percentiles, then creates with index extraction.
#
#   bash benches/search.sh                                   # SQLite under ./bench-data
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench bash benches/search.sh
#   PATIENTS=5000 DURATION=5s bash benches/search.sh        # a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/server.sh
PATIENTS="${PATIENTS:-55556}"; DURATION="${DURATION:-10s}"; CONNS="${CONNS:-16}"; PORT="${PORT:-18090}"
DATABASE_URL="${DATABASE_URL:-sqlite://./bench-data/search-$PATIENTS.db}"
QUERIES="${QUERIES:-name name10 birthdate patient_code code_value chained include revinclude total}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bin hearth --example search_seed

marker="./bench-data/seeded-$(echo "$DATABASE_URL" | md5sum | cut -c1-12)-$PATIENTS"
mkdir -p bench-data
if [ ! -e "$marker" ]; then
  echo "seeding $PATIENTS patients into $DATABASE_URL…"
  target/release/examples/search_seed "$DATABASE_URL" "$PATIENTS" | tee "$marker.log"
  touch "$marker"
fi

port_must_be_free "$PORT"
HEARTH_LOG=warn target/release/hearth serve --addr "127.0.0.1:$PORT" --database-url "$DATABASE_URL" --data-dir ./bench-data &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_for_server "$pid" "$PORT"
TOKEN=$(HEARTH_LOG=warn target/release/hearth token --addr "127.0.0.1:$PORT" --database-url "$DATABASE_URL" --data-dir ./bench-data --lifetime 86400)
export PATIENTS TOKEN

printf '%-14s %10s %9s %9s %9s\n' query req/s p50 p90 p99
for q in $QUERIES; do
  out=$(QUERY=$q wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s benches/search.lua "http://127.0.0.1:$PORT")
  rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p90=$(awk '$1=="90%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  printf '%-14s %10s %9s %9s %9s %s\n' "$q" "$rate" "$p50" "$p90" "$p99" "${non2xx:+($non2xx non-2xx!)}"
done
create=$(BODY=benches/patient.json wrk -t1 -c"$CONNS" -d"$DURATION" -s benches/create.lua "http://127.0.0.1:$PORT/fhir/Patient" | awk '/Requests\/sec/ {print $2}')
printf '%-14s %10s\n' "create" "$create"
