"""Fill empty translations in a catalog from a JSON file {msgid: msgstr}; en copies the msgid.

    python tools/fill-catalog.py zh_Hans translations.json
    python tools/fill-catalog.py en          # English is the source language
    python tools/fill-catalog.py zh_Hant --draft-from zh_Hans
        # what is still empty gets the zh_Hans text converted to Hong Kong Traditional (OpenCC),
        # marked fuzzy: `engagebot i18n check` fails until someone reads each one and drops the flag
"""

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
args = sys.argv[1:]
draft_from = None
if "--draft-from" in args:
    at = args.index("--draft-from")
    draft_from = args[at + 1]
    del args[at:at + 2]
locale = args[0]


def po_path(loc: str) -> Path:
    return ROOT / "locales" / loc / "LC_MESSAGES" / "messages.po"


table = json.loads(Path(args[1]).read_text("utf-8")) if len(args) > 1 else {}
with po_path(locale).open("rb") as fh:
    catalog = read_po(fh, locale=locale)
source = None
if draft_from:
    sys.path.insert(0, str(ROOT))
    from bot.chinese import convert_to

    with po_path(draft_from).open("rb") as fh:
        source = read_po(fh, locale=draft_from)
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
    elif source is not None and source.get(message.id) is not None and source.get(message.id).string:
        drafted = source.get(message.id).string
        message.string = (tuple(convert_to(s, locale) for s in drafted) if isinstance(drafted, tuple)
                          else convert_to(drafted, locale))
        message.flags.add("fuzzy")
        print(f"draft (fuzzy, review it): {msgid!r}")
    else:
        missing.append(msgid)
with po_path(locale).open("wb") as fh:
    write_po(fh, catalog, width=100, sort_output=True, omit_header=False)
for msgid in missing:
    print(f"untranslated: {msgid!r}")
