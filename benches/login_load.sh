#!/usr/bin/env bash
# Logins against FHIR traffic, on a release build over SQLite with the default argon2id cost:
# the cost of one login (1 client, nothing else running), then FHIR read throughput with wrk
# alone and while 4 clients log in without pause. Hashing runs on a bounded set of blocking
# threads (half the cores), so reads keep flowing while logins queue.
#
#   bash benches/login_load.sh            # 15 s per phase, 16 wrk connections
#   DURATION=5 bash benches/login_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/server.sh
DURATION="${DURATION:-15}"; CONNS="${CONNS:-16}"; PORT="${PORT:-18090}"; LOGIN_CLIENTS="${LOGIN_CLIENTS:-4}"
command -v wrk >/dev/null && command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk bc; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --bin hearth

work=$(mktemp -d)
cleanup() { kill "${hearth_pid:-}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
EMAIL=bench@hearth.test; PASSWORD='Bench#Pass1'

port_must_be_free "$PORT"
HEARTH_LOG=warn HEARTH_ADMIN_EMAIL=$EMAIL HEARTH_ADMIN_PASSWORD=$PASSWORD \
  target/release/hearth serve --addr "127.0.0.1:$PORT" --data-dir "$work/data" &
hearth_pid=$!
wait_for_server "$hearth_pid" "$PORT"
TOKEN=$(HEARTH_LOG=warn target/release/hearth token --addr "127.0.0.1:$PORT" --data-dir "$work/data" --lifetime 86400)
export TOKEN
curl -sf -X PUT -H 'content-type: application/fhir+json' -H "Authorization: Bearer $TOKEN" --data @benches/patient.json \
  "http://127.0.0.1:$PORT/fhir/Patient/example" >/dev/null

rate() { awk '/Requests\/sec/ {r=$2} /^ +99%/ {p=$2} END {print r, p}'; }
read_url="http://127.0.0.1:$PORT/fhir/Patient/example"

read -r single_n single_rate single_mean single_p95 < <(python3 benches/logins.py "127.0.0.1:$PORT" $EMAIL $PASSWORD 1 "$DURATION")
read -r alone_n alone_rate alone_mean alone_p95 < <(python3 benches/logins.py "127.0.0.1:$PORT" $EMAIL $PASSWORD "$LOGIN_CLIENTS" "$DURATION")
read -r reads_alone p99_alone < <(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$read_url" | rate)
python3 benches/logins.py "127.0.0.1:$PORT" $EMAIL $PASSWORD "$LOGIN_CLIENTS" "$DURATION" > "$work/logins" &
logins_pid=$!
read -r reads_during p99_during < <(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "$read_url" | rate)
wait $logins_pid
read -r during_n during_rate during_mean during_p95 < "$work/logins"

ratio() { echo "scale=2; $1 / $2" | bc; }
cat <<REPORT
login, 1 client alone:                  ${single_rate}/s, mean ${single_mean} ms, p95 ${single_p95} ms
logins, $LOGIN_CLIENTS clients alone:                ${alone_rate}/s, mean ${alone_mean} ms, p95 ${alone_p95} ms
FHIR reads alone ($CONNS conns):          ${reads_alone} req/s, p99 ${p99_alone}
FHIR reads during $LOGIN_CLIENTS login clients:   ${reads_during} req/s ($(ratio "$reads_during" "$reads_alone") of alone), p99 ${p99_during}
logins during the reads:                ${during_rate}/s, mean ${during_mean} ms, p95 ${during_p95} ms
REPORT
