#!/usr/bin/env bash
# Generates the voice prompts (English and Mandarin) into assets/prompts/<lang>/<name>.wav as
# 16 kHz mono 16-bit WAV, with espeak-ng and sox from Debian. The files are committed, so
# building and running Conclave needs neither; rerun this after changing a text.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v espeak-ng >/dev/null && command -v sox >/dev/null || {
  echo "make-prompts: needs espeak-ng and sox (apt-get install espeak-ng sox)" >&2; exit 1; }

declare -A en=(
  [enter_pin]="Welcome. Please enter the conference PIN, followed by the hash key."
  [wrong_pin]="That PIN is not correct. Please try again."
  [welcome]="You are now in the conference."
  [first]="You are the first participant."
  [muted]="You are muted."
  [unmuted]="You are unmuted."
)
declare -A zh=(
  [enter_pin]="欢迎。请输入会议密码，以井号键结束。"
  [wrong_pin]="密码错误，请重新输入。"
  [welcome]="您已进入会议。"
  [first]="您是第一位参会者。"
  [muted]="您已被静音。"
  [unmuted]="您已取消静音。"
)
speak() { # lang voice name text
  mkdir -p "assets/prompts/$1"
  espeak-ng -v "$2" -s 150 -w /tmp/prompt.wav "$4"
  sox /tmp/prompt.wav -r 16000 -c 1 -b 16 "assets/prompts/$1/$3.wav" norm -3 pad 0.1 0.3
}
for name in "${!en[@]}"; do speak en en-us "$name" "${en[$name]}"; done
for name in "${!zh[@]}"; do speak zh cmn "$name" "${zh[$name]}"; done
rm -f /tmp/prompt.wav
ls -l assets/prompts/*
