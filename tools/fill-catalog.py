"""Fill empty translations in a catalog from a JSON file {msgid: msgstr}; en copies the msgid.

    python tools/fill-catalog.py zh_Hans translations.json
    python tools/fill-catalog.py en          # English is the source language
"""

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

locale = sys.argv[1]
path = Path(__file__).resolve().parent.parent / "locales" / locale / "LC_MESSAGES" / "messages.po"
table = json.loads(Path(sys.argv[2]).read_text("utf-8")) if len(sys.argv) > 2 else {}
with path.open("rb") as fh:
    catalog = read_po(fh, locale=locale)
missing = []
for message in catalog:
    if not message.id or (message.string if not isinstance(message.string, tuple) else all(message.string)):
        continue
    msgid = message.id[0] if isinstance(message.id, tuple) else message.id
    if locale == "en":
        message.string = message.id
    elif msgid in table:
        value = table[msgid]
        message.string = tuple(value) if isinstance(message.id, tuple) else value
    else:
        missing.append(msgid)
with path.open("wb") as fh:
    write_po(fh, catalog, width=100, sort_output=True, omit_header=False)
for msgid in missing:
    print(f"untranslated: {msgid!r}")
