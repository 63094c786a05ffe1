#!/usr/bin/env bash
# How well the minutes hear (docs/minutes.md): speaks the fixed sentences of
# benches/minutes/sentences.tsv — English with espeak-ng, Mandarin as numbered pinyin
# (pypinyin) spoken by espeak-ng's cmn-latn-pinyin voice — recognizes each as the server
# does and prints the English word error rate, the Chinese character error rate and the
# real-time factor.   benches/minutes-accuracy.sh [beam] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
beam="${1:-5}"
threads="${2:-$(nproc)}"
command -v espeak-ng >/dev/null || { echo "minutes-accuracy: needs espeak-ng (apt install espeak-ng)" >&2; exit 1; }
scripts/fetch-speech-model.sh "$HOME/.cache/conclave/models" >/dev/null
venv="$HOME/.cache/conclave/venv"
"$venv/bin/python" -c 'import pypinyin' 2>/dev/null || "$venv/bin/pip" install -q "pypinyin==0.55.0"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
while IFS=$'\t' read -r language text; do
  n=$((n + 1))
  if [ "$language" = zh ]; then
    spoken=$("$venv/bin/python" -c 'import sys
from pypinyin import lazy_pinyin, Style
s = sys.argv[1].replace("，", ", ").replace("。", ". ")
print(" ".join(lazy_pinyin(s, style=Style.TONE3, neutral_tone_with_five=True)))' "$text")
    espeak-ng -v cmn-latn-pinyin ${ZHSPEED:+-s $ZHSPEED} -w "$work/$n.wav" "$spoken"
  else
    espeak-ng -v en-us -w "$work/$n.wav" "$text"
  fi
  printf '%s\t%s\t%s\n' "$language" "$text" "$work/$n.wav" >> "$work/list.tsv"
done < benches/minutes/sentences.tsv
grep -P "^${ONLY:-..}\t" "$work/list.tsv" > "$work/some.tsv" && mv "$work/some.tsv" "$work/list.tsv"
cargo run -q --locked -p conclave-minutes --example accuracy -- \
  "$HOME/.cache/conclave/models/whisper-base.bin" "$work/list.tsv" "$beam" "$threads" ${LANGS:-}
