#!/usr/bin/env bash
# The project's test command (README): the catalogs must be complete, then the whole suite.
# Set ENGAGEBOT_TEST_DATABASE_URL to a PostgreSQL server URL to run the storage tests there too.
set -euo pipefail
cd "$(dirname "$0")/.."
engagebot i18n check
python -m pytest -q -p no:cacheprovider "$@"
