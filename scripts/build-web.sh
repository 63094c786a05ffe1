#!/usr/bin/env bash
# Builds the web console into web/dist (served by `conclave serve --web-dir web/dist`).
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
