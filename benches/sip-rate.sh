#!/usr/bin/env bash
# SIP signalling rate with sipp: how many REGISTERs and call set-ups per second one core of
# the server takes, how long each takes, and what each costs (loopback only, UDP).
#   benches/sip-rate.sh register N RATE [COUNT]  # N extensions (created through the API)
#                                  # register at RATE/s: REGISTER, 401 challenge, REGISTER with
#                                  # digest, 200; COUNT registrations in all (default N; beyond
#                                  # N the extensions refresh their bindings, in turn)
#   benches/sip-rate.sh invite N RATE     # N calls into room 8001: INVITE/200/ACK, hold, BYE
#   benches/sip-rate.sh invite404 N RATE  # N INVITEs to a number no room has: INVITE/404/ACK
# Environment: HOLD_MS (invite hold, default 1000), ROOMS (invite: calls spread over rooms
# 8001.., default 1), SIP_DOMAIN=1 (the tenant claims the domain the phones use, 127.0.0.1),
# SERVER_CPU (default 0), SIPP_CPU (default 1), LOG (server log level,
# default warn), PERF=FILE (perf profile of the server while the load is offered), PCAP=1
# (capture the SIP port with dumpcap and time each set-up inside the server, to the µs),
# SIPP_ARGS (more sipp options, e.g. -trace_msg), CONCLAVE_BIN (run that binary instead of
# building), KEEP=1 (keep the work directory).
# The server is pinned to SERVER_CPU (one tokio worker) and sipp to SIPP_CPU, so the figures
# are per core. Users for `register` are created once per N and cached (the data directory is
# copied) under ~/.cache/conclave/sip-rate. Bounded: 200,000 extensions, 1,000,000 calls or
# registrations, RATE <= 20000; sipp stops after its calls or COUNT/RATE + hold + 40 s;
# everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"; n="${2:-}"; rate="${3:-}"; count="${4:-$n}"
case "$mode" in register | invite | invite404) ;; *)
  sed -n '2,21p' "$0" >&2; exit 2 ;;
esac
[ "$mode" = register ] || count="$n"
[[ "$n" =~ ^[0-9]+$ && "$rate" =~ ^[0-9]+$ && "$count" =~ ^[0-9]+$ ]] \
  && ((n >= 1 && rate >= 1 && rate <= 20000 && count >= 1 && count <= 1000000)) \
  && { [ "$mode" != register ] || ((n <= 200000)); } \
  || { echo "extensions: 1..200000; calls or registrations: 1..1000000; RATE: 1..20000" >&2; exit 2; }
hold="${HOLD_MS:-1000}"; rooms="${ROOMS:-1}"
server_cpu="${SERVER_CPU:-0}"; sipp_cpu="${SIPP_CPU:-1}"
[[ "$hold" =~ ^[0-9]+$ && "$rooms" =~ ^[0-9]+$ ]] && ((hold <= 60000 && rooms >= 1 && rooms <= 1000)) \
  || { echo "HOLD_MS must be 0..60000 and ROOMS 1..1000" >&2; exit 2; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/conclave/target}"
if [ -n "${CONCLAVE_BIN:-}" ]; then
  bin="$CONCLAVE_BIN"   # a binary built earlier (e.g. a copy, to compare like with like)
else
  bin="$CARGO_TARGET_DIR/release/conclave"
  # Another build may hold the cargo lock: cargo waits for it (bounded by `timeout`).
  timeout 3600 cargo build --release --locked -q -p conclave-server --bin conclave
fi
command -v sipp >/dev/null || { echo "sipp is needed (package sip-tester)" >&2; exit 2; }

