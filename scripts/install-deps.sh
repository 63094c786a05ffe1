#!/usr/bin/env bash
# Installs what building and running Conclave needs on Debian 12 (with --test: and what the
# tests need), and nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

lists=(scripts/debian-packages.txt crates/*/debian-packages.txt)
[ "${1:-}" = "--test" ] && lists+=(scripts/debian-packages-test.txt)
packages=$(cat "${lists[@]}" 2>/dev/null | sed 's/#.*//' | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
missing=()
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

version_at_least() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }
if ! command -v cargo >/dev/null; then
  echo "install-deps: Rust is missing. Install Rust 1.95 or newer with rustup (https://rustup.rs)." >&2
  exit 1
fi
have=$(rustc --version | awk '{print $2}')
version_at_least 1.95 "$have" || { echo "install-deps: rustc $have is too old; Conclave needs 1.95 or newer (rustup update)." >&2; exit 1; }
# The console's tools want Node.js 20.19 or newer; Debian 12's own is 18. When the machine's is
# older, a Node.js 20 from the npm registry (the node-linux-<arch> package: the official build)
# goes into ~/.cache/conclave/node, and scripts/env.sh puts it first on PATH.
node_dir="$HOME/.cache/conclave/node"
node_version=20.19.5
node=$(node --version 2>/dev/null | tr -d v || true)
if [ -z "$node" ] || ! version_at_least 20.19 "$node"; then
  if ! command -v npm >/dev/null; then
    echo "install-deps: installing Debian's npm (to fetch Node.js $node_version)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm
  fi
  case "$(uname -m)" in
    x86_64) arch=x64 ;; aarch64) arch=arm64 ;;
    *) echo "install-deps: no Node.js package for $(uname -m); install Node.js 20.19+ yourself" >&2; exit 1 ;;
  esac
  if [ ! -x "$node_dir/bin/node" ] || [ "$("$node_dir/bin/node" --version)" != "v$node_version" ]; then
    echo "install-deps: Node.js ${node:-none} is too old for the console: fetching $node_version from the npm registry"
    mkdir -p "$node_dir"
    timeout 600 npm install --no-audit --no-fund --loglevel=error --prefix "$node_dir" \
      "node-linux-$arch@$node_version"
    mkdir -p "$node_dir/bin"
    ln -sf "$node_dir/node_modules/node-linux-$arch/bin/node" "$node_dir/bin/node"
  fi
  "$node_dir/bin/node" --version >/dev/null
fi
# The tests' Python tools live in one venv (~/.cache/conclave/venv, shared with
# scripts/api-fuzz.sh): aiosmtpd is the real SMTP server the invitation tests mail to
# (crates/server/tests/api/scheduling.rs, invitations_by_mail_*).
if [ "${1:-}" = "--test" ]; then
  venv="$HOME/.cache/conclave/venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null || "$venv/bin/pip" install -q "aiosmtpd==1.4.6"
  # moto's server: the S3-compatible store the recordings' tests upload to (recording.rs)
  "$venv/bin/python" -c 'import moto.server, flask_cors' 2>/dev/null \
    || "$venv/bin/pip" install -q "moto[server]==5.1.22"
  # pypinyin: the minutes' tests speak Mandarin as numbered pinyin (crates/server/tests/api/minutes.rs)
  "$venv/bin/python" -c 'import pypinyin' 2>/dev/null || "$venv/bin/pip" install -q "pypinyin==0.55.0"
  # the speech model the minutes' tests recognize with (cached in ~/.cache/conclave/models)
  scripts/fetch-speech-model.sh "$HOME/.cache/conclave/models" >/dev/null
fi
