"""The admin service layer for prompt rules, promotions, codes and stats: the CLI and the API call these.

Each write takes the acting operator and adds its audit row to the caller's transaction; the caller
commits. Failures are typed (``bot.admin.errors``): the API maps them to a status, the CLI prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.errors import ValueRefusal
from bot.i18n import N_, locale_keys
from bot.offers.campaigns import FunnelRow, funnel_by_channel, funnel_stats, get_campaign, qr_image
from bot.offers.links import campaign_links
from bot.offers.loader import LoadSummary, load_promo_file
from bot.offers.models import Campaign, Claim, Promotion
from bot.offers.redeem import RedeemOutcome, RedeemResult, redeem
from bot.offers.spec import ParsedPromoFile, PromotionSpec, check_keywords
from bot.rules import PromptRulesFile, PromptRuleSpec
from bot.storage.models import PromptRule
from bot.storage.prompts import replace_prompt_rules

from .audit import Actor, record
from .errors import Conflict, Invalid, Named, NotFound
from .schemas import PromotionUpdate, RuleUpdate
from .versions import check_version, flush_or_conflict

RULE = N_("prompt rule")
PROMOTION = N_("promotion")
PROMOTION_EXISTS = N_("a promotion {slug!r} exists")


def first_error(exc: ValidationError) -> Invalid:
    """The first problem of a validation error, naming its field (``match.en``) as the API's 422 does."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "body"
    raised = (err.get("ctx") or {}).get("error")
    if err["type"] == "value_error" and isinstance(raised, ValueError) and raised.args:
        return invalid_from(field, raised)  # without pydantic's "Value error, " in front
    return Invalid(field, err["msg"])  # pydantic's own words: English everywhere


def invalid_from(field: str, raised: ValueError) -> Invalid:
    """Our own validator's refusal of ``field``: its message id and parameters when it is a ``ValueRefusal``
    (the console translates it), else its words."""
    if isinstance(raised, ValueRefusal):
        return Invalid(field, raised.message, **raised.params)
    return Invalid(field, str(raised.args[0]) if raised.args else str(raised))


# --- prompt rules --------------------------------------------------------------------------------------
def rule_record(rule: PromptRule) -> dict[str, Any]:
    return {"id": rule.id, "name": rule.name, "regex": rule.regex, "match": rule.match, "reply": rule.reply,
            "priority": rule.priority, "updated_at": rule.updated_at, "version": rule.version}


async def list_rules(session: AsyncSession, *, limit: int, after_id: int | None = None) -> Sequence[PromptRule]:
    query = select(PromptRule).order_by(PromptRule.id).limit(limit)
    if after_id is not None:
        query = query.where(PromptRule.id > after_id)
    return (await session.execute(query)).scalars().all()


async def get_rule(session: AsyncSession, rule_id: int) -> PromptRule:
    rule = await session.get(PromptRule, rule_id)
    if rule is None:
        raise NotFound(N_("no prompt rule {id}"), id=rule_id)
    return rule


async def create_rule(session: AsyncSession, actor: Actor, spec: PromptRuleSpec) -> PromptRule:
    rule = PromptRule(updated_at=utcnow(), **spec.model_dump())
    session.add(rule)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(N_("a prompt rule named {name!r} exists"), name=spec.name) from None
    await record(session, actor, "rule.create", f"rule:{rule.name}", after=rule_record(rule))
    return rule


async def update_rule(session: AsyncSession, actor: Actor, rule: PromptRule, body: RuleUpdate, *,
                      version: int | None) -> PromptRule:
    """Apply ``body``'s fields, checked together as a whole rule (a regex flag checks the patterns)."""
    check_version(rule.version, version, Named(RULE, rule.name))
    before = rule_record(rule)
    merged = {"name": rule.name, "regex": rule.regex, "match": rule.match, "reply": rule.reply,
              "priority": rule.priority, **body.model_dump(exclude_none=True)}
    try:
        spec = PromptRuleSpec.model_validate(merged)
    except ValidationError as exc:
        raise first_error(exc) from None
    for key, value in spec.model_dump().items():
        setattr(rule, key, value)
    rule.updated_at = utcnow()
    await flush_or_conflict(session, Named(RULE, rule.name))
    await record(session, actor, "rule.update", f"rule:{rule.name}", before=before, after=rule_record(rule))
    return rule


async def delete_rule(session: AsyncSession, actor: Actor, rule: PromptRule, *, version: int | None) -> None:
    check_version(rule.version, version, Named(RULE, rule.name))
    before = rule_record(rule)
    await session.delete(rule)
    await flush_or_conflict(session, Named(RULE, rule.name))
    await record(session, actor, "rule.delete", f"rule:{before['name']}", before=before)


