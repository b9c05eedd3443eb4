"""Catalogs, locale negotiation and formatting (Babel); no knowledge of followers or channels.

Catalogs are read from ``locales/<locale>/LC_MESSAGES/messages.po`` and compiled in memory at
start, so there is no ``.mo`` step to forget. A catalog that fails to parse stops the start.
"""

from __future__ import annotations

import gettext
import io
import re
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_date as _babel_format_date
from babel.dates import format_datetime as _babel_format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.numbers import format_currency as _babel_format_currency
from babel.numbers import format_decimal as _babel_format_decimal

DOMAIN = "messages"
SOURCE_LOCALE = "en"
SUPPORTED_LOCALES = ("en", "zh_Hans")
DEFAULT_LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TRADITIONAL_TERRITORIES = {"TW", "HK", "MO"}


class CatalogError(ValueError):
    """A catalog file is missing or does not parse."""


def locales_dir() -> Path:
    """Return the folder holding the catalogs (the repo's ``locales/`` or the installed copy)."""
    if DEFAULT_LOCALES_DIR.is_dir():
        return DEFAULT_LOCALES_DIR
    from importlib.resources import files

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


@lru_cache(maxsize=512)
def normalize_locale(tag: str | None, available: tuple[str, ...] = SUPPORTED_LOCALES) -> str | None:
    """Map a platform's language tag to a supported locale, or None if none fits.

    ``zh-hans``, ``zh_CN``, ``zh-CN`` and ``zh-SG`` give zh_Hans; ``zh-TW`` and ``zh-HK`` give zh_Hant
    when a catalog exists, else zh_Hans (a Mandarin reader reads simplified better than English);
    ``en-US`` gives en; ``pt-br`` gives None.
    """
    if not tag or not isinstance(tag, str) or len(tag) > 35:
        return None
    cleaned = tag.strip().replace("-", "_")
    if not re.fullmatch(r"[A-Za-z]{2,8}(_[A-Za-z0-9]{1,8})*", cleaned):
        return None
    try:
        parsed = Locale.parse(cleaned)
    except (ValueError, UnknownLocaleError):
        try:  # keep the language when the rest is unknown ("en_XX")
            parsed = Locale.parse(cleaned.split("_", 1)[0])
        except (ValueError, UnknownLocaleError):
            return None
    language, script = parsed.language, parsed.script
    if script is None:
        likely = get_global("likely_subtags")
        key = f"{language}_{parsed.territory}" if parsed.territory else language
        guess = likely.get(key) or likely.get(language)
        if guess:
            parts = guess.split("_")
            script = next((p for p in parts[1:] if len(p) == 4), None)
    if language == "zh" and script is None:
        script = "Hant" if parsed.territory in _TRADITIONAL_TERRITORIES else "Hans"
    candidates = [f"{language}_{script}"] if script else []
    candidates.append(language)
    if language == "zh":
        candidates.append("zh_Hans")
    for cand in candidates:
        if cand in available:
            return cand
    return None


def script_locale(text: str | None) -> str | None:
    """Guess a locale from the writing: Han characters mean zh_Hans; None when it says nothing."""
    if not text:
        return None
    return "zh_Hans" if _HAN.search(text) else None


def negotiate(
    *, chosen: str | None, hint: str | None, text: str | None, default: str,
    available: tuple[str, ...] = SUPPORTED_LOCALES,
) -> str:
    """Pick the locale: the follower's choice > the platform's hint > the script > the default."""
    for candidate in (chosen if chosen in available else None, normalize_locale(hint, available), script_locale(text)):
        if candidate:
            return candidate
    return default if default in available else SOURCE_LOCALE


@dataclass(frozen=True, slots=True)
class Formatter:
    """Dates, numbers and money in one locale (and time zone)."""

    locale: str
    tz: tzinfo | None = None

    def date(self, value: date | datetime, format: str = "medium") -> str:
        if isinstance(value, datetime):
            value = value.astimezone(self.tz) if self.tz else value
            return _babel_format_date(value.date(), format=format, locale=self.locale)
        return _babel_format_date(value, format=format, locale=self.locale)

    def datetime(self, value: datetime, format: str = "medium") -> str:
        return _babel_format_datetime(value, format=format, tzinfo=self.tz, locale=self.locale)

    def number(self, value: int | float | Decimal) -> str:
        return _babel_format_decimal(value, locale=self.locale)

    def money(self, amount: int | float | Decimal, currency: str) -> str:
        return _babel_format_currency(amount, currency, locale=self.locale)
