"""The operator's promotions file: pydantic models, CSV code pools, and whole-file validation.

A file is checked entirely (every promotion, campaign and pool CSV) before anything is written;
the first problems are reported naming the promotion (or campaign) and the field.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.core.dates import DayOrMoment
from bot.errors import RulesFileError, ValueRefusal
from bot.files import describe_validation_error, image_problem, read_data_file, read_image_bytes, read_text_file
from bot.i18n import N_, locale_keys

from .codes import ALPHABET, MIN_CODE_LENGTH

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# Valid both as a WeChat QR_LIMIT_STR_SCENE (1..64 chars) and a Telegram deep-link payload.
SCENE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
POOL_CODE_PATTERN = re.compile(rf"^[A-Za-z0-9_-]{{{MIN_CODE_LENGTH},32}}$")
MAX_POOL_CODES = 200_000
MAX_CSV_BYTES = 8 * 1024 * 1024
REFERRAL_SCENE_PREFIX = "ref-"

Localized = dict[str, str]


def _check_locales(value: dict[str, Any]) -> dict[str, Any]:
    """Locale keys name catalogs (``zh-hans`` is ``zh_Hans``); an unknown one is an error."""
    return locale_keys(value)


def check_keywords(value: dict[str, list[str]]) -> dict[str, list[str]]:
    """A promotion's keywords per locale: known locales, each keyword 1 to 64 characters (ValueError if not).

    The promotions file and the admin API's edit check them with this one function."""
    value = _check_locales(value)
    for locale, words in value.items():
        if any(not w or not w.strip() or len(w) > 64 for w in words):
            raise ValueRefusal(N_("{locale}: every keyword must be 1 to 64 characters"), locale=locale)
    return value


class AudienceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    followers_only: bool = True
    followed_since: DayOrMoment | None = None  # followers who followed on or after this moment
    tags: list[str] = Field(default_factory=list, max_length=50)
    locales: list[str] = Field(default_factory=list)

    @field_validator("locales")
    @classmethod
    def _locales(cls, value: list[str]) -> list[str]:
        return list(_check_locales(dict.fromkeys(value, "")))


class CodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Literal["unique", "shared", "pool"] = "unique"
    # unique: random characters after the prefix
    length: int = Field(default=MIN_CODE_LENGTH, ge=MIN_CODE_LENGTH, le=16)
    prefix: str = Field(default="", pattern=r"^[A-Z0-9]{0,8}$")
    value: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{3,32}$")  # shared: the code
    codes_csv: str | None = None  # pool: path relative to the YAML file

    @model_validator(mode="after")
    def _strategy_fields(self) -> CodeSpec:
        if self.strategy == "shared" and not self.value:
            raise ValueError("a shared code needs 'value'")
        if self.strategy == "pool" and not self.codes_csv:
            raise ValueError("a pool needs 'codes_csv' (a CSV file next to the YAML)")
        if self.strategy != "shared" and self.value:
            raise ValueError("'value' is only for strategy: shared")
        if self.strategy != "pool" and self.codes_csv:
            raise ValueError("'codes_csv' is only for strategy: pool")
        return self


class ValiditySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int | None = Field(default=None, ge=1, le=3660)  # after the claim, to the end of that day
    until: DayOrMoment | None = None  # an absolute end (a date means the end of that day)

    @model_validator(mode="after")
    def _one(self) -> ValiditySpec:
        if (self.days is None) == (self.until is None):
            raise ValueError("give exactly one of 'days' or 'until'")
        return self


class ValueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    kind: Literal["discount", "price"] = "discount"


class PromotionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: str = Field(pattern=SLUG_PATTERN)
    title: Localized
    description: Localized = Field(default_factory=dict)
    terms: Localized = Field(default_factory=dict)
    channels: list[str] = Field(default_factory=list)
    audience: AudienceSpec = Field(default_factory=AudienceSpec)
    timezone: str = "Asia/Shanghai"
    starts_at: DayOrMoment | None = None  # years 2000 to 9998 (bot.core.dates)
    ends_at: DayOrMoment | None = None
    quota: int | None = Field(default=None, ge=1, le=100_000_000)
    per_follower_limit: int = Field(default=1, ge=1, le=1000)
    code: CodeSpec = Field(default_factory=CodeSpec)
    validity: ValiditySpec | None = None
    keywords: dict[str, list[str]] = Field(default_factory=dict)
    menu_key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_:.-]{1,64}$")
    value: ValueSpec | None = None
    friends_needed: int | None = Field(default=None, ge=1, le=100)
    # An image sent with the offer's reply: an http(s) URL, or a PNG/JPEG/GIF/BMP file (relative to this file).
    poster: str | None = Field(default=None, min_length=1, max_length=1024)

    @field_validator("poster")
    @classmethod
    def _poster(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(("http://", "https://")) and not urlsplit(value).hostname:
            raise ValueError("a poster URL needs a host, e.g. https://example.com/poster.png")
        if value is not None and "://" in value and not value.startswith(("http://", "https://")):
            raise ValueError("a poster is an http(s) URL or a file path")
        return value

    @field_validator("title", "description", "terms")
    @classmethod
    def _texts(cls, value: Localized) -> Localized:
        value = _check_locales(value)
        for locale, text in value.items():
            if not isinstance(text, str) or not text.strip():
                raise ValueRefusal(N_("{locale}: empty text"), locale=locale)
            if len(text) > 1000:
                raise ValueRefusal(N_("{locale}: longer than 1000 characters"), locale=locale)
        return value

    @field_validator("title")
    @classmethod
    def _title_required(cls, value: Localized) -> Localized:
        if not value:
            raise ValueRefusal(N_("give a title in at least one locale"))
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return check_keywords(value)

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        if any(not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", c) for c in value):
            raise ValueError("channel names are lowercase, e.g. wechat, telegram, weibo")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PromotionSpec:
        start, end = self.starts_at_utc, self.ends_at_utc
        if start and end and end <= start:
            raise ValueRefusal(N_("ends_at must be after starts_at"))
        if self.code.strategy == "shared" and self.per_follower_limit != 1:
            raise ValueError("a shared code gives the same code to everyone: per_follower_limit must be 1")
        return self

    # Times are given in the promotion's own time zone unless they carry an offset; stored as UTC.
    def to_utc(self, value: datetime | date | None, *, end_of_day: bool = False) -> datetime | None:
        return to_utc(value, self.timezone, end_of_day=end_of_day)

    @property
    def starts_at_utc(self) -> datetime | None:
        return self.to_utc(self.starts_at)

    @property
    def ends_at_utc(self) -> datetime | None:
        return self.to_utc(self.ends_at, end_of_day=True)


class CampaignSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: str = Field(pattern=SLUG_PATTERN)
    scene: str = Field(pattern=SCENE_PATTERN)
    source: str = Field(min_length=1, max_length=128)
    promotion: str | None = Field(default=None, pattern=SLUG_PATTERN)

    @field_validator("scene")
    @classmethod
    def _not_referral(cls, value: str) -> str:
        if value.startswith(REFERRAL_SCENE_PREFIX):
            raise ValueError(f"scenes starting with {REFERRAL_SCENE_PREFIX!r} are kept for personal invites")
        return value


class PromoFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    promotions: list[PromotionSpec] = Field(default_factory=list)
    campaigns: list[Any] = Field(default_factory=list)  # validated on their own, to name them in errors


class CampaignList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaigns: list[CampaignSpec] = Field(default_factory=list)


class ParsedPromoFile(BaseModel):
    """A checked file: promotions, campaigns, and the pool codes read from each promotion's CSV."""

    promotions: list[PromotionSpec]
    campaigns: list[CampaignSpec]
    pools: dict[str, list[str]]


def to_utc(value: datetime | date | None, tz_name: str, *, end_of_day: bool = False) -> datetime | None:
    """Read a time from the file: naive values are in ``tz_name``; a bare date is its start (or end)."""
    if value is None:
        return None
    tz = ZoneInfo(tz_name)
    if not isinstance(value, datetime):
        moment = datetime.combine(value, time(0, 0), tzinfo=tz)
        if end_of_day:
            moment += timedelta(days=1) - timedelta(microseconds=1)
        return moment.astimezone(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def read_pool_csv(path: Path, *, label: str) -> list[str]:
    """Read pool codes, one per row (first column; a header "code" is skipped), or raise saying why."""
    text = read_text_file(path, error=RulesFileError, where=f"{label}: {path}", max_bytes=MAX_CSV_BYTES)
    codes: list[str] = []
    seen: set[str] = set()
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip():
            continue
        code = row[0].strip()
        if number == 1 and code.casefold() == "code":
            continue
        if not POOL_CODE_PATTERN.fullmatch(code):
            raise RulesFileError(f"{label}: {path.name} line {number}: code {code[:40]!r} must be "
                                 f"{MIN_CODE_LENGTH} to 32 of A-Z, a-z, 0-9, _ and -")
        if code in seen:
            raise RulesFileError(f"{label}: {path.name} line {number}: code {code!r} appears twice")
        seen.add(code)
        codes.append(code)
        if len(codes) > MAX_POOL_CODES:
            raise RulesFileError(f"{label}: {path.name} has more than {MAX_POOL_CODES} codes")
    if not codes:
        raise RulesFileError(f"{label}: {path.name} holds no codes")
    return codes


def parse_promo_file(data: Any, *, base_dir: Path, source: str = "promotions file") -> ParsedPromoFile:
    """Validate a loaded YAML document; raise RulesFileError naming the promotion and field."""
    if not isinstance(data, dict):
        raise RulesFileError(f"{source}: expected a mapping with a 'promotions' list (and optional 'campaigns')")
    try:
        parsed = PromoFile.model_validate(data)
    except ValidationError as exc:
        raise RulesFileError(f"{source}: {describe_validation_error(exc, data, 'promotions')}") from None
    try:
        campaigns = CampaignList.model_validate({"campaigns": parsed.campaigns}).campaigns
    except ValidationError as exc:
        raise RulesFileError(f"{source}: {describe_validation_error(exc, data, 'campaigns')}") from None
    _unique(source, "promotions", [p.slug for p in parsed.promotions], "slug")
    _unique(source, "promotions", [p.menu_key for p in parsed.promotions if p.menu_key], "menu_key")
    _unique(source, "campaigns", [c.slug for c in campaigns], "slug")
    _unique(source, "campaigns", [c.scene for c in campaigns], "scene")
    pools: dict[str, list[str]] = {}
    promotions = [_with_poster(promo, f"{source}: promotions[{index}] ({promo.slug!r}) field poster", base_dir)
                  for index, promo in enumerate(parsed.promotions)]
    for index, promo in enumerate(promotions):
        if promo.code.strategy == "pool":
            label = f"{source}: promotions[{index}] ({promo.slug!r}) field code.codes_csv"
            csv_path = (base_dir / promo.code.codes_csv).resolve()  # type: ignore[operator]  # a pool has a CSV (validated)
            pools[promo.slug] = read_pool_csv(csv_path, label=label)
    return ParsedPromoFile(promotions=promotions, campaigns=campaigns, pools=pools)


def _with_poster(promo: PromotionSpec, label: str, base_dir: Path) -> PromotionSpec:
    """Check a poster file now (a URL is fetched when sent) and keep its absolute path."""
    if promo.poster is None or promo.poster.startswith(("http://", "https://")):
        return promo
    path = (base_dir / promo.poster).resolve()
    try:
        problem = image_problem(read_image_bytes(path))
    except OSError as exc:
        problem = f"cannot read ({exc.strerror or exc})"
    except ValueError as exc:
        problem = str(exc)
    if problem is not None:
        raise RulesFileError(f"{label}: {path}: {problem}")
    return promo.model_copy(update={"poster": str(path)})


def _unique(source: str, list_key: str, values: list[str], field: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise RulesFileError(f"{source}: {list_key}: {field} {value!r} appears twice")
        seen.add(value)


def read_promo_file(path: str | Path) -> ParsedPromoFile:
    """Read and validate a promotions YAML file (and the CSV files it names)."""
    p = Path(path)
    return parse_promo_file(read_data_file(p), base_dir=p.resolve().parent, source=str(p))


__all__ = [
    "ALPHABET", "CampaignSpec", "ParsedPromoFile", "PromotionSpec", "REFERRAL_SCENE_PREFIX",
    "parse_promo_file", "read_pool_csv", "read_promo_file", "to_utc",
]
