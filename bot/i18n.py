"""Catalogs, locale negotiation and formatting (Babel); no knowledge of followers or channels.

Catalogs are read from ``locales/<locale>/LC_MESSAGES/messages.po`` and compiled in memory at
start, so there is no ``.mo`` step to forget. A catalog that fails to parse stops the start.

Negotiation (the follower's choice > the platform's hint > the script of the message > the
account's default) is documented case by case in ``docs/localization.md``; a test runs that table.
"""

from __future__ import annotations

import gettext
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_date as _babel_format_date
from babel.dates import format_datetime as _babel_format_datetime
from babel.dates import format_time as _babel_format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.numbers import format_currency as _babel_format_currency
from babel.numbers import format_decimal as _babel_format_decimal
from babel.units import format_unit as _babel_format_unit

from bot.chinese import HAN, HANS, HANT, convert_to, fold, han_script, simplified_characters
from bot.errors import ValueRefusal

DOMAIN = "messages"
SOURCE_LOCALE = "en"
SUPPORTED_LOCALES = ("en", "zh_Hans", "zh_Hant")
CHINESE_LOCALES = (HANS, HANT)
# The catalog for followers whose language has none (pt-br, fr, ja...): ENGAGEBOT_INTERNATIONAL_LOCALE.
INTERNATIONAL_LOCALE = "en"
# What operator content (rules, promotions, broadcasts) should give; zh_Hant is converted from zh_Hans.
OPERATOR_LOCALES = ("en", "zh_Hans")
# BCP 47 "undetermined": a platform asked that knows no language for the follower (never asked again).
UNDETERMINED = "und"
DEFAULT_LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"

# Languages whose readers read Chinese characters: Mandarin, Cantonese, Wu, Hakka, Min, Gan, Xiang...
SINITIC = frozenset({"zh", "cmn", "yue", "wuu", "hak", "nan", "gan", "hsn", "cjy", "cdo", "cpx", "czh", "czo",
                     "mnp", "lzh"})
_TRADITIONAL_TERRITORIES = frozenset({"TW", "HK", "MO"})
# Babel formats in a fuller locale than the catalog's: Traditional Chinese the way Hong Kong writes it.
FORMAT_LOCALES = {HANT: "zh_Hant_HK"}

_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
_KANA_HANGUL = re.compile("[\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f"
                          "\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff]")
_LATIN = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff\uff21-\uff3a\uff41-\uff5a]")
_JUDGED_CHARACTERS = 2000


class CatalogError(ValueError):
    """A catalog file is missing or does not parse."""


def locales_dir() -> Path:
    """Return the folder holding the catalogs (the repo's ``locales/`` or the installed copy)."""
    if DEFAULT_LOCALES_DIR.is_dir():
        return DEFAULT_LOCALES_DIR
    return Path(str(files("bot") / "locales"))


def _compile(po_path: Path, locale: str) -> gettext.GNUTranslations:
    try:
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=locale, abort_invalid=True)
    except (OSError, PoFileError, ValueError, UnknownLocaleError) as exc:
        raise CatalogError(f"{po_path}: {exc}") from None
    buf = io.BytesIO()
    # Fuzzy entries are not served: a half-checked translation is worse than the source text.
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


class Catalogs:
    """The compiled translations of every supported locale."""

    def __init__(self, directory: Path | None = None, locales: tuple[str, ...] = SUPPORTED_LOCALES) -> None:
        self.directory = directory or locales_dir()
        self.locales = locales
        self._translations: dict[str, gettext.NullTranslations] = {}
        for loc in locales:
            po = self.directory / loc / "LC_MESSAGES" / f"{DOMAIN}.po"
            if not po.is_file():
                raise CatalogError(f"missing catalog {po}")
            self._translations[loc] = _compile(po, loc)

    def translation(self, locale: str) -> gettext.NullTranslations:
        return self._translations.get(locale) or self._translations[SOURCE_LOCALE]

    def gettext(self, locale: str, message: str) -> str:
        return self.translation(locale).gettext(message)

    def ngettext(self, locale: str, singular: str, plural: str, n: int) -> str:
        return self.translation(locale).ngettext(singular, plural, n)


@lru_cache(maxsize=1)
def default_catalogs() -> Catalogs:
    return Catalogs()


# The locale of the message being handled; set and reset by the router's locale middleware.
current_locale: ContextVar[str] = ContextVar("current_locale", default=SOURCE_LOCALE)


