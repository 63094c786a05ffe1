#!/usr/bin/env bash
# What an idle server costs: ROOMS provisioned rooms (default 1000) with nobody in them, then
# LIVE of them (default 100) with one member each (a phone alone in its meeting, hearing the
# music, sending its own 20 ms packets as phones do). Prints the server's CPU (utime + stime
# from /proc/PID/stat) over WINDOW seconds (default 20) in each state, in % of one core.
# Goal (issue 9): under 2 % of a core with the live rooms. The window starts 8 s after the
# last set-up: the music's first lap (6 s) is encoded by each room until one lap is kept in
# the worker's loop cache, which then serves every room.
#
#   benches/idle.sh                 # 1000 rooms, 100 live, PCMU
#   CODEC=opus LIVE=200 benches/idle.sh
#
# The server may use SERVER_CPUS (default "0,1"), the generator GEN_CPUS (default "0,1");
# CONCLAVE_ARGS are added to the server's command line (e.g. "--media-workers 1").
# Also CONCLAVE_BIN, RTPLOAD_BIN, CARGO_TARGET_DIR, KEEP (see benches/media-common.sh).
# Bounded: ROOMS <= 5000, LIVE <= ROOMS and <= 2000, WINDOW <= 600 s.
source "$(dirname "$0")/media-common.sh"

rooms="${ROOMS:-1000}"; live="${LIVE:-100}"; window="${WINDOW:-20}"; codec="${CODEC:-pcmu}"
server_cpus="${SERVER_CPUS:-0,1}"; gen_cpus="${GEN_CPUS:-0,1}"
[[ "$rooms" =~ ^[0-9]+$ && "$live" =~ ^[0-9]+$ && "$window" =~ ^[0-9]+$ ]] \
  && ((rooms >= 1 && rooms <= 5000 && live >= 2 && live <= rooms && live <= 2000 \
    && window >= 5 && window <= 600)) \
  || { echo "ROOMS 1..5000, LIVE 2..min(ROOMS, 2000), WINDOW 5..600" >&2; exit 2; }
case "$codec" in pcmu | opus) ;; *) echo "CODEC: pcmu or opus" >&2; exit 2 ;; esac

# The scheduler's on-CPU time of each thread ("tid ns" lines): exact, where stat's ticks are
# sampled. A window's figure sums the threads that lived through it.
cpu_ns() { for f in /proc/"$1"/task/*/schedstat; do t=${f%/schedstat}; echo "${t##*/} $(cut -d' ' -f1 "$f" 2>/dev/null)"; done; }

build
start_conclave "$server_cpus" 1
echo "== creating $rooms rooms" >&2
# Room 8001 exists (start_conclave); the rest are numbered on from it.
python3 - "$api" "$token" "$rooms" <<'PY'
import json, sys, urllib.request
api, token, rooms = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(1, rooms):
    req = urllib.request.Request(
        f"{api}/rooms", method="POST",
        data=json.dumps({"number": str(8001 + i), "name": f"Room {i}"}).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201, r.status
PY

sleep 2
cpu_ns "$server_pid" >"$work/before"; sleep "$window"; cpu_ns "$server_pid" >"$work/after"
idle=$(python3 - "$work/before" "$work/after" "$window" <<'PY'
import sys
read = lambda p: dict(l.split() for l in open(p) if len(l.split()) == 2)
a, b = read(sys.argv[1]), read(sys.argv[2])
print(f"{100 * sum(int(b[t]) - int(a[t]) for t in a if t in b) / 1e9 / float(sys.argv[3]):.2f}")
PY
)
echo "== $live single-member rooms ($codec)" >&2
rc=0
rtpload_run "$gen_cpus" "$work/idle.json" conclave --sip "$sip_addr" --room 8001 --rooms "$live" \
  --codec "$codec" -n "$live" -k 0 --click-hz 0 --decode 0 --rate 100 --warmup 8 \
  --window "$window" --server-pid "$server_pid" || rc=$?
stop_server

python3 - "$work/idle.json" "$rooms" "$live" "$codec" "$idle" <<'PY'
import json, sys
path, rooms, live, codec, idle = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
r = json.load(open(path))
sp = r.get("server_process") or {}
print(f"\n{rooms} provisioned rooms, nobody in them: server CPU {idle} % of a core")
print(f"{live} of them live with one member each ({codec}): {r['setup']['ready']}/{live} set up, "
      f"{r['gaps']['lost']} lost, {r['gaps']['arrival_gaps_over_60ms']} gaps > 60 ms; server CPU "
      f"{100 * sp.get('cpu_share_of_core', 0):.2f} % of a core, RSS {sp.get('rss_kib', 0) / 1024:.1f} MiB; "
      f"generator {100 * r['generator']['cpu_share_of_core']:.1f} %")
PY
exit "$rc"
