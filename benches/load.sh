#!/usr/bin/env bash
# HTTP load on a release build over SQLite, with wrk: read by id of random Patients among N
# stored, create, update; and, in the same run, axum serving the same bytes from memory (the
# physical limit of this machine for a read). Prints req/s, ratios and RSS.
#
#   bash benches/load.sh            # N=100000 Patients, 15 s per phase, 16 connections
#   N=20000 DURATION=5s bash benches/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/server.sh
N="${N:-100000}"; DURATION="${DURATION:-15s}"; CONNS="${CONNS:-16}"; PORT="${PORT:-18080}"; STATIC_PORT=$((PORT + 1))
command -v wrk >/dev/null && command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk bc; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bin hearth --example static_server

work=$(mktemp -d)
cleanup() { kill "${hearth_pid:-}" "${static_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export BODY=benches/patient.json N

rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }
rate() { awk '/Requests\/sec/ {print $2}'; }
run_wrk() { # script url -> req/s
  wrk -t1 -c"$CONNS" -d"$DURATION" -s "benches/$1" "$2" | tee -a "$work/wrk.log" | rate
}

port_must_be_free "$PORT"
HEARTH_LOG=warn target/release/hearth serve --addr "127.0.0.1:$PORT" --data-dir "$work/data" &
hearth_pid=$!
wait_for_server "$hearth_pid" "$PORT"
idle_rss=$(rss $hearth_pid)
TOKEN=$(HEARTH_LOG=warn target/release/hearth token --addr "127.0.0.1:$PORT" --data-dir "$work/data" --lifetime 86400)
export TOKEN

echo "seeding $N Patients…"
start=$(date +%s.%N)
python3 benches/seed.py "127.0.0.1:$PORT" "$N" "$BODY"
seed_seconds=$(echo "$(date +%s.%N) - $start" | bc)
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/fhir/Patient/p$N" >/dev/null || { echo "seeding failed"; exit 1; }
curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/fhir/Patient/p1" > "$work/p1.json"

target/release/examples/static_server "127.0.0.1:$STATIC_PORT" "$work/p1.json" &
static_pid=$!
until curl -sf "http://127.0.0.1:$STATIC_PORT/" >/dev/null; do sleep 0.2; done

static_rate=$(wrk -t1 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$STATIC_PORT/fhir/Patient/p1" | rate)
kill $static_pid; wait $static_pid 2>/dev/null || true; unset static_pid
read_rate=$(run_wrk read.lua "http://127.0.0.1:$PORT")
read_rss=$(rss $hearth_pid)
create_rate=$(run_wrk create.lua "http://127.0.0.1:$PORT/fhir/Patient")
update_rate=$(run_wrk update.lua "http://127.0.0.1:$PORT")

ratio() { echo "scale=2; $1 / $2" | bc; }
cat <<REPORT

Hearth load test ($(nproc) cores, wrk -t1 -c$CONNS -d$DURATION, SQLite, $N Patients of $(wc -c < benches/patient.json) bytes)
  seed ($N PUTs, Python, 8 conns) $(printf '%.1f' "$seed_seconds") s
  static bytes from memory (limit) $static_rate req/s
  read by random id                $read_rate req/s  ($(ratio "$read_rate" "$static_rate") of the limit)
  create (durable)                 $create_rate req/s
  update random id (durable)       $update_rate req/s
  RSS idle after start             $idle_rss
  RSS after the read phase         $read_rss
REPORT