def _(message: str) -> str:
    """Translate ``message`` into the current follower's locale."""
    return default_catalogs().gettext(current_locale.get(), message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return default_catalogs().ngettext(current_locale.get(), singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet (translate later with ``_``)."""
    return message


# --- language tags ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LanguageTag:
    """The parts of a language tag that matter here (BCP 47 ``zh-Hant-HK`` or POSIX ``zh_TW.UTF-8``)."""

    language: str
    script: str | None = None
    territory: str | None = None


@lru_cache(maxsize=1024)
def parse_tag(tag: str | None) -> LanguageTag | None:
    """Read a platform's language tag; None for garbage, ``und`` and languages nobody speaks."""
    if not tag or not isinstance(tag, str) or len(tag) > 35:
        return None
    cleaned = tag.strip().split(".", 1)[0].split("@", 1)[0]
    if not _TAG.fullmatch(cleaned):
        return None
    language, *rest = re.split(r"[-_]", cleaned)
    language = language.lower()
    if language not in SINITIC and language not in _known_languages():
        return None
    script = territory = None
    for part in rest:
        if len(part) == 4 and part.isalpha() and script is None and territory is None:
            script = part.title()
        elif territory is None and ((len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit())):
            territory = part.upper()
    return LanguageTag(language, script, territory)


@lru_cache(maxsize=1)
def _known_languages() -> frozenset[str]:
    return frozenset(str(code) for code in Locale("en").languages if isinstance(code, str) and code.isalpha() and code != UNDETERMINED)


def _chinese_script(tag: LanguageTag) -> str:
    if tag.script in ("Hans", "Hant"):
        return f"zh_{tag.script}"
    if tag.territory in _TRADITIONAL_TERRITORIES:
        return HANT
    likely = get_global("likely_subtags")
    guess = (tag.territory and likely.get(f"{tag.language}_{tag.territory}")) or likely.get(tag.language) or ""
    return HANT if "_Hant" in guess else HANS


def nearest_chinese(script_locale: str, available: Iterable[str] = SUPPORTED_LOCALES) -> str | None:
    """The Chinese catalog for a reader of ``script_locale``: that script, else the other one."""
    avail = tuple(available)
    other = HANS if script_locale == HANT else HANT
    return next((loc for loc in (script_locale, other) if loc in avail), None)


@lru_cache(maxsize=512)
def normalize_locale(tag: str | None, available: tuple[str, ...] = SUPPORTED_LOCALES) -> str | None:
    """Map a language tag to a catalog, or None if none fits.

    ``zh-hans``, ``zh_CN``, ``zh-SG`` and ``zh`` give zh_Hans; ``zh-TW``, ``zh-HK``, ``zh-MO``,
    ``zh-Hant*`` and ``yue`` give zh_Hant (zh_Hans when there is no such catalog: the nearest
    Chinese); ``en-US`` gives en; ``pt-br`` gives None (see :func:`negotiate` for what it means).
    """
    if isinstance(tag, str) and tag in available:
        return tag
    parsed = parse_tag(tag)
    if parsed is None:
        return None
    if parsed.language in SINITIC:
        return nearest_chinese(_chinese_script(parsed), available)
    for candidate in (f"{parsed.language}_{parsed.script}" if parsed.script else None, parsed.language):
        if candidate in available:
            return candidate
    return None


def chinese_locale(text: str | None, *preferences: str | None,
                   available: tuple[str, ...] = SUPPORTED_LOCALES) -> str:
    """The Chinese catalog for someone asking for "Chinese": the script ``text`` is written in
    (漢語 is Traditional), else the first Chinese one among ``preferences`` (tags or catalogs: the
    platform's hint, the current locale...), else zh_Hans."""
    written = han_script(text) if text else None
    for candidate in (written, *(normalize_locale(p, available) for p in preferences if p)):
        if candidate in CHINESE_LOCALES:
            return nearest_chinese(candidate, available) or HANS
    return nearest_chinese(HANS, available) or HANS


def require_locale(tag: str, available: tuple[str, ...] = SUPPORTED_LOCALES) -> str:
    """The catalog ``tag`` names (any tag that normalizes to one), or ValueError listing the choices."""
    found = normalize_locale(tag, available)
    if found is None:
        raise ValueError(f"unknown locale {tag!r}; use one of {', '.join(available)} (or a tag such as zh-hant)")
    return found


def locale_keys(value: Mapping[str, Any], available: tuple[str, ...] = SUPPORTED_LOCALES) -> dict[str, Any]:
    """Normalize the locale keys of operator content (``zh-hans:`` is ``zh_Hans:``); ValueError if unknown."""
    unknown = sorted(k for k in value if normalize_locale(k, available) is None)
    if unknown:
        raise ValueRefusal(N_("unknown locale(s) {unknown}; use {available} (or tags such as zh-hant)"),
                           unknown=unknown, available=list(available))
    out: dict[str, Any] = {}
    for key, item in value.items():
        locale = normalize_locale(key, available)
        assert locale is not None
        if locale in out:
            raise ValueError(f"locale {locale} given twice (as {key!r} too)")
        out[locale] = item
    return out


# --- negotiation ------------------------------------------------------------------------------


def script_locale(text: str | None, *, default: str = HANS, international: str = INTERNATIONAL_LOCALE,
                  available: tuple[str, ...] = SUPPORTED_LOCALES) -> str | None:
    """Guess a locale from the writing of ``text``; None when it says nothing.

    Kana or Hangul: not Chinese (the international locale). Han characters: Chinese, Simplified or
    Traditional by the characters (the account's Chinese, else zh_Hans, when they are the same in
    both). Latin letters: en. Other letters (Cyrillic, Thai...): the international locale. Digits,
    emoji and punctuation alone say nothing.
    """
    if not text:
        return None
    sample = text[:_JUDGED_CHARACTERS]
    if _KANA_HANGUL.search(sample):
        return international
    if HAN.search(sample):
        written = han_script(sample) or (default if default in CHINESE_LOCALES else HANS)
        return nearest_chinese(written, available) or international
    if _LATIN.search(sample):
        return SOURCE_LOCALE if SOURCE_LOCALE in available else international
    if any(unicodedata.category(ch).startswith("L") for ch in sample):
        return international
    return None


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The locale picked, and which step decided: choice, hint, script, international or default."""

    locale: str
    step: str


def negotiation(
    *, chosen: str | None, hint: str | None, text: str | None, default: str,
    international: str = INTERNATIONAL_LOCALE, available: tuple[str, ...] = SUPPORTED_LOCALES,
) -> Negotiated:
    """Pick the locale: the follower's choice > the platform's hint > the script > the default.

    A hint naming a language without a catalog (``pt-br``, ``ja``) is weaker than the script: it
    decides only when the message says nothing, and then as the international locale, since the
    account's default is likely not a language that follower reads either.
    """
    fallback = normalize_locale(default, available) or SOURCE_LOCALE
    abroad = normalize_locale(international, available) or SOURCE_LOCALE
    own = normalize_locale(chosen, available) if chosen else None
    if own:
        return Negotiated(own, "choice")
    tag = parse_tag(hint)
    hinted = normalize_locale(hint, available) if tag is not None else None
    if hinted:
        return Negotiated(hinted, "hint")
    written = script_locale(text, default=fallback, international=abroad, available=available)
    if written:
        return Negotiated(written, "script")
    if tag is not None:
        return Negotiated(abroad, "international")
    return Negotiated(fallback, "default")


def negotiate(
    *, chosen: str | None, hint: str | None, text: str | None, default: str,
    international: str = INTERNATIONAL_LOCALE, available: tuple[str, ...] = SUPPORTED_LOCALES,
) -> str:
    """The locale :func:`negotiation` picks."""
    return negotiation(chosen=chosen, hint=hint, text=text, default=default, international=international,
                       available=available).locale


# --- operator content -------------------------------------------------------------------------


def pick_text(texts: Mapping[str, str] | None, locale: str, *, default: str | None = None) -> str:
    """The operator's text for a reader of ``locale``.

    Its own text; for Chinese, the other script's converted with OpenCC (a zh_Hant reader never gets
    Simplified as is); else the text in ``default``, in English, or whichever there is.
    """
    if not texts:
        return ""
    if texts.get(locale):
        return texts[locale]
    if locale in CHINESE_LOCALES:
        other = HANS if locale == HANT else HANT
        if texts.get(other):
            return convert_to(texts[other], locale)
    for fallback in (default, SOURCE_LOCALE):
        if fallback and texts.get(fallback):
            return texts[fallback]
    return next((t for t in texts.values() if t), "")


def missing_locales(texts: Mapping[str, Any] | None) -> list[str]:
    """The operator locales a text (or keyword list) per locale lacks; [] when nothing is given.

    zh_Hant is never missing: followers reading it get the zh_Hans text converted (and the reverse).
    """
    if not texts:
        return []
    given = {loc for loc, value in texts.items() if value}
    if given & set(CHINESE_LOCALES):
        given |= set(CHINESE_LOCALES)
    return [loc for loc in OPERATOR_LOCALES if loc not in given]


_READERS = {"en": "English", HANS: "Chinese"}


def locale_warnings(what: str, fields: Mapping[str, Mapping[str, Any] | None], *,
                    keyword_fields: Iterable[str] = ()) -> list[str]:
    """One line per operator locale a piece of operator content lacks, naming it and the field.

    ``what`` names the item (``rule 'hours'``); ``fields`` maps a field name to its texts (or
    keyword lists) per locale. zh_Hant is never reported (see :func:`missing_locales`).
    """
    keyword_fields = set(keyword_fields)
    lines = []
    for field, texts in fields.items():
        for locale in missing_locales(texts):
            readers = _READERS.get(locale, locale)
            if field in keyword_fields:
                lines.append(f"{what} field {field}: nothing in {locale} (followers writing {readers} will not match it)")
            else:
                other = SOURCE_LOCALE if texts and texts.get(SOURCE_LOCALE) else next(iter(texts or {"?": ""}))
                lines.append(f"{what} field {field}: nothing in {locale} (followers reading {readers} get the {other} text)")
    return lines


# --- formatting -------------------------------------------------------------------------------


# Formatter's methods are named after these types; the aliases keep the names from shadowing them.
_Day = date
_Moment = datetime


@dataclass(frozen=True, slots=True)
class Formatter:
    """Dates, numbers and money in one locale (and time zone)."""

    locale: str
    tz: tzinfo | None = None

    @property
    def babel_locale(self) -> str:
        return FORMAT_LOCALES.get(self.locale, self.locale)

    def date(self, value: date | datetime, format: str = "medium") -> str:
        if isinstance(value, datetime):
            value = value.astimezone(self.tz) if self.tz else value
            return _babel_format_date(value.date(), format=format, locale=self.babel_locale)
        return _babel_format_date(value, format=format, locale=self.babel_locale)

    def datetime(self, value: datetime, format: str = "medium") -> str:
        return _babel_format_datetime(value, format=format, tzinfo=self.tz, locale=self.babel_locale)

    def time(self, value: _Moment, format: str = "short") -> str:
        """A time of day as written in the locale, in the value's own zone (a store's, say)."""
        return _babel_format_time(value, format=format, locale=self.babel_locale)

    def weekday(self, value: _Day) -> str:
        return _babel_format_date(value, format="EEEE", locale=self.babel_locale)

    def distance(self, metres: float) -> str:
        """A distance in the locale's words: metres below one kilometre (rounded to 10), else kilometres."""
        if metres < 950:
            return _babel_format_unit(max(10, round(metres, -1)), "length-meter", length="short",
                                      locale=self.babel_locale)
        km = round(metres / 1000, 1) if metres < 100_000 else round(metres / 1000)
        return _babel_format_unit(km, "length-kilometer", length="short", locale=self.babel_locale)

    def number(self, value: int | float | Decimal) -> str:
        return _babel_format_decimal(value, locale=self.babel_locale)

    def money(self, amount: int | float | Decimal, currency: str) -> str:
        return _babel_format_currency(amount, currency, locale=self.babel_locale)


def operator_time(value: datetime | None, tz: str | tzinfo) -> str:
    """A stored time for an operator's eyes, in the configured zone: ``2026-11-22 00:30 CST``.

    Stored times are UTC (SQLite hands them back naive). One at the edge of ``datetime``'s range (stored
    before inputs were limited) may not move to the zone: it is shown in UTC rather than failing the page.
    """
    if value is None:
        return "-"
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    except OverflowError:
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


__all__ = [
    "CHINESE_LOCALES", "DOMAIN", "INTERNATIONAL_LOCALE", "N_", "OPERATOR_LOCALES", "SOURCE_LOCALE",
    "SUPPORTED_LOCALES", "UNDETERMINED", "CatalogError", "Catalogs", "Formatter", "LanguageTag", "Negotiated", "_",
    "chinese_locale", "convert_to", "current_locale", "default_catalogs", "fold", "locale_keys", "locale_warnings",
    "locales_dir",
    "missing_locales", "nearest_chinese", "negotiate", "negotiation", "ngettext", "normalize_locale",
    "operator_time", "parse_tag", "pick_text", "require_locale", "script_locale", "simplified_characters",
]