dir=$(mktemp -d)
pid=""; sippid=""; watchdog=""; perfpid=""; capid=""
cleanup() {
  [ -n "$watchdog" ] && pkill -P "$watchdog" 2>/dev/null || true   # its sleep
  for p in $watchdog $perfpid $capid $sippid $pid; do kill "$p" 2>/dev/null || true; done
  for p in $sippid $pid; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT; trap 'exit 143' TERM
free() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(free); sip=$(free)
api="http://127.0.0.1:$http/api/v1"

start_server() { # data dir
  # One tokio worker, as `taskset -c 0` alone would give; pinned once the set-up is done.
  CONCLAVE_ADMIN_PASSWORD=load-admin-password TOKIO_WORKER_THREADS=1 "$bin" serve --data-dir "$1" \
    --http-listen "127.0.0.1:$http" --sip-udp "127.0.0.1:$sip" --sip-tcp 127.0.0.1:0 \
    --sip-tls 127.0.0.1:0 --log "${LOG:-warn}" >>"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$http/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$http/healthz" >/dev/null || { tail "$dir/server.log" >&2; exit 1; }
  token=$(curl -fs -X POST "$api/auth/login" -H 'content-type: application/json' \
    -d '{"username":"admin","password":"load-admin-password"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
}
stop_server() {
  kill "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

data="$dir/data"
if [ "$mode" = register ]; then
  # Extensions 100001.. with SIP password sip-pass-<ext>. Creating a user hashes its login
  # password with argon2 (tens of ms), so the users of each N are made once and cached.
  cache="$HOME/.cache/conclave/sip-rate/users-$n"
  if [ -f "$cache/conclave.db" ]; then
    cp -a "$cache" "$data"
  else
    mkdir -p "$data"
    start_server "$data"
    echo "creating $n users through the API (cached for the next run)..." >&2
    seq $((100001)) $((100000 + n)) | timeout 3600 xargs -P 4 -I{} curl -fsS -o /dev/null -X POST "$api/users" \
      -H "authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"username":"sip{}","display_name":"Load {}","password":"load-user-{}-pw","extension":"{}","sip_password":"sip-pass-{}"}'
    stop_server
    rm -rf "$cache"; mkdir -p "$(dirname "$cache")"; cp -a "$data" "$cache"; rm -f "$cache/server.log"
  fi
  start_server "$data"
  have=$(curl -fs "$api/users?limit=1" -H "authorization: Bearer $token" >/dev/null && echo ok)
  [ "$have" = ok ] || { echo "server not answering" >&2; exit 1; }
  echo "SEQUENTIAL" >"$dir/in.csv"
  # sipp takes the credentials from the injection file: a field may hold the whole keyword.
  seq $((100001)) $((100000 + n)) \
    | awk '{print $1 ";[authentication username=" $1 " password=sip-pass-" $1 "]"}' >>"$dir/in.csv"
else
  mkdir -p "$data"
  start_server "$data"
  for r in $(seq 1 "$rooms"); do
    curl -fsS -o /dev/null -X POST "$api/rooms" -H "authorization: Bearer $token" \
      -H 'content-type: application/json' -d "{\"number\":\"$((8000 + r))\",\"name\":\"Rate $r\",\"capacity\":10000}"
  done
  echo "SEQUENTIAL" >"$dir/in.csv"
  if [ "$mode" = invite ]; then
    seq 0 $((n - 1)) | awk -v r="$rooms" '{print 8001 + ($1 % r)}' >>"$dir/in.csv"
  else
    seq 1 "$n" | awk '{print "9999"}' >>"$dir/in.csv"   # no room has 9999
  fi
fi
if [ "${SIP_DOMAIN:-0}" = 1 ]; then
  # The tenant claims the domain phones use (127.0.0.1 here): the directory looks extensions
  # and rooms up by (tenant, number), an index search, instead of across every tenant.
  tenant=$(curl -fs "$api/tenants" -H "authorization: Bearer $token" \
    | python3 -c 'import sys,json; d=json.load(sys.stdin); print((d["items"] if isinstance(d, dict) else d)[0]["id"])')
  curl -fsS -o /dev/null -X PATCH "$api/tenants/$tenant" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"sip_domain":"127.0.0.1"}'
fi
taskset -a -p -c "$server_cpu" "$pid" >/dev/null

# The scenarios. Response-time 1 ("rtd 1") is what is measured: REGISTER sent to 200 received
# (both round trips, challenge included); INVITE sent to its final answer.
case "$mode" in
register) cat >"$dir/scenario.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
<send retrans="500" start_rtd="1"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag[call_number]
To: <sip:[field0]@[remote_ip]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Expires: 300
User-Agent: sipp
Content-Length: 0

]]></send>
<recv response="401" auth="true"/>
<send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:[field0]@[remote_ip]>;tag=[pid]SIPpTag[call_number]
To: <sip:[field0]@[remote_ip]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Expires: 300
[field1]
User-Agent: sipp
Content-Length: 0

]]></send>
<recv response="200" rtd="1"/>
<ResponseTimeRepartition value="1, 2, 5, 10, 20, 50, 100, 200, 500, 1000"/>
</scenario>
XML
;;
invite | invite404)
  if [ "$mode" = invite ]; then
    answer="<recv response=\"200\" rtd=\"1\"/>"
    after="<send><![CDATA[