async def load_rules(session: AsyncSession, actor: Actor, parsed: PromptRulesFile, *, source: str) -> tuple[int, int]:
    """Insert or replace the file's rules by name (``engagebot prompts load``); return (added, replaced)."""
    added, replaced = await replace_prompt_rules(session, [r.model_dump() for r in parsed.rules])
    await record(session, actor, "rules.load", f"file:{source}",
                 after={"rules": [r.name for r in parsed.rules], "added": added, "replaced": replaced})
    return added, replaced


# --- promotions and codes ------------------------------------------------------------------------------
async def _redeemed(session: AsyncSession, ids: Sequence[int]) -> dict[int, int]:
    if not ids:
        return {}
    query = (select(Claim.promotion_id, func.count()).where(Claim.promotion_id.in_(ids), Claim.redeemed_at.is_not(None))
             .group_by(Claim.promotion_id))
    return {pid: count for pid, count in (await session.execute(query)).all()}


def promotion_record(p: Promotion, redeemed: int) -> dict[str, Any]:
    return {"id": p.id, "slug": p.slug, "title": p.title, "channels": p.channels, "starts_at": p.starts_at,
            "ends_at": p.ends_at, "quota": p.quota, "claimed": p.claimed,
            "remaining": None if p.quota is None else max(0, p.quota - p.claimed), "redeemed": redeemed,
            "per_follower_limit": p.per_follower_limit, "code_strategy": p.code_strategy,
            "updated_at": p.updated_at, "version": p.version}


def _promotion_edit_record(p: Promotion) -> dict[str, Any]:
    """What an edit changes, for the audit log (the live counters are not the operator's doing)."""
    return {"slug": p.slug, "title": p.title, "keywords": p.keywords, "starts_at": p.starts_at, "ends_at": p.ends_at,
            "quota": p.quota, "version": p.version}


async def list_promotions(session: AsyncSession, *, limit: int, after_id: int | None = None) -> list[dict[str, Any]]:
    """Promotions with their live counters (claimed, remaining, redeemed), read now, never cached."""
    query = select(Promotion).order_by(Promotion.id).limit(limit)
    if after_id is not None:
        query = query.where(Promotion.id > after_id)
    promos = (await session.execute(query)).scalars().all()
    redeemed = await _redeemed(session, [p.id for p in promos])
    return [promotion_record(p, redeemed.get(p.id, 0)) for p in promos]


async def get_promotion(session: AsyncSession, promotion_id: int) -> Promotion:
    promo = await session.get(Promotion, promotion_id, populate_existing=True)  # claimed moves under us
    if promo is None:
        raise NotFound(N_("no promotion {id}"), id=promotion_id)
    return promo


async def promotion_view(session: AsyncSession, promo: Promotion) -> dict[str, Any]:
    return promotion_record(promo, (await _redeemed(session, [promo.id])).get(promo.id, 0))


async def update_promotion(session: AsyncSession, actor: Actor, promo: Promotion, body: PromotionUpdate, *,
                           version: int | None) -> Promotion:
    """Change a running promotion's quota, dates, title or keywords; a quota below what is claimed is refused.

    Keywords are checked as the promotions file checks them; the bot matches the new ones within the offer
    index's refresh (2 s)."""
    check_version(promo.version, version, Named(PROMOTION, promo.slug))
    before = _promotion_edit_record(promo)
    fields = body.model_fields_set
    if "quota" in fields and body.quota is not None and body.quota < promo.claimed:
        raise Invalid("quota", N_("{claimed} codes are already claimed, more than {quota}"), claimed=promo.claimed,
                      quota=body.quota)
    starts = body.starts_at if "starts_at" in fields else promo.starts_at
    ends = body.ends_at if "ends_at" in fields else promo.ends_at
    if starts is not None and ends is not None and ends <= starts:
        raise Invalid("ends_at", N_("must be after starts_at"))
    if body.title is not None:
        try:
            title = locale_keys(body.title)
        except ValueError as exc:
            raise invalid_from("title", exc) from None
        if not title or any(not text.strip() or len(text) > 200 for text in title.values()):
            raise Invalid("title", N_("one non-empty title of at most 200 characters per locale"))
        promo.title = title
    if body.keywords is not None:
        try:
            promo.keywords = check_keywords(body.keywords)
        except ValueError as exc:
            raise invalid_from("keywords", exc) from None
    if "quota" in fields:
        promo.quota = body.quota
    promo.starts_at, promo.ends_at = starts, ends
    promo.updated_at = utcnow()
    try:
        await flush_or_conflict(session, Named(PROMOTION, promo.slug))
    except IntegrityError:  # a claim took the last codes between the check and the write
        raise Conflict(N_("promotion {slug!r}: more codes were claimed meanwhile than the new quota"),
                       slug=promo.slug) from None
    await record(session, actor, "promotion.update", f"promotion:{promo.slug}", before=before,
                 after=_promotion_edit_record(promo))
    return promo


