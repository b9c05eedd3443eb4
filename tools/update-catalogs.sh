#!/usr/bin/env bash
# Re-extract translatable strings and merge them into every catalog (en, zh_Hans, zh_Hant); then translate the new entries.
set -euo pipefail
cd "$(dirname "$0")/.."
pybabel extract -F babel.cfg -k N_ -k ngettext:1,2 --no-location --sort-output --project engagebot --copyright-holder engagebot --msgid-bugs-address "" -o locales/messages.pot .
for l in en zh_Hans zh_Hant; do
  if [ -f locales/$l/LC_MESSAGES/messages.po ]; then pybabel update --no-fuzzy-matching --ignore-obsolete -i locales/messages.pot -d locales -l $l
  else pybabel init -i locales/messages.pot -d locales -l $l; fi
done
