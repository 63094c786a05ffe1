#!/usr/bin/env bash
# The one command that runs every test: installs what it needs, checks formatting and lints,
# and runs the whole workspace's tests. PostgreSQL tests run when CONCLAVE_TEST_POSTGRES_URL is
# set (and say loudly that they were skipped when it is not).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
source scripts/env.sh
scripts/build-web.sh

if [ -n "${CONCLAVE_TEST_POSTGRES_URL:-}" ]; then
  psql "$CONCLAVE_TEST_POSTGRES_URL" -qtAc 'SELECT 1' >/dev/null \
    || { echo "test: PostgreSQL at CONCLAVE_TEST_POSTGRES_URL is not reachable" >&2; exit 1; }
else
  echo "test: *** CONCLAVE_TEST_POSTGRES_URL is not set: PostgreSQL tests will be SKIPPED ***"
fi

cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

# The web console: its types against the API's OpenAPI document, then in a real browser
# against the server binary.
cargo build --locked -q -p conclave-server --bin conclave
scripts/check-web.sh
node --test web/tests/

# The running API against its own OpenAPI document: no server error, no undocumented answer.
scripts/api-fuzz.sh

# Every Rust test of the workspace, on SQLite and (when configured) PostgreSQL, with real peers.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast
fi
