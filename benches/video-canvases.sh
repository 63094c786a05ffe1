#!/usr/bin/env bash
# Composed video under load, the whole path of the running server: ROOMS rooms (default 2),
# each with TERMINALS SIP video terminals (default 8) sending a 640×360 H.264 camera and
# receiving the room's composed 1280×720 picture in LAYOUT (default 1+7), beside the audio of
# MEMBERS members in all (default 200, the terminals among them; G.711 over SIP).
#
#   benches/video-canvases.sh                       # the goal: two 1+7 canvases + 200 members
#   LAYOUT=1+21 TERMINALS=22 ROOMS=1 benches/video-canvases.sh
#
# Reports the server's CPU over the counting window, the frame rate every terminal receives
# (lowest, median, highest: 30 is the composer's full rate) and whether every member was set
# up and received its audio without gaps. WARMUP (default 10 s) lets the composers start and
# the layouts apply; WINDOW (default 20 s). Also CONCLAVE_BIN, RTPLOAD_BIN, CARGO_TARGET_DIR,
# KEEP (see benches/media-common.sh). Bounded: at most 8 rooms, 22 terminals a room.
source "$(dirname "$0")/media-common.sh"

rooms="${ROOMS:-2}"; per_room="${TERMINALS:-8}"; members="${MEMBERS:-200}"; layout="${LAYOUT:-1+7}"
window="${WINDOW:-20}"; warmup="${WARMUP:-10}"
[[ "$rooms" =~ ^[1-8]$ ]] || { echo "ROOMS is 1..8" >&2; exit 2; }
[[ "$per_room" =~ ^[0-9]+$ ]] && ((per_room <= 22)) || { echo "TERMINALS is 0..22 (0: the audio alone, to compare)" >&2; exit 2; }
[[ "$members" =~ ^[0-9]+$ ]] && ((members >= rooms * per_room + rooms && members <= 4000)) \
  || { echo "MEMBERS is at least a talker a room beyond the terminals, at most 4000" >&2; exit 2; }
case "$layout" in 1 | 4 | 1+7 | 1+21 | 2+21) ;; *) echo "LAYOUT is 1, 4, 1+7, 1+21 or 2+21" >&2; exit 2 ;; esac

build
start_conclave 0,1 "$members"
for r in $(seq 2 "$rooms"); do
  curl -fsS -o /dev/null -X POST "$api/rooms" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' \
    -d "{\"number\":\"$((8000 + r))\",\"name\":\"Bench $r\",\"capacity\":$((members + 10))}"
done
room_ids=$(curl -fsS "$api/rooms" -H "authorization: Bearer $token" \
  | python3 -c 'import sys,json; d=json.load(sys.stdin); d=d.get("items", d) if isinstance(d, dict) else d; print(" ".join(r["id"] for r in d))')

# Member i calls room 8001 + i mod ROOMS: the first ROOMS × TERMINALS are the terminals,
# TERMINALS a room.
out="$work/video.json"
timeout 600 taskset -c 0,1 "$rtpload_bin" conclave --sip "$sip_addr" --room 8001 --rooms "$rooms" \
  -n "$members" -k 3 --rate 100 --in-flight 50 --warmup "$warmup" --window "$window" \
  --video-members $((rooms * per_room)) --server-pid "$server_pid" --json "$out" \
  2>>"$work/rtpload.err" &
gen=$!
# Every room's meeting exists once its first caller is in: then its layout is set.
for id in $room_ids; do
  ok=""
  for _ in $(seq 1 150); do
    if curl -fs -o /dev/null -X PUT "$api/conferences/$id/layout" -H "authorization: Bearer $token" \
      -H 'content-type: application/json' -d "{\"layout\":\"$layout\"}"; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "the meeting of room $id never started" >&2; kill "$gen"; exit 1; }
done
rc=0; wait "$gen" || rc=$?
tail -1 "$work/rtpload.err" >&2
[ -s "$out" ] || { echo "rtpload wrote no result (exit $rc)" >&2; exit 1; }
python3 - "$out" "$rooms" "$per_room" "$members" "$layout" "$(nproc)" <<'PY'
import json, sys
out, rooms, per_room, members, layout, cores = sys.argv[1:]
r = json.load(open(out))
sp, g = r.get("server_process") or {}, r["gaps"]
v = r.get("video") or {"camera": "no video", "camera_kbps": 0, "refused": 0,
                       "received_fps": {"min": 0, "median": 0, "max": 0}, "received_kbps_each": 0,
                       "keyframes_received": 0}
cpu = sp.get("cpu_share_of_core", 0)
print(f"\nConclave: {rooms} room(s) composing {layout} at 1280x720 for {per_room} SIP video terminals each "
      f"({v['camera']}, {v['camera_kbps']} kbit/s), {members} members' audio in all (G.711)")
print(f"set up {r['setup']['ready']}/{members}, video refused {v['refused']}, audio lost {g['lost']}, "
      f"gaps > 60 ms {g['arrival_gaps_over_60ms']}")
fps = v["received_fps"]
print(f"terminals receive {fps['min']:.1f} / {fps['median']:.1f} / {fps['max']:.1f} fps (min/median/max), "
      f"{v['received_kbps_each']:.0f} kbit/s each, {v['keyframes_received']} IDR packets")
print(f"server CPU {100 * cpu:.1f} % of one core ({100 * cpu / int(cores):.1f} % of the machine's {cores}), "
      f"RSS {sp.get('rss_kib', 0) / 1024:.0f} MiB; generator {100 * r['generator']['cpu_share_of_core']:.1f} %")
PY
exit "$rc"