async def create_promotion(session: AsyncSession, actor: Actor, spec: PromotionSpec) -> Promotion:
    """Add one promotion, checked by the promotions file's own model and written by its loader.

    What the file reads from disk next to it has no place in an API call: a poster is a URL here and a
    pool of codes comes with ``engagebot promo load``. An existing slug is 409 (edit it with PATCH).
    """
    if spec.poster is not None and not spec.poster.startswith(("http://", "https://")):
        raise Invalid("poster", N_("an http(s) URL here (a file path is for the promotions file)"))
    if spec.code.strategy == "pool":
        raise Invalid("code.strategy", N_("a pool of codes is loaded with its CSV file (engagebot promo load)"))
    if await session.scalar(select(Promotion.id).where(Promotion.slug == spec.slug)) is not None:
        raise Conflict(PROMOTION_EXISTS, slug=spec.slug)
    if spec.menu_key and await session.scalar(select(Promotion.id).where(Promotion.menu_key == spec.menu_key)):
        raise Conflict(N_("another promotion has menu_key {key!r}"), key=spec.menu_key)
    try:
        await load_promo_file(session, ParsedPromoFile(promotions=[spec], campaigns=[], pools={}))
    except IntegrityError:  # the same slug added meanwhile
        raise Conflict(PROMOTION_EXISTS, slug=spec.slug) from None
    promo = (await session.execute(select(Promotion).where(Promotion.slug == spec.slug))).scalar_one()
    await record(session, actor, "promotion.create", f"promotion:{spec.slug}", after=spec.model_dump(mode="json"))
    return promo


async def load_promotions(session: AsyncSession, actor: Actor, parsed: ParsedPromoFile, *, source: str) -> LoadSummary:
    """Upsert a checked promotions file (``engagebot promo load``), all or nothing with the caller's commit."""
    summary = await load_promo_file(session, parsed)
    await record(session, actor, "promotions.load", f"file:{source}",
                 after={"promotions": [p.slug for p in parsed.promotions],
                        "campaigns": [c.slug for c in parsed.campaigns],
                        "pool_codes_added": summary.pool_codes_added})
    return summary


async def redeem_code(session: AsyncSession, actor: Actor, code: str, *, promotion: str | None = None,
                      by: str | None = None) -> RedeemResult:
    """Redeem ``code`` once (bot.offers.redeem); a redemption is audited, a refusal changes nothing."""
    result = await redeem(session, code, by=by or actor.name, promotion=promotion)
    if result.outcome is RedeemOutcome.REDEEMED:
        await record(session, actor, "code.redeem", f"code:{result.code}",
                     after={"promotion": result.promotion, "redeemed_at": result.redeemed_at,
                            "by": by or actor.name})
    return result


# --- campaigns -----------------------------------------------------------------------------------------
def campaign_record(c: Campaign, promotion: str | None) -> dict[str, Any]:
    return {"id": c.id, "slug": c.slug, "scene": c.scene, "source": c.source, "promotion": promotion}


async def list_campaigns(session: AsyncSession, *, limit: int, after_id: int | None = None) -> list[dict[str, Any]]:
    query = (select(Campaign, Promotion.slug).outerjoin(Promotion, Promotion.id == Campaign.promotion_id)
             .order_by(Campaign.id).limit(limit))
    if after_id is not None:
        query = query.where(Campaign.id > after_id)
    return [campaign_record(c, promotion) for c, promotion in (await session.execute(query)).all()]


async def campaign_qr(session: AsyncSession, channels: Sequence[Any], campaign_id: int, channel: str,
                      kind: str) -> tuple[Campaign, bytes]:
    """The campaign's QR code on ``channel`` as PNG or SVG: the link the channel gives for its scene
    (``bot.offers.links``, as ``engagebot campaign qr``), drawn the same way."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(N_("no campaign {id}"), id=campaign_id)
    links = await campaign_links(_Channels(channels), campaign.scene)
    if channel not in links:
        if not links:
            raise NotFound(N_("no {channel} link for campaign {slug!r} (no channel gives scene links here)"),
                           channel=channel, slug=campaign.slug)
        raise NotFound(N_("no {channel} link for campaign {slug!r} (channels with one: {offered})"), channel=channel,
                       slug=campaign.slug, offered=", ".join(sorted(links)))
    return campaign, await qr_image(links[channel], kind)


class _Channels:
    """What ``campaign_links`` reads: the running app's channels."""

    def __init__(self, channels: Sequence[Any]) -> None:
        self.channels = list(channels)


# --- stats ---------------------------------------------------------------------------------------------
async def campaign_funnel(session: AsyncSession, campaign: str | None = None, *,
                          per_channel: bool = False) -> list[FunnelRow]:
    """Scans -> follows -> claims -> redemptions per campaign, or per campaign and channel
    (``engagebot campaign stats`` and the API); NotFound for a campaign that does not exist."""
    if campaign is not None and await get_campaign(session, campaign) is None:
        raise NotFound(N_("no campaign {slug!r}"), slug=campaign)
    return await (funnel_by_channel if per_channel else funnel_stats)(session, campaign)
