#!/usr/bin/env bash
# Does making minutes disturb a meeting? One server with the speech model: a 200-member
# PCMU meeting (room 8002, 3 talking) is measured as benches/capacity.sh does — clean mix,
# lost packets, arrival gaps, the server's CPU — once with nothing else to do, then again
# while the minutes of another meeting are being made (room 8001 is recorded first: SPEAKERS
# members talking in turn for RECORD s, so its minutes hold work for the whole window).
#
#   benches/minutes-mix.sh            (MEMBERS=200 WINDOW=20 RECORD=60 SPEAKERS=20;
#                                      MINUTES_THREADS: the server's --minutes-threads)
#
# Also CONCLAVE_BIN, RTPLOAD_BIN, CARGO_TARGET_DIR, KEEP (see benches/media-common.sh).
source "$(dirname "$0")/media-common.sh"

members="${MEMBERS:-200}"; window="${WINDOW:-20}"; record="${RECORD:-60}"; speakers="${SPEAKERS:-20}"
((members >= 4 && members <= 2000 && window >= 5 && window <= 120 && record >= 10 && record <= 600)) \
  || { echo "MEMBERS 4..2000, WINDOW 5..120, RECORD 10..600" >&2; exit 2; }
model="$HOME/.cache/conclave/models/whisper-base.bin"
scripts/fetch-speech-model.sh "$HOME/.cache/conclave/models" >/dev/null
build
CONCLAVE_ARGS="--speech-model $model --minutes-languages en ${MINUTES_THREADS:+--minutes-threads $MINUTES_THREADS}" RECORD_ROOM=true start_conclave "0,1" "$members"
curl -fsS -o /dev/null -X POST "$api/rooms" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' \
  -d "{\"number\":\"8002\",\"name\":\"Measured\",\"capacity\":$((members + 10))}"
minutes() {
  curl -fs "$api/recordings" -H "authorization: Bearer $token" | python3 -c '
import json, sys, urllib.request
items = json.load(sys.stdin)["items"]
if not items: print("no recording"); sys.exit()
req = urllib.request.Request(sys.argv[1] + "/recordings/" + items[0]["id"] + "/minutes",
                             headers={"authorization": "Bearer " + sys.argv[2]})
m = json.load(urllib.request.urlopen(req))
print(m["state"], str(m["done"]) + "/" + str(m["total"]))' "$api" "$token"
}
measure() {
  rtpload_run "0,1" "$work/$1.json" conclave --sip "$sip_addr" --room 8002 --codec pcmu \
    -n "$members" -k 3 --rate 200 --warmup 5 --window "$window" --in-flight 100 \
    --server-pid "$server_pid" || true
}
echo "== $members members, nothing else" >&2
measure quiet
echo "== a meeting of $speakers recorded for ${record}s (room 8001): its minutes are then made" >&2
rtpload_run "0,1" "$work/recorded.json" conclave --sip "$sip_addr" --room 8001 --codec pcmu \
  -n "$speakers" -k 3 --rate 50 --warmup 1 --window "$record" --in-flight 50 || true
sleep 3
before=$(minutes)
echo "== $members members while the minutes are made ($before)" >&2
measure busy
after=$(minutes)
stop_server
python3 - "$work" "$members" "$before" "$after" <<'PY'
import json, sys
work, members, before, after = sys.argv[1:]
print(f"\n{members} PCMU members, 3 talking; minutes of the other meeting: {before} before, {after} after")
print(f"{'run':6} {'clean':5} {'lost':>6} {'ts jumps':>8} {'gaps>60ms':>9} {'max gap ms':>10} "
      f"{'silent':>6} {'server CPU %':>12} {'delay p50/p99 ms':>16}")
for run in ("quiet", "busy"):
    try:
        r = json.load(open(f"{work}/{run}.json"))
    except (OSError, ValueError):
        print(f"{run:6} no result"); continue
    sp, g, c, lat = r.get("server_process") or {}, r["gaps"], r["checks"], r["latency_ms"]
    print(f"{run:6} {'yes' if c['clean'] else 'NO':5} {g['lost']:>6} {g['ts_jumps']:>8} "
          f"{g['arrival_gaps_over_60ms']:>9} {g['max_arrival_gap_ms']:>10} "
          f"{r['silence']['members_with_silent_frames']:>6} {100 * sp.get('cpu_share_of_core', 0):12.1f} "
          f"{str(lat['p50']) + ' / ' + str(lat['p99']):>16}")
PY
