# Shared by benches/vs-janus.sh and benches/capacity.sh (sourced, not run): builds the
# release server and the load generator, starts and stops Conclave and Janus on loopback,
# runs benches/rtpload against them. Every wait has a timeout; whatever is started here is
# stopped on exit.
#
# Environment: CONCLAVE_BIN / RTPLOAD_BIN (use these binaries instead of building),
# CARGO_TARGET_DIR (default ~/.cache/conclave/target), KEEP=1 (keep the work directory and
# the servers' logs), LOG (Conclave's log level, default warn).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/conclave/target}"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then stop_pid "$server_pid"; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop_pid() { # pid: TERM, then KILL after 10 s
  kill "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

build() {
  if [ -n "${CONCLAVE_BIN:-}" ] && [ -n "${RTPLOAD_BIN:-}" ]; then
    conclave_bin="$CONCLAVE_BIN"; rtpload_bin="$RTPLOAD_BIN"
  else
    # Another build may hold cargo's lock: cargo waits for it (bounded by `timeout`).
    timeout 3600 cargo build --release --locked -q -p conclave-server -p rtpload --bin conclave --bin rtpload
    conclave_bin="${CONCLAVE_BIN:-$CARGO_TARGET_DIR/release/conclave}"
    rtpload_bin="${RTPLOAD_BIN:-$CARGO_TARGET_DIR/release/rtpload}"
  fi
  [ -x "$conclave_bin" ] && [ -x "$rtpload_bin" ] || { echo "binaries missing" >&2; exit 2; }
}

# need_debian PACKAGE: Debian's package (its command has the same name) installed, and the
# service the install may have started stopped: the benches run their own.
need_debian() {
  command -v "$1" >/dev/null && return 0
  echo "installing Debian's $1..." >&2
  [ "$(id -u)" = 0 ] || { echo "$1 is missing: apt-get install $1 (as root)" >&2; exit 2; }
  export DEBIAN_FRONTEND=noninteractive
  timeout 900 apt-get install -y -q "$1" >/dev/null 2>&1 \
    || { timeout 600 apt-get update -q >/dev/null && timeout 900 apt-get install -y -q "$1" >/dev/null; }
  timeout 30 systemctl stop "$1" >/dev/null 2>&1 || true
}

need_janus() {
  need_debian janus
  # The package's service must not be what we measure (nor hold a port).
  if pgrep -x janus >/dev/null && [ -z "$server_pid" ]; then
    echo "a janus is already running (pid $(pgrep -x janus | xargs)): stop it first" >&2; exit 2
  fi
}

# start_conclave CPUS MEMBERS: a release server with an empty SQLite data dir, pinned to
# CPUS, with room 8001 made for MEMBERS callers. Sets server_pid, sip_addr, and api and
# token (the API's base URL and an administrator's token) for more set-up.
start_conclave() {
  local cpus="$1" members="$2" data="$work/conclave" http sip
  rm -rf "$data"; mkdir -p "$data"
  http=$(free_port); sip=$(free_port)
  CONCLAVE_ADMIN_PASSWORD=bench-admin-password taskset -c "$cpus" "$conclave_bin" serve \
    --data-dir "$data" --http-listen "127.0.0.1:$http" --sip-udp "127.0.0.1:$sip" \
    --sip-tcp 127.0.0.1:0 --sip-tls 127.0.0.1:0 --log "${LOG:-warn}" ${CONCLAVE_ARGS:-} \
    >"$work/conclave.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$http/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$http/healthz" >/dev/null || { tail "$work/conclave.log" >&2; exit 1; }
  api="http://127.0.0.1:$http/api/v1"
  local capacity=$((members + 10))
  [ "$capacity" -le 10000 ] || capacity=10000
  token=$(curl -fs -X POST "$api/auth/login" -H 'content-type: application/json' \
    -d '{"username":"admin","password":"bench-admin-password"}' \
    | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
  curl -fsS -o /dev/null -X POST "$api/rooms" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' \
    -d "{\"number\":\"8001\",\"name\":\"Bench\",\"capacity\":$capacity,\"auto_record\":${RECORD_ROOM:-false}}"
  sip_addr="127.0.0.1:$sip"
}

# start_janus CPUS: Debian's Janus with only the AudioBridge plugin and the HTTP transport on
# loopback, configured in the work directory. Sets server_pid, janus_http.
start_janus() {
  local cpus="$1" dir="$work/janus" port lib=/usr/lib/x86_64-linux-gnu/janus
  [ -d "$lib" ] || lib=$(dirname "$(dpkg -L janus | grep -m1 '/plugins/libjanus_audiobridge.so$')")/..
  rm -rf "$dir"; mkdir -p "$dir"/{conf,plugins,transports,events,loggers}
  ln -s "$lib/plugins/libjanus_audiobridge.so" "$dir/plugins/"
  ln -s "$lib/transports/libjanus_http.so" "$dir/transports/"
  port=$(free_port)
  cat >"$dir/conf/janus.jcfg" <<EOF
general: {
	configs_folder = "$dir/conf"
	plugins_folder = "$dir/plugins"
	transports_folder = "$dir/transports"
	events_folder = "$dir/events"
	loggers_folder = "$dir/loggers"
	debug_level = 3
	session_timeout = 0
}
certificates: {
}
media: {
}
nat: {
	nice_debug = false
	ice_enforce_list = "lo"
}
plugins: {
}
transports: {
}
events: {
	broadcast = false
}
EOF
  cat >"$dir/conf/janus.transport.http.jcfg" <<EOF
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = $port
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
EOF
  cat >"$dir/conf/janus.plugin.audiobridge.jcfg" <<EOF
general: {
	rtp_port_range = "20000-29999"
	local_ip = "127.0.0.1"
	events = false
}
EOF
  taskset -c "$cpus" janus -F "$dir/conf" -C "$dir/conf/janus.jcfg" -o >"$work/janus.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$port/janus/info" >/dev/null 2>&1 && break; sleep 0.1
  done
  curl -fs "http://127.0.0.1:$port/janus/info" >/dev/null || { tail -20 "$work/janus.log" >&2; exit 1; }
  janus_http="127.0.0.1:$port"
}

stop_server() {
  [ -n "$server_pid" ] && stop_pid "$server_pid"
  server_pid=""
}

# rtpload_run CPUS OUT.json ARGS...: the generator pinned to CPUS, bounded in time by its
# own set-up timeout and window plus a margin. Its exit status is returned.
rtpload_run() {
  local cpus="$1" out="$2"; shift 2
  local rc=0
  timeout 1800 taskset -c "$cpus" "$rtpload_bin" "$@" --json "$out" 2>>"$work/rtpload.err" || rc=$?
  tail -1 "$work/rtpload.err" >&2
  return $rc
}
