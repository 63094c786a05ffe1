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
  [room_locked]="This meeting is locked. Please contact the chairperson."
  [room_full]="This meeting is full. Please try again later."
  [ends_soon]="The meeting will end in five minutes."
  [ended]="The meeting has ended. Goodbye."
  [count]="Participants in the meeting:"
  [enter_room]="Welcome to the conference service. Please enter the room number, followed by the hash key."
  [no_such_room]="There is no room with that number. Please try again."
  [goodbye]="Goodbye."
  [room_created]="Your room is ready."
  [room_deleted]="The room has been deleted."
  [not_allowed]="Sorry, that is not allowed."
  [meeting_locked]="The meeting is now locked."
  [meeting_unlocked]="The meeting is now unlocked."
  [recording_started]="This meeting is now being recorded."
  [recording_stopped]="Recording has stopped."
  [d0]="zero" [d1]="one" [d2]="two" [d3]="three" [d4]="four"
  [d5]="five" [d6]="six" [d7]="seven" [d8]="eight" [d9]="nine"
)
declare -A zh=(
  [enter_pin]="欢迎。请输入会议密码，以井号键结束。"
  [wrong_pin]="密码错误，请重新输入。"
  [welcome]="您已进入会议。"
  [first]="您是第一位参会者。"
  [muted]="您已被静音。"
  [unmuted]="您已取消静音。"
  [room_locked]="会议已锁定，请联系主持人。"
  [room_full]="会议人数已满，请稍后再试。"
  [ends_soon]="会议将在五分钟后结束。"
  [ended]="会议已结束，再见。"
  [count]="当前参会人数："
  [enter_room]="欢迎使用电话会议服务。请输入会议室号码，以井号键结束。"
  [no_such_room]="没有这个会议室号码，请重新输入。"
  [goodbye]="再见。"
  [room_created]="您的会议室已创建。"
  [room_deleted]="会议室已删除。"
  [not_allowed]="抱歉，不允许此操作。"
  [meeting_locked]="会议已锁定。"
  [meeting_unlocked]="会议已解锁。"
  [recording_started]="本次会议正在录音。"
  [recording_stopped]="录音已停止。"
  [d0]="零" [d1]="一" [d2]="二" [d3]="三" [d4]="四"
  [d5]="五" [d6]="六" [d7]="七" [d8]="八" [d9]="九"
)
speak() { # lang voice name text
  mkdir -p "assets/prompts/$1"
  espeak-ng -v "$2" -s 150 -w /tmp/prompt.wav "$4"
  sox /tmp/prompt.wav -r 16000 -c 1 -b 16 "assets/prompts/$1/$3.wav" norm -3 pad 0.1 0.3
}
# ONLY="name …" regenerates just those prompts (the others stay as committed).
wanted() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
for name in "${!en[@]}"; do wanted "$name" && speak en en-us "$name" "${en[$name]}"; done
for name in "${!zh[@]}"; do wanted "$name" && speak zh cmn "$name" "${zh[$name]}"; done
[ -n "${ONLY:-}" ] && { rm -f /tmp/prompt.wav; exit 0; }
# Sounds, the same in every language: a rising chime when someone joins, a falling one when
# someone leaves, and a calm loop played to whoever waits alone in a meeting.
mkdir -p assets/sounds
sox -n -r 16000 -c 1 -b 16 assets/sounds/join.wav synth 0.12 sine 660 : synth 0.18 sine 990 fade 0 0.18 0.08 vol 0.5
sox -n -r 16000 -c 1 -b 16 assets/sounds/leave.wav synth 0.12 sine 990 : synth 0.18 sine 660 fade 0 0.18 0.08 vol 0.5
sox -n -r 16000 -c 1 -b 16 assets/sounds/alone.wav \
  synth 1.5 sine 392 sine 494 sine 587 fade 0.3 1.5 0.5 : \
  synth 1.5 sine 330 sine 440 sine 523 fade 0.3 1.5 0.5 : \
  synth 1.5 sine 349 sine 440 sine 523 fade 0.3 1.5 0.5 : \
  synth 1.5 sine 392 sine 494 sine 587 fade 0.3 1.5 0.5 vol 0.25
rm -f /tmp/prompt.wav
ls -l assets/prompts/*
