#!/usr/bin/env bash
# Load benchmark with real SIP peers: sipp callers dial into rooms and play G.711 audio while
# the server mixes. Reports calls set up and the server's CPU per member.
#   benches/load-rooms.sh one 100      # one room, 100 callers
#   benches/load-rooms.sh many 100 5   # rooms of 5 callers each, 100 callers in all
# Bounded: each call lasts ~9 s (sipp's uac_pcap scenario), sipp stops after N calls, 60 s max.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-one}"; callers="${2:-100}"; per_room="${3:-$callers}"
[ "$mode" = one ] && per_room="$callers"
bin="${CARGO_TARGET_DIR:-target}/release/conclave"
cargo build --release --locked -q -p conclave-server --bin conclave
dir=$(mktemp -d)
free() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(free); sip=$(free)
CONCLAVE_ADMIN_PASSWORD=load-admin-password "$bin" serve --data-dir "$dir" --http-listen "127.0.0.1:$http" \
  --sip-udp "127.0.0.1:$sip" --sip-tcp 127.0.0.1:0 --sip-tls 127.0.0.1:0 --log warn >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$http/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
token=$(curl -fs -X POST "http://127.0.0.1:$http/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"load-admin-password"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
rooms=$(( (callers + per_room - 1) / per_room ))
echo "SEQUENTIAL" > "$dir/rooms.csv"
for r in $(seq 1 "$rooms"); do
  curl -fs -X POST "http://127.0.0.1:$http/api/v1/rooms" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d "{\"number\":\"$((8000 + r))\",\"name\":\"Load $r\",\"capacity\":10000}" >/dev/null
done
for c in $(seq 0 $((callers - 1))); do echo "$((8001 + c / per_room))" >> "$dir/rooms.csv"; done
# sipp's own scenario, calling the room named in the CSV, with Debian's pcap paths.
{ sipp -sd uac_pcap 2>/dev/null || true; } | sed -e 's|pcap/g711a.pcap|/usr/share/sip-tester/g711a.pcap|' \
  -e 's|pcap/dtmf_2833_1.pcap|/usr/share/sip-tester/dtmf_2833_1.pcap|' \
  -e 's|sip:\[service\]@|sip:[field0]@|g' > "$dir/uac.xml"
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
tck=$(getconf CLK_TCK)
(cd "$dir" && timeout 60 sipp "127.0.0.1:$sip" -sf uac.xml -inf rooms.csv -m "$callers" -l "$callers" -r 200 \
  -i 127.0.0.1 -p "$(free)" -mp "$(( $(free) & ~1 ))" -nostdin -timeout 50s -trace_stat -fd 1 >"$dir/sipp.out" 2>&1) &
sippid=$!
sleep 3      # every call up (200 calls/s) and mixing
c0=$(cpu); t0=$(date +%s.%N)
sleep 4
c1=$(cpu); t1=$(date +%s.%N)
live=$(curl -fs "http://127.0.0.1:$http/api/v1/conferences" -H "authorization: Bearer $token" \
  | python3 -c 'import sys,json; d=json.load(sys.stdin); print(sum(len(c["members"]) for c in d))')
wait $sippid || true
ok=$(grep -a "Successful call" "$dir"/*_stat.csv 2>/dev/null | head -1 || true)
stats=$(python3 - "$dir" <<'PY'
import csv, glob, sys
rows = list(csv.reader(open(glob.glob(sys.argv[1] + "/*_.csv")[0] if glob.glob(sys.argv[1] + "/*_.csv") else glob.glob(sys.argv[1] + "/*stat*.csv")[0], newline=""), delimiter=";"))
head, last = rows[0], rows[-1]
get = lambda k: last[head.index(k)]
print(get("SuccessfulCall(C)"), get("FailedCall(C)"))
PY
)
read -r success failed <<<"$stats"
python3 - "$mode" "$callers" "$per_room" "$rooms" "$live" "$success" "$failed" "$c0" "$c1" "$t0" "$t1" "$tck" <<'PY'
import sys
mode, callers, per_room, rooms, live, ok, failed, c0, c1, t0, t1, tck = sys.argv[1:]
cpu = (float(c1) - float(c0)) / float(tck); wall = float(t1) - float(t0)
share = cpu / wall
print(f"{mode}: {callers} callers in {rooms} room(s) of {per_room}; {live} in the mix during the window")
print(f"calls: {ok} completed, {failed} failed")
print(f"server CPU: {100*share:.1f} % of one core for {live} members = {100*share/max(int(live),1):.3f} % per member")
PY
