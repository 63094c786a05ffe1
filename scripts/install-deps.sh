#!/usr/bin/env bash
# Installs what building and testing Conclave needs on Debian 12, and nothing when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=$(cat scripts/debian-packages.txt crates/*/debian-packages.txt 2>/dev/null \
  | sed 's/#.*//' | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
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

if ! command -v cargo >/dev/null; then
  echo "install-deps: Rust is missing. Install Rust 1.95 or newer with rustup (https://rustup.rs)." >&2
  exit 1
fi
need="1.95"
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  echo "install-deps: rustc $have is too old; Conclave needs $need or newer (rustup update)." >&2
  exit 1
fi
