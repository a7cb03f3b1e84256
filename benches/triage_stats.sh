#!/usr/bin/env bash
# Times GET /fhir/ServiceRequest/$triage-stats on a seeded database (see triage_seed.rs):
# 5 warm-up calls, then N timed calls one after another; prints the median and p95 in ms.
#   TOKEN=$(hearth token) benches/triage_stats.sh http://127.0.0.1:8080 [N] [DAYS]
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
N=${2:-50}
DAYS=${3:-15}
URL="$BASE/fhir/ServiceRequest/\$triage-stats?days=$DAYS"
for _ in 1 2 3 4 5; do curl -sf -H "Authorization: Bearer $TOKEN" -o /dev/null "$URL"; done
for _ in $(seq "$N"); do curl -sf -H "Authorization: Bearer $TOKEN" -o /dev/null -w '%{time_total}\n' "$URL"; done |
  sort -n | awk '{t[NR]=$1*1000} END {printf "days=%s n=%d median %.1f ms p95 %.1f ms\n", "'"$DAYS"'", NR, t[int(NR/2)+1], t[int(NR*0.95)]}'