ACK sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<pause milliseconds=\"$hold\"/>
<send retrans=\"500\"><![CDATA[
BYE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response=\"200\" crlf=\"true\"/>"
  else
    # The ACK of a final non-2xx answer belongs to the INVITE transaction (same Via branch).
    answer="<recv response=\"404\" rtd=\"1\"/>"
    after="<send><![CDATA[
ACK sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>"
  fi
  cat >"$dir/scenario.xml" <<XML
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="$mode">
<send retrans="500" start_rtd="1"><![CDATA[
INVITE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv

]]></send>
<recv response="100" optional="true"/>
<recv response="180" optional="true"/>
<recv response="183" optional="true"/>
$answer
$after
<ResponseTimeRepartition value="1, 2, 5, 10, 20, 50, 100, 200, 500, 1000"/>
</scenario>
XML
;;
esac

metric() { # name: sum of a counter over its labels
  curl -fs "http://127.0.0.1:$http/metrics" | awk -v m="$1" '$1 ~ "^"m"([{]|$)" {s += $2} END {printf "%d\n", s}'
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Busy ticks of the server's core, whoever used them (the machine may be shared).
core_busy() { awk -v c="cpu$server_cpu" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
tck=$(getconf CLK_TCK)
send_s=$(python3 -c "print(max(1.0, $count / $rate))")
limit=$(python3 -c "import math; print(math.ceil($count / $rate + $hold / 1000 + 40))")
concurrent=$(python3 -c "import math; print(max(100, math.ceil($rate * ($hold / 1000 + 5))))")
rx0=$(metric conclave_sip_received_total); tx0=$(metric conclave_sip_sent_total)
capid=""
if [ "${PCAP:-0}" = 1 ]; then
  # The server's own view, to the microsecond: its SIP port on loopback, captured on sipp's core.
  taskset -c "$sipp_cpu" dumpcap -q -P -i lo -f "udp port $sip" -B 256 -s 2048 -w "$dir/sip.pcap" \
    2>"$dir/dumpcap.err" &
  capid=$!
  for _ in $(seq 1 50); do [ -s "$dir/sip.pcap" ] && break; sleep 0.1; done
fi
t0=$(date +%s.%N); c0=$(cpu "$pid"); b0=$(core_busy); s1="0 $t0"
(cd "$dir" && exec taskset -c "$sipp_cpu" sipp "127.0.0.1:$sip" -sf scenario.xml -inf in.csv \
  -m "$count" -r "$rate" -rp 1000 -l "$concurrent" -i 127.0.0.1 -p "$(free)" -mp "$(( $(free) & ~1 ))" \
  -buff_size 4194304 -recv_timeout 10000 -timeout "${limit}s" -nostdin \
  -trace_stat -fd 1 -trace_rtt -rtt_freq 1 -trace_screen -trace_err ${SIPP_ARGS:-} >"$dir/sipp.out" 2>&1) &
sippid=$!
( sleep $((limit + 15)); kill "$sippid" ) 2>/dev/null &
watchdog=$!
# The server's CPU every second while the load is offered. Each transaction's last timer
# fires 32 s (64 x T1) after its last message, so the steady state (every timer running) is
# from 33 s on: runs longer than 40 s report it separately, and PERF profiles it.
steady=33; secs=$(python3 -c "import math; print(math.ceil($send_s))")
perf_at=$(( secs >= steady + 5 ? steady : secs / 3 )); perf_len=$(( secs - perf_at > 10 ? 10 : secs - perf_at ))
echo "$t0 $c0 $b0" >"$dir/cpu.txt"
for i in $(seq 1 "$secs"); do
  if [ -n "${PERF:-}" ] && [ "$i" -eq $((perf_at + 1)) ] && [ "$perf_len" -ge 1 ]; then
    timeout $((perf_len + 30)) perf record -q -F 250 --call-graph dwarf,32768 -p "$pid" -o "$PERF" \
      -- sleep "$perf_len" 2>>"$dir/perf.err" &
    perfpid=$!
  fi
  sleep 1
  echo "$(date +%s.%N) $(cpu "$pid") $(core_busy)" >>"$dir/cpu.txt"
  if kill -0 "$sippid" 2>/dev/null; then s1="$(cpu "$sippid") $(date +%s.%N)"; fi
done
rc=0; wait "$sippid" || rc=$?
sippid=""
if [ -n "$capid" ]; then
  sleep 1; kill -INT "$capid" 2>/dev/null || true; wait "$capid" 2>/dev/null || true; capid=""
fi
pkill -P "$watchdog" 2>/dev/null || true; kill "$watchdog" 2>/dev/null || true
wait "$watchdog" 2>/dev/null || true; watchdog=""
[ -n "$perfpid" ] && { wait "$perfpid" || true; perfpid=""; }
# How long the server stays busy after the last call (transaction timers, queued history and
# webhook work): 20 s at most.
tq=$(date +%s.%N); prev=$(cpu "$pid")
for _ in $(seq 1 40); do
  sleep 0.5; now=$(cpu "$pid")
  [ $((now - prev)) -le 1 ] && break
  prev=$now
done
t2=$(date +%s.%N)
rx1=$(metric conclave_sip_received_total); tx1=$(metric conclave_sip_sent_total)
pinned=$(cat /proc/"$pid"/task/*/status | awk '/Cpus_allowed_list/ {print $2}' | sort | uniq -c | xargs)
threads=$(ls /proc/"$pid"/task | wc -l)

python3 - "$dir" "$mode" "$count" "$rate" "$hold" "$rc" "$tck" "$s1" "$rx0" "$rx1" "$tx0" "$tx1" \
  "$pinned" "$threads" "$tq" "$t2" "$n" "$steady" "$sip" <<'PY'
import csv, glob, math, re, sys
(d, mode, count, rate, hold, rc, tck, s1, rx0, rx1, tx0, tx1, pinned, threads, tq, t2, n,
 steady, sip_port) = sys.argv[1:]
count, rate, tck, steady = int(count), int(rate), float(tck), float(steady)
stat = glob.glob(d + "/*_[0-9]*_.csv")
rows = list(csv.reader(open(stat[0], newline=""), delimiter=";")) if stat else []
get = (lambda k: rows[-1][rows[0].index(k)]) if len(rows) > 1 else (lambda k: "?")
ok, failed = get("SuccessfulCall(C)"), get("FailedCall(C)")
done = int(ok) if ok.isdigit() else 0
retrans = get("Retransmissions(C)")
unexpected = get("FailedUnexpectedMessage(C)")
# Answers that reached sipp more than once (the server repeating itself).
repeated = 0
for s in glob.glob(d + "/*_screen.log")[:1]:
    text = open(s, errors="replace").read().split("Messages  Retrans")[-1]
    for line in text.splitlines():
        m = re.match(r"\s*\S+\s+<-+\s+(?:[A-Z]-RTD\d+\s+)?(\d+)\s+(\d+)", line)
        if m:
            repeated += int(m.group(2))
times, stamps = [], []
for f in glob.glob(d + "/*_rtt.csv"):
    for row in csv.reader(open(f, newline=""), delimiter=";"):
        if len(row) >= 3 and row[2].strip() == "1":
            stamps.append(float(row[0])); times.append(float(row[1]))
times.sort(); stamps.sort()
pct = lambda p: times[min(len(times) - 1, math.ceil(p / 100 * len(times)) - 1)] if times else float("nan")
span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else 0
achieved = (len(stamps) - 1) / span if span > 0 else float("nan")
def sip_messages(path):
    """(time, inbound, call-id, cseq number, cseq method, status or 0) of each SIP datagram."""
    import struct
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    end, scale = ("<", 1e-6) if magic in (0xA1B2C3D4, 0xA1B23C4D) else (">", 1e-6)
    if magic in (0xA1B23C4D, 0x4D3CB2A1):
        scale = 1e-9
    link = struct.unpack(end + "I", data[20:24])[0]
    skip = {1: 14, 0: 4, 113: 16, 276: 20, 101: 0}.get(link, 14)
    head = re.compile(rb"^(?:SIP/2\.0 (\d{3})|[A-Z]+ )")
    call_re = re.compile(rb"\r\n(?:Call-ID|i)\s*:\s*([^\r]+)", re.I)
    cseq_re = re.compile(rb"\r\nCSeq\s*:\s*(\d+)\s+([A-Z]+)", re.I)
    i = 24
    while i + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(end + "IIII", data[i:i + 16])
        pkt = data[i + 16:i + 16 + incl]; i += 16 + incl
        ip = pkt[skip:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        udp = ip[(ip[0] & 15) * 4:]
        dport = struct.unpack(">H", udp[2:4])[0]
        payload = udp[8:]
        m = head.match(payload)
        call, cseq = call_re.search(payload), cseq_re.search(payload)
        if not (m and call and cseq):
            continue
        yield (sec + frac * scale, dport == int(sip_port), call.group(1).strip(), int(cseq.group(1)),
               cseq.group(2).upper().decode(), int(m.group(1) or 0))
server_times, steady_times = [], []
try:
    first_in, answered = {}, {}
    for at, inbound, call, seq, method, status in sip_messages(d + "/sip.pcap"):
        if inbound and not status and method in ("INVITE", "REGISTER") and seq == 1:
            first_in.setdefault(call, at)
        elif not inbound and status >= 200 and method in ("INVITE", "REGISTER") \
                and (method == "INVITE" or seq == 2):
            answered.setdefault(call, at)
    timed = [(first_in[c], 1000 * (answered[c] - first_in[c])) for c in answered if c in first_in]
    server_times = sorted(t for _, t in timed)
    start = min(first_in.values()) if first_in else 0
    steady_times = sorted(t for at, t in timed if at - start >= steady)
except FileNotFoundError:
    pass
samples = [tuple(map(float, line.split())) for line in open(d + "/cpu.txt")]
def usage(a, b):  # server's and others' share of the core between samples a and b
    wall = samples[b][0] - samples[a][0]
    server = (samples[b][1] - samples[a][1]) / tck / wall
    busy = (samples[b][2] - samples[a][2]) / tck / wall
    return server, max(busy - server, 0.0), wall
unit = "registration" if mode == "register" else "call"
what = {"register": f"registrations of {n} extensions (REGISTER, 401, REGISTER with digest, 200)",
        "invite": f"calls into a room (INVITE, 200, ACK, {hold} ms hold, BYE)",
        "invite404": "INVITEs to no room (INVITE, 404, ACK)"}[mode]
print(f"{mode}: {count} {what} offered at {rate}/s; sipp exit {rc}")
print(f"completed: {ok}, failed: {failed} (unexpected messages: {unexpected}); "
      f"retransmissions: sipp {retrans}, server {repeated}")
print(f"achieved: {achieved:.0f}/s; {'registration' if mode == 'register' else 'set-up'} time "
      f"(ms, sipp counts whole ms): p50 {pct(50):.0f}  p90 {pct(90):.0f}  p99 {pct(99):.0f}  "
      f"max {times[-1] if times else float('nan'):.0f}  ({len(times)} timed)")
def show(label, ts):
    sp = lambda p: ts[min(len(ts) - 1, math.ceil(p / 100 * len(ts)) - 1)]
    print(f"  {label}: p50 {sp(50):.2f}  p90 {sp(90):.2f}  p99 {sp(99):.2f}  "
          f"p99.9 {sp(99.9):.2f}  max {ts[-1]:.2f}  ({len(ts)} timed)")
if server_times:
    show("in the server (captured on loopback, ms)", server_times)
if len(steady_times) >= 100:
    show(f"  from {steady:.0f} s on (steady state)", steady_times)
server, others, wall = usage(0, len(samples) - 1)
line = f"server CPU: {100 * server:.1f} % of its core over {wall:.0f} s (others {100 * others:.1f} %)"
first = next((i for i, s in enumerate(samples) if s[0] - samples[0][0] >= steady), None)
if first is not None and len(samples) - 1 - first >= 5:
    server, others, wall = usage(first, len(samples) - 1)
    line += f"; steady state (all timers running) {100 * server:.1f} % over the last {wall:.0f} s (others {100 * others:.1f} %)"
else:
    line += "; no steady state (shorter than 38 s: transaction timers not all running yet)"
print(line)
per = server / (achieved if achieved == achieved and achieved > 0 else rate)
print(f"  = {1000 * per:.3f} ms of CPU per {unit}, about {1 / per if per else float('nan'):.0f}/s at 100 % "
      f"if linear; busy {float(t2) - float(tq):.1f} s after the last {unit} (20 s at most)")
sipp_ticks, sipp_at = map(float, s1.split())
print(f"sipp CPU: {100 * sipp_ticks / tck / max(sipp_at - samples[0][0], 1e-9):.1f} % of its core; server SIP "
      f"messages in/out per {unit}: {(int(rx1) - int(rx0)) / max(done, 1):.2f}/"
      f"{(int(tx1) - int(tx0)) / max(done, 1):.2f}; server threads {threads}, CPUs allowed: {pinned}")
PY
