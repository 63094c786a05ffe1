#!/usr/bin/env bash
# Builds the web console into web/dist (served by `conclave serve --web-dir web/dist`).
set -euo pipefail
cd "$(dirname "$0")/../web"
source ../scripts/env.sh
# `npm ci` refuses the lock file this registry mirror produces (optional platform packages
# recorded without versions); `npm install` honours the lock file all the same.
npm install --no-audit --no-fund --loglevel=error
npm run --silent build
