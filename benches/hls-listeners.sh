#!/usr/bin/env bash
# What the listeners of a live stream cost: one room (6 members, 3 talking, rtpload) is
# streamed live; LISTENERS players (benches/hls_load.py: a playlist every 2 s, each new
# segment once, one keep-alive connection each, 200 per loopback address) follow it for
# WINDOW s (default 20). Printed: the server's CPU in that window beside a window without
# listeners (the difference is what listeners cost), then the same listeners on the same
# stream mirrored into Debian's nginx — the static file server one would put in front of an
# HLS packager — with its CPU, and the ratio.
#
#   benches/hls-listeners.sh 1000
#
# Bounded: 1..5000 listeners. The generator is one Python process: beyond about 1,500
# listeners it is what saturates (see the round times). Also CONCLAVE_BIN, RTPLOAD_BIN,
# CARGO_TARGET_DIR, KEEP.
source "$(dirname "$0")/media-common.sh"

n="${1:-1000}"
[[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 5000)) || { echo "listeners: 1..5000" >&2; exit 2; }
window="${WINDOW:-20}"
# 200 listeners per loopback address (the server admits 256 connections per address)
sources=$(python3 -c "print(','.join(f'127.0.{2 + i // 250}.{2 + i % 250}' for i in range(($n + 199) // 200)))")
need_debian nginx

ticks() { # pids...: their user+system CPU time, in clock ticks
  local sum=0 t
  for p in "$@"; do t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0); sum=$((sum + t)); done
  echo "$sum"
}
hz=$(getconf CLK_TCK)

build
start_conclave 0,1 10
port="${api#http://127.0.0.1:}"; port="${port%%/*}"
timeout $((4 * window + 120)) taskset -c 0,1 "$rtpload_bin" conclave --sip "$sip_addr" --room 8001 \
  --codec pcmu -n 6 -k 3 --rate 50 --warmup 2 --window $((3 * window + 40)) --in-flight 10 \
  --json "$work/members.json" 2>>"$work/rtpload.err" &
members_pid=$!
room=$(curl -fs "$api/rooms" -H "authorization: Bearer $token" \
  | python3 -c 'import sys,json; print(next(r["id"] for r in json.load(sys.stdin)["items"] if r["number"]=="8001"))')
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "$api/conferences/$room" -H "authorization: Bearer $token" && break; sleep 0.2
done
playlist=$(curl -fsS -X POST "$api/conferences/$room/stream/start" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"open": true}' \
  | python3 -c 'import sys,json; print(json.load(sys.stdin)["playlist"])')
sleep 8 # a few segments

echo "== Conclave, no listener, ${window} s" >&2
before=$(ticks "$server_pid"); sleep "$window"; quiet=$(( $(ticks "$server_pid") - before ))
echo "== Conclave, $n listeners, ${window} s" >&2
before=$(ticks "$server_pid")
taskset -c 0,1 python3 benches/hls_load.py 127.0.0.1 "$port" "$playlist" "$n" "$window" "$sources" >"$work/conclave-load.json"
loaded=$(( $(ticks "$server_pid") - before ))

# nginx serves a mirror of the same stream (the mirror is one more listener of Conclave)
mkdir -p "$work/www/live"
chmod 755 "$work" "$work/www" "$work/www/live" # nginx's workers read it as www-data
python3 - "$port" "$playlist" "$work/www/live" "$((window + 30))" <<'PY' &
import os, sys, time, urllib.request
port, playlist, out, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
base = f"http://127.0.0.1:{port}{playlist[: playlist.rindex('/') + 1]}"
def put(name, data):
    tmp = os.path.join(out, f".{name}")
    open(tmp, "wb").write(data)
    os.replace(tmp, os.path.join(out, name))
until = time.monotonic() + seconds
have = set()
while time.monotonic() < until:
    text = urllib.request.urlopen(base + "index.m3u8?l=mirror", timeout=5).read()
    for name in ["init.mp4"] + [l for l in text.decode().splitlines() if l.endswith(".m4s")]:
        if name not in have:
            put(name, urllib.request.urlopen(base + name, timeout=5).read())
            have.add(name)
    put("index.m3u8", text)
    time.sleep(0.5)
PY
mirror_pid=$!
nginx_port=$(free_port)
cat >"$work/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  types { application/vnd.apple.mpegurl m3u8; audio/mp4 m4s mp4; }
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
    location /live/ { add_header Cache-Control "max-age=1"; }
  }
}
CONF
taskset -c 0,1 nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
for _ in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$nginx_port/live/index.m3u8" && break; sleep 0.1; done
echo "== nginx, $n listeners, ${window} s" >&2
workers=$(pgrep -P "$nginx_pid" | xargs)
before=$(ticks "$nginx_pid" $workers)
taskset -c 0,1 python3 benches/hls_load.py 127.0.0.1 "$nginx_port" /live/index.m3u8 "$n" "$window" "$sources" >"$work/nginx-load.json"
nginx_cpu=$(( $(ticks "$nginx_pid" $workers) - before ))
kill "$nginx_pid" "$mirror_pid" 2>/dev/null || true
wait "$members_pid" 2>/dev/null || true

python3 - "$work" "$hz" "$window" "$quiet" "$loaded" "$nginx_cpu" "$n" <<'PY'
import json, sys
work, hz, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
quiet, loaded, nginx, n = (int(x) for x in sys.argv[4:])
c = json.load(open(f"{work}/conclave-load.json"))
g = json.load(open(f"{work}/nginx-load.json"))
core = lambda t: 100.0 * t / hz / window
print(f"\n{n} HLS listeners, {window:.0f} s each way (% of one core)")
print(f"{'':24} {'requests':>8} {'segments':>8} {'errors':>6} {'MiB':>6} {'round p50/p99 ms':>16} {'CPU %':>7}")
print(f"{'Conclave, no listener':24} {'':>8} {'':>8} {'':>6} {'':>6} {'':>16} {core(quiet):7.1f}")
for name, r, cpu in (("Conclave, listeners", c, loaded), ("nginx, same listeners", g, nginx)):
    print(f"{name:24} {r['requests']:>8} {r['segments']:>8} {r['errors'] + r['connect_errors']:>6} "
          f"{r['bytes'] / 2**20:6.1f} {str(r['round_p50_ms']) + ' / ' + str(r['round_p99_ms']):>16} {core(cpu):7.1f}")
extra = core(loaded - quiet)
print(f"\nwhat {n} listeners add to Conclave: {extra:.1f} % of a core "
      f"({extra / n * 1000:.1f} % per 1,000); nginx serving them: {core(nginx):.1f} %; "
      f"ratio Conclave/nginx {extra / max(core(nginx), 0.01):.2f}")
PY
