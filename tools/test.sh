#!/usr/bin/env bash
# The project's test command (README): the catalogs must be complete, the code must pass its checks
# (ruff, the import-linter layer contracts, mypy), then the whole suite.
# Set ENGAGEBOT_TEST_DATABASE_URL to a PostgreSQL server URL to run the tests that use the database
# there (the others do not depend on it; ENGAGEBOT_TEST_EVERYTHING=1 runs them all).
# ENGAGEBOT_TEST_WORKERS sets pytest-xdist's processes (default 2; 0 runs in one process). Tests
# marked `timing` measure rates and deadlines: they run afterwards, alone, so no other test takes
# their CPU.
# ENGAGEBOT_TEST_CHECKS=0 leaves out the catalog check, ruff, lint-imports and mypy: none of them depends on
# the database, so .ci/run runs them in its SQLite pass only (mypy alone is about 12 s of a pass).
set -euo pipefail
cd "$(dirname "$0")/.."
checks=${ENGAGEBOT_TEST_CHECKS:-1}
workers=${ENGAGEBOT_TEST_WORKERS:-2}
# This script's own knobs stay out of the tests' environment: the engagebot commands the tests start warn of
# an ENGAGEBOT_* variable that is not a setting, and tests check those warnings word for word.
unset ENGAGEBOT_TEST_CHECKS ENGAGEBOT_TEST_WORKERS
if [ "$checks" != 0 ]; then
  engagebot i18n check
  ruff check --quiet .
  lint-imports --no-cache
  mypy
fi
if [ "$workers" = 0 ]; then
  python -m pytest -q -p no:cacheprovider "$@"
else
  # pytest exits 5 when a selection holds no test (e.g. a path with no timing test in it).
  python -m pytest -q -p no:cacheprovider -n "$workers" -m "not timing" "$@" || [ $? = 5 ]
  python -m pytest -q -p no:cacheprovider -m timing "$@" || [ $? = 5 ]
fi
