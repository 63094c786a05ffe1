#!/usr/bin/env bash
# What a browser video subscriber costs the running server: real Chromiums (Debian's, through
# web/tests/browser-member.mjs) join room 8001 by the join page. One sends its camera (a
# 960×540 30 fps test pattern, simulcast in three layers as the page sends it); the others
# join with the camera off and receive it in their tile of the 2×2 layout (the half layer:
# SRTP, str0m, the SFU's choice of layer and renumbering, congestion control feedback).
# The server's CPU is read over a window with the sender alone, then with 1 subscriber, then
# with SUBSCRIBERS (default 4): the cost of one subscriber is the difference divided by the
# added subscribers. Every subscriber is checked to receive the sender's picture.
#
#   benches/sfu-subscribers.sh               # WINDOW (default 15 s), SUBSCRIBERS (2..8)
#
# Chromium decodes what it receives on the same two cores; only the server's own CPU (its
# threads' scheduler time) is counted. Also CONCLAVE_BIN, RTPLOAD_BIN, CARGO_TARGET_DIR, KEEP
# (see benches/media-common.sh). Bounded: every wait has a timeout.
source "$(dirname "$0")/media-common.sh"

window="${WINDOW:-15}"; subs="${SUBSCRIBERS:-4}"
[[ "$subs" =~ ^[2-8]$ ]] || { echo "SUBSCRIBERS is 2..8" >&2; exit 2; }
[ -f web/dist/index.html ] || scripts/build-web.sh >/dev/null
command -v ffmpeg >/dev/null || { echo "ffmpeg is missing: scripts/install-deps.sh --test" >&2; exit 2; }

build
CONCLAVE_ARGS="--web-dir $PWD/web/dist" start_conclave 0,1 20
base="${api%/api/v1}"
ffmpeg -loglevel error -f lavfi -i testsrc=size=960x540:rate=30 -t 4 -pix_fmt yuv420p "$work/camera.y4m"
ffmpeg -loglevel error -f lavfi -i sine=frequency=300:sample_rate=48000 -t 20 "$work/voice.wav"

members=()
# member NAME [camera]: a Chromium joined as NAME; its stdin is fd ${fds[NAME]}, stdout a file
declare -A fds
member() {
  local name="$1" cam="${2:-}" fd
  mkfifo "$work/$name.in"
  if [ -n "$cam" ]; then
    CONCLAVE_BROWSER_CAMERA="$work/camera.y4m" timeout 600 node web/tests/browser-member.mjs "$base" "$work/voice.wav" en \
      <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
  else
    timeout 600 node web/tests/browser-member.mjs "$base" "$work/voice.wav" en \
      <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
  fi
  exec {fd}>"$work/$name.in"
  fds[$name]=$fd
  members+=("$name")
  ask "$name" "join 8001 $name" joined
}
# ask NAME COMMAND WORD: send a command, wait (60 s at most) for an answer starting with WORD
ask() {
  local name="$1" cmd="$2" word="$3" before
  before=$(wc -l <"$work/$name.out")
  echo "$cmd" >&"${fds[$name]}"
  for _ in $(seq 1 600); do
    if [ "$(wc -l <"$work/$name.out")" -gt "$before" ]; then
      reply=$(tail -1 "$work/$name.out")
      [[ "$reply" == "$word"* ]] && return 0
      echo "$name: $cmd → $reply" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "$name: no answer to $cmd" >&2; tail -5 "$work/$name.err" >&2; exit 1
}
quit_all() {
  for name in "${members[@]}"; do echo quit >&"${fds[$name]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'quit_all; cleanup' EXIT

cpu() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
tck=$(getconf CLK_TCK)
measure() { # → CPU share of one core over the window
  local c0 c1 t0 t1
  c0=$(cpu); t0=$(date +%s.%N); sleep "$window"; c1=$(cpu); t1=$(date +%s.%N)
  python3 -c "print(round(($c1 - $c0) / $tck / ($t1 - $t0), 4))"
}
# every subscriber shows the sender's camera (a picture at least 240 px wide in its tile)
receiving() {
  local name ok=0
  for name in "${members[@]:1}"; do
    ask "$name" tiles tiles
    tail -1 "$work/$name.out" | python3 -c '
import sys, json
t = json.loads(sys.stdin.read()[len("tiles "):])
sys.exit(0 if any(x["member"] is not None and x["width"] >= 240 for x in t) else 1)' && ok=$((ok + 1))
  done
  echo "$ok"
}

member sender camera
sleep 5
alone=$(measure)
member sub1
sleep 6
one=$(measure); got1=$(receiving)
for i in $(seq 2 "$subs"); do member "sub$i"; done
sleep 6
many=$(measure); got=$(receiving)
python3 - "$alone" "$one" "$many" "$subs" "$got1" "$got" <<'PY'
import sys
alone, one, many = map(float, sys.argv[1:4]); n, got1, got = map(int, sys.argv[4:7])
print(f"\nConclave: one browser camera (960x540 test pattern, simulcast) to browser subscribers, 2x2")
print(f"server CPU: sender alone {100*alone:.1f} %, +1 subscriber {100*one:.1f} %, {n} subscribers {100*many:.1f} % of a core")
print(f"subscribers receiving the picture: {got1}/1, then {got}/{n}")
per = (many - one) / (n - 1)
print(f"per subscriber: {100*per:.2f} % of a core (from 1 to {n}); the first: {100*(one-alone):.2f} %")
PY
[ "$got1" = 1 ] && [ "$got" = "$subs" ]
