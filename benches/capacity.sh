#!/usr/bin/env bash
# Conclave alone at growing sizes of one room: where every member still receives a clean
# mix (no lost packet, timestamp jump or arrival gap > 60 ms, no silent frame, the tones
# right), its CPU and memory per member, and the server-added delay of a click.
#
#   benches/capacity.sh pcmu 500 1000 2000 4000
#   benches/capacity.sh opus 250 500 1000
#
# Each size runs on a fresh server: members call room 8001 at RATE/s (default 200), then
# WARMUP s (default 5), then a WINDOW s counting window (default 20). The server may use
# SERVER_CPUS (default "0,1", both cores) and so may the generator (GEN_CPUS, default
# "0,1"): the goal is a capacity of the 2 cores, and the generator's own share of them is
# printed beside the server's. STOP=1 stops at the first size that is not clean. Also
# CONCLAVE_BIN, RTPLOAD_BIN, CARGO_TARGET_DIR, KEEP (see benches/media-common.sh);
# RECORD_ROOM=true records the room (the mix and every member's track) all along.
# Bounded: sizes 4..10000 (a room's capacity), at most 12 sizes per run.
source "$(dirname "$0")/media-common.sh"

codec="${1:-}"; shift || true
case "$codec" in pcmu | opus) ;; *) sed -n '2,16p' "$0" >&2; exit 2 ;; esac
[ $# -ge 1 ] && [ $# -le 12 ] || { echo "give 1 to 12 sizes" >&2; exit 2; }
for n in "$@"; do
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 4 && n <= 10000)) || { echo "sizes are 4..10000" >&2; exit 2; }
done
window="${WINDOW:-20}"; warmup="${WARMUP:-5}"; rate="${RATE:-200}"
server_cpus="${SERVER_CPUS:-0,1}"; gen_cpus="${GEN_CPUS:-0,1}"

build
for n in "$@"; do
  echo "== $codec, $n members" >&2
  start_conclave "$server_cpus" "$n"
  rc=0
  rtpload_run "$gen_cpus" "$work/capacity-$n.json" conclave --sip "$sip_addr" --room 8001 \
    --codec "$codec" -n "$n" -k 3 --rate "$rate" --warmup "$warmup" --window "$window" \
    --in-flight 100 --server-pid "$server_pid" --require-clean || rc=$?
  stop_server
  if [ "$rc" != 0 ] && [ "${STOP:-0}" = 1 ]; then break; fi
done

python3 - "$work" "$codec" "$@" <<'PY'
import json, sys
work, codec, sizes = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"\nConclave, one room, {codec}, 3 talking")
print(f"{'members':>7} {'set up':>7} {'mix':4} {'clean':5} {'lost':>6} {'ts jumps':>8} {'gaps>60ms':>9} "
      f"{'max gap ms':>10} {'silent':>6} {'server CPU %':>12} {'% / member':>10} {'RSS MiB':>8} "
      f"{'KiB / member':>12} {'delay p50/p99 ms':>16} {'gen CPU %':>9} {'others %':>8} {'steal %':>7}")
for n in sizes:
    try:
        r = json.load(open(f"{work}/capacity-{n}.json"))
    except (OSError, ValueError):
        print(f"{n:>7} no result"); continue
    sp = r.get("server_process") or {}
    g, c, lat = r["gaps"], r["checks"], r["latency_ms"]
    print(f"{n:>7} {r['setup']['ready']:>7} {'yes' if c['mix'] else 'NO':4} {'yes' if c['clean'] else 'NO':5} "
          f"{g['lost']:>6} {g['ts_jumps']:>8} {g['arrival_gaps_over_60ms']:>9} {g['max_arrival_gap_ms']:>10} "
          f"{r['silence']['members_with_silent_frames']:>6} {100 * sp.get('cpu_share_of_core', 0):12.1f} "
          f"{sp.get('per_member_percent_of_core', 0):10.4f} {sp.get('rss_kib', 0) / 1024:8.1f} "
          f"{sp.get('rss_per_member_kib', 0):12.1f} {str(lat['p50']) + ' / ' + str(lat['p99']):>16} "
          f"{100 * r['generator']['cpu_share_of_core']:9.1f} {100 * r['machine']['others_cores']:8.1f} "
              f"{100 * r['machine']['steal_cores']:7.1f}")
PY
