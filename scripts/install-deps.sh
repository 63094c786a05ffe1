#!/usr/bin/env bash
# Installs what building and running Conclave needs on Debian 12 (with --test: and what the
# tests need), and nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

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
node=$(node --version 2>/dev/null | tr -d v || true)
if [ -z "$node" ] || ! version_at_least 20.19 "$node" || ! command -v npm >/dev/null; then
  echo "install-deps: the web console needs Node.js 20.19 or newer with npm (found '${node:-none}')." >&2
  exit 1
fi
