#!/usr/bin/env bash
# Mutation testing of the money and trust paths (signatures, claims, dedupe, outbox, reply windows):
# a developer command, slow, not part of tools/test.sh or CI. See docs/testing.md for the figures.
#   pip install -e ".[test,mutation]"   then   tools/mutation.sh [--list] [TARGET ...] [--time-limit S]
# Runs niced (NICE=15 by default): the machine stays usable meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
exec nice -n "${NICE:-15}" python tools/mutation.py "$@"
