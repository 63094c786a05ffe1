#!/usr/bin/env bash
# Browser (WebRTC) members against phone (SIP, plain RTP) members, both Opus, same room size,
# same generator (benches/rtpload): what a browser member costs the server — ICE-lite, DTLS-
# SRTP and str0m in front of the mixer — against a SIP Opus member, and so how many browser
# members one core carries.
#
#   benches/browsers.sh [N...]          # default: 50 100 200
#
# For each N, on a fresh server each: N SIP members (`rtpload conclave --codec opus`), then N
# browser members (`rtpload webrtc`: each a str0m peer joining with POST /api/v1/join, ICE as
# the controlling agent, DTLS, SRTP, RFC 6464 audio levels as a browser sends them). One
# room, 3 talking, one clicking, the rest silent; set-up at RATE/s (default 50), WARMUP s
# (default 4), then a WINDOW s counting window (default 20) over which the server's CPU
# (scheduler time of its threads) is read. Prints CPU per member of each, the ratio
# browser / SIP, and members per core at that cost. Fails when a member is not set up or the
# mix is wrong. SERVER_CPUS and GEN_CPUS (taskset lists, default "0,1"); also
# CONCLAVE_BIN, RTPLOAD_BIN, CARGO_TARGET_DIR, KEEP (see benches/media-common.sh).
# Bounded: N in 4..1000, at most 6 sizes; each run ends after N/RATE + 30 s of set-up,
# WARMUP and WINDOW.
source "$(dirname "$0")/media-common.sh"

[ $# -ge 1 ] || set -- 50 100 200
[ $# -le 6 ] || { echo "at most 6 sizes" >&2; exit 2; }
for n in "$@"; do
  [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 4 && n <= 1000)) || { echo "sizes are 4..1000" >&2; exit 2; }
done
window="${WINDOW:-20}"; warmup="${WARMUP:-4}"; rate="${RATE:-50}"
server_cpus="${SERVER_CPUS:-0,1}"; gen_cpus="${GEN_CPUS:-0,1}"

build
common=(--codec opus -k 3 --rate "$rate" --warmup "$warmup" --window "$window")
failed=0
for n in "$@"; do
  echo "== $n SIP Opus members" >&2
  start_conclave "$server_cpus" "$n"
  rtpload_run "$gen_cpus" "$work/sip-$n.json" conclave --sip "$sip_addr" --room 8001 \
    -n "$n" --server-pid "$server_pid" "${common[@]}" || failed=1
  stop_server
  echo "== $n browser (WebRTC) members" >&2
  start_conclave "$server_cpus" "$n"
  http_addr="${api#http://}"; http_addr="${http_addr%%/*}"
  rtpload_run "$gen_cpus" "$work/webrtc-$n.json" webrtc --http "$http_addr" --room 8001 \
    -n "$n" --server-pid "$server_pid" "${common[@]}" || failed=1
  # what the server said about its browsers (nothing, at the default level, when all is well)
  grep -ci "webrtc\|browser" "$work/conclave.log" | sed 's/^/server log lines about browsers: /' >&2 || true
  stop_server
done

python3 - "$work" "$@" <<'PY'
import json, sys
work, sizes = sys.argv[1], sys.argv[2:]
def load(name):
    try:
        return json.load(open(f"{work}/{name}.json"))
    except (OSError, ValueError):
        return None
print("\nOne room, Opus, 3 talking; the server's CPU over the counting window, % of one core")
print(f"{'members':>7} {'kind':8} {'set up':>7} {'mix':4} {'clean':5} {'CPU %':>7} {'% / member':>10} "
      f"{'per core':>8} {'KiB / member':>12} {'set-up p50 ms':>13} {'delay p50/p99 ms':>16} "
      f"{'gen CPU %':>9} {'others %':>8} {'steal %':>7}")
for n in sizes:
    per = {}
    for kind, name in (("SIP", f"sip-{n}"), ("browser", f"webrtc-{n}")):
        r = load(name)
        if r is None:
            print(f"{n:>7} {kind:8} no result"); continue
        sp = r.get("server_process") or {}
        c, lat, su = r["checks"], r["latency_ms"], r["setup"]
        pm = sp.get("per_member_percent_of_core", 0)
        per[kind] = pm
        print(f"{n:>7} {kind:8} {su['ready']:>7} {'yes' if c['mix'] and c['all_set_up'] else 'NO':4} "
              f"{'yes' if c['clean'] else 'no':5} {100 * sp.get('cpu_share_of_core', 0):7.2f} {pm:10.4f} "
              f"{(100 / pm if pm else 0):8.0f} {sp.get('rss_per_member_kib', 0):12.1f} "
              f"{str(su.get('p50_ms')):>13} {str(lat['p50']) + ' / ' + str(lat['p99']):>16} "
              f"{100 * r['generator']['cpu_share_of_core']:9.1f} {100 * r['machine']['others_cores']:8.1f} "
              f"{100 * r['machine']['steal_cores']:7.1f}")
    if per.get("SIP") and per.get("browser"):
        print(f"{n:>7} a browser member costs {per['browser'] / per['SIP']:.2f} × a SIP Opus member; "
              f"one core carries about {100 / per['browser']:.0f} browser members at this cost")
# the room's fixed cost (3 talkers' encodes, the tick) weighs on small N: the cost of one
# more member is the slope between the smallest and the largest size
def cpu(kind, n):
    r = load(f"{kind}-{n}")
    sp = (r or {}).get("server_process") or {}
    return 100 * sp["cpu_share_of_core"] if sp and r["checks"]["all_set_up"] else None
lo, hi = min(map(int, sizes)), max(map(int, sizes))
if hi > lo:
    slope = {}
    for kind in ("sip", "webrtc"):
        a, b = cpu(kind, lo), cpu(kind, hi)
        if a is not None and b is not None:
            slope[kind] = ((b - a) / (hi - lo), a - lo * (b - a) / (hi - lo))
    for kind, (m, c) in slope.items():
        print(f"{kind:7} one more member costs {m:.4f} % of a core (fixed {c:.1f} %, {lo}..{hi} members)")
    if len(slope) == 2 and slope["sip"][0] > 0 and slope["webrtc"][0] > 0:
        m, c = slope["webrtc"]
        print(f"marginal: a browser member costs {m / slope['sip'][0]:.2f} × a SIP Opus member; "
              f"one core carries about {(100 - c) / m:.0f} browser members")
PY
if [ "$failed" != 0 ]; then
  echo "FAILED: a run did not set up every member or did not mix (KEEP=1 keeps the JSON and logs)" >&2
  exit 1
fi
