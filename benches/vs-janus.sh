#!/usr/bin/env bash
# Conclave against Janus AudioBridge with the same load generator (benches/rtpload): N
# plain-RTP members in one room, 3 of them talking (tones), one clicking now and then, the
# rest silent; PCMU, then Opus at 48 kHz, 20 ms packets. Each server runs alone, one after
# the other; its CPU time (utime + stime from /proc/PID/stat) and RSS are read over the
# same counting window of the generator. Prints CPU per member and the ratio
# Conclave / Janus for each codec. Fails when either server does not mix (a talker must
# hear the two others and not itself, a listener all three) or a member is not set up.
#
#   benches/vs-janus.sh [N]          # default N=100
#
# Environment: CODECS (default "pcmu opus"), WINDOW (counting window, s, default 20),
# WARMUP (s after the last set-up, default 4), RATE (set-ups/s, default 100),
# JANUS_PCMU_RATE (the Janus room's mixing rate for PCMU, default 8000: its cheapest;
# Opus rooms mix at 48000), SERVER_CPUS and GEN_CPUS (taskset lists, default "0,1" both):
# each server may use both cores, as in production (Janus AudioBridge needs about a whole
# core for 100 Opus members: pinned to one core it falls behind and stops mixing cleanly),
# and so may the generator; CPU time per member does not depend on where it is spent as
# long as nothing saturates, which the generator's checks would show. Also CONCLAVE_BIN, RTPLOAD_BIN,
# CARGO_TARGET_DIR, KEEP (see benches/media-common.sh).
# Bounded: N <= 2000; each run ends after N/RATE + 30 s of set-up, WARMUP and WINDOW.
source "$(dirname "$0")/media-common.sh"

n="${1:-100}"
[[ "$n" =~ ^[0-9]+$ ]] && ((n >= 4 && n <= 2000)) || { echo "N must be 4..2000" >&2; exit 2; }
codecs="${CODECS:-pcmu opus}"
window="${WINDOW:-20}"; warmup="${WARMUP:-4}"; rate="${RATE:-100}"
server_cpu="${SERVER_CPUS:-0,1}"; gen_cpu="${GEN_CPUS:-0,1}"
janus_pcmu_rate="${JANUS_PCMU_RATE:-8000}"

need_janus
build
common=(-n "$n" -k 3 --window "$window" --warmup "$warmup" --rate "$rate")
failed=0
for codec in $codecs; do
  case "$codec" in pcmu) jrate="$janus_pcmu_rate" ;; opus) jrate=48000 ;;
    *) echo "codec $codec: pcmu or opus" >&2; exit 2 ;; esac
  echo "== $codec: Janus AudioBridge (room at $jrate Hz)" >&2
  start_janus "$server_cpu"
  rtpload_run "$gen_cpu" "$work/janus-$codec.json" janus --http "$janus_http" \
    --sampling-rate "$jrate" --codec "$codec" --server-pid "$server_pid" "${common[@]}" || failed=1
  stop_server
  echo "== $codec: Conclave" >&2
  start_conclave "$server_cpu" "$n"
  rtpload_run "$gen_cpu" "$work/conclave-$codec.json" conclave --sip "$sip_addr" --room 8001 \
    --codec "$codec" --server-pid "$server_pid" "${common[@]}" || failed=1
  stop_server
done

python3 - "$work" "$n" $codecs <<'PY'
import json, sys
work, n, codecs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(name):
    try:
        return json.load(open(f"{work}/{name}.json"))
    except (OSError, ValueError):
        return None
print(f"\n{n} members in one room, 3 talking; each server's CPU (utime + stime) over the "
      "generator's counting window, in % of one core")
print(f"{'codec':6} {'server':9} {'mix':5} {'clean':5} {'CPU %':>7} {'% / member':>11} "
      f"{'RSS MiB':>8} {'KiB / member':>13} {'delay p50/p99 ms':>17} {'gen CPU %':>9} {'others %':>8} {'steal %':>7}")
for codec in codecs:
    row = {}
    for server in ("janus", "conclave"):
        r = load(f"{server}-{codec}")
        if r is None:
            print(f"{codec:6} {server:9} no result"); continue
        sp = r.get("server_process") or {}
        c = r["checks"]
        lat = r["latency_ms"]
        row[server] = sp.get("per_member_percent_of_core")
        print(f"{codec:6} {server:9} {'yes' if c['mix'] and c['all_set_up'] else 'NO':5} "
              f"{'yes' if c['clean'] else 'no':5} {100 * sp.get('cpu_share_of_core', 0):7.2f} "
              f"{sp.get('per_member_percent_of_core', 0):11.4f} {sp.get('rss_kib', 0) / 1024:8.1f} "
              f"{sp.get('rss_per_member_kib', 0):13.1f} {str(lat['p50']) + ' / ' + str(lat['p99']):>17} "
              f"{100 * r['generator']['cpu_share_of_core']:9.1f} {100 * r['machine']['others_cores']:8.1f} "
              f"{100 * r['machine']['steal_cores']:7.1f}")
    if row.get("janus") and row.get("conclave") is not None:
        print(f"{codec:6} Conclave / Janus CPU per member: {row['conclave'] / row['janus']:.2f}")
PY
if [ "$failed" != 0 ]; then
  echo "FAILED: a server did not set up every member or did not mix (see above; KEEP=1 keeps the JSON)" >&2
  exit 1
fi
