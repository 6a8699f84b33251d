#!/usr/bin/env bash
# The whole test suite: quality gates, the container image, a fresh local Kafka and a
# fresh PostgreSQL on their own ports, pytest. Both are stopped again, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser test drives Debian's Chromium; install it when it is missing.
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (Debian package) for the browser test"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  fi
fi

# The inbox's PostgreSQL store is tested against a real server: Debian's
# postgresql, installed when initdb/pg_ctl are missing (they live under
# /usr/lib/postgresql/<version>/bin, not on PATH).
if ! python -c 'import sys; from advisering.dev.local_postgres import available; sys.exit(0 if available() else 1)'; then
  echo "== installing postgresql (Debian package) for the inbox store tests"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fi
fi

echo "== ruff"
ruff check .
echo "== mypy (strict)"
mypy advisering

# The Helm chart, offline: lint, unit tests, schema validation, broken values
# refused. Its pinned tools are built once into ~/.cache/advisering/tools.
bash scripts/chart-check.sh

# The container image, built and saved before the tests that check it (tests/image);
# the first run installs buildah and friends from Debian and makes the base.
echo "== container image (scripts/image.sh)"
bash scripts/image.sh

# The tests get a broker of their own, wiped at every run, so a developer's
# demo broker on 9092 is neither disturbed nor read.
unset ADVISERING_BOOTSTRAP_SERVERS
export ADVISERING_KAFKA_PORT="${ADVISERING_TEST_KAFKA_PORT:-19092}"
# Its data lives outside the user's ~/.cache/advisering (only the Kafka jars there are
# shared); the tests' own demo, inbox and worker state go to a directory of each
# pytest session (tests/isolation.py).
export ADVISERING_KAFKA_STATE_DIR="${TMPDIR:-/tmp}/advisering-test-brokers-$(id -u)/broker-$ADVISERING_KAFKA_PORT"
export ADVISERING_LOG_FORMAT="${ADVISERING_LOG_FORMAT:-json}"

# A throwaway PostgreSQL cluster of the tests' own, on its own port (initdb as an
# unprivileged user when we are root: PostgreSQL refuses root), wiped at every run.
export ADVISERING_TEST_PG_PORT="${ADVISERING_TEST_PG_PORT:-19432}"
PG_DIR="${TMPDIR:-/tmp}/advisering-test-pg-$(id -u)/pg-$ADVISERING_TEST_PG_PORT"

started=0
pg_started=0
stop_test_servers() {
  if [ "$started" = 1 ]; then
    echo "== stopping the test broker"
    advisering kafka stop || true
  fi
  if [ "$pg_started" = 1 ]; then
    echo "== stopping the test PostgreSQL"
    python -m advisering.dev.local_postgres stop --dir "$PG_DIR" || true
  fi
}
trap stop_test_servers EXIT

echo "== postgresql (port $ADVISERING_TEST_PG_PORT)"
# Passable (not readable) for the cluster's own user when we are root.
install -d -m 0711 "$(dirname "$PG_DIR")"
pg_started=1
ADVISERING_TEST_PG_DSN="$(python -m advisering.dev.local_postgres start --port "$ADVISERING_TEST_PG_PORT" --dir "$PG_DIR")"
export ADVISERING_TEST_PG_DSN

echo "== kafka (port $ADVISERING_KAFKA_PORT)"
if ! advisering kafka status >/dev/null; then
  advisering kafka start --fresh
  started=1
else
  echo "a test broker is already running on $ADVISERING_KAFKA_PORT; using it"
fi

echo "== pytest"
pytest "$@"
