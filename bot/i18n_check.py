"""Check the catalogs: every string of the code present and translated (not fuzzy) in every locale."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import PoFileError, read_po

from bot.i18n import DOMAIN, SUPPORTED_LOCALES, locales_dir

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("bot", "handlers")
# The console's templates (bot/admin/templates) call _() like the code does.
METHOD_MAP = [("**.py", "python"), ("**/templates/*.html", "jinja2")]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "gettext": None}


def extract_source_messages(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Every translatable string in the code, with where it first appears."""
    found: dict[str, str] = {}
    for folder in SOURCE_DIRS:
        path = root / folder
        if not path.is_dir():
            continue
        for filename, lineno, message, _comments, _context in extract_from_dir(
            str(path), method_map=METHOD_MAP, keywords=KEYWORDS,
        ):
            key = message[0] if isinstance(message, tuple) else message
            found.setdefault(key, f"{folder}/{filename}:{lineno}")
    return found


def check_catalogs(directory: Path | None = None, *, source_root: Path | None = PROJECT_ROOT) -> list[str]:
    """Return one line per problem; an empty list means the catalogs are complete."""
    directory = directory or locales_dir()
    wanted = extract_source_messages(source_root) if source_root and (source_root / "bot").is_dir() else {}
    problems: list[str] = []
    for locale in SUPPORTED_LOCALES:
        po_path = directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        try:
            with po_path.open("rb") as fh:
                catalog = read_po(fh, locale=locale, abort_invalid=True)
        except (OSError, PoFileError, ValueError) as exc:
            problems.append(f"{locale}: cannot read {po_path}: {exc}")
            continue
        for message in catalog:
            if not message.id:
                continue
            msgid = message.id[0] if isinstance(message.id, tuple) else message.id
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if message.fuzzy:
                problems.append(f"{locale}: fuzzy: {msgid!r}")
            elif not all(strings):
                problems.append(f"{locale}: untranslated: {msgid!r}")
        for msgid, where in wanted.items():
            if msgid not in catalog:
                problems.append(f"{locale}: missing: {msgid!r} ({where})")
    return problems
