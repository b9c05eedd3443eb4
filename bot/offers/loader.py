"""Write a checked promotions file: replace promotions and campaigns of the same slug, keep claims."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.errors import RulesFileError

from .models import Campaign, Claim, PoolCode, Promotion
from .spec import ParsedPromoFile, PromotionSpec

# Inserting pool codes in batches keeps statements under the drivers' parameter limits.
POOL_BATCH = 1000


@dataclass(frozen=True, slots=True)
class LoadSummary:
    promotions_added: int
    promotions_replaced: int
    campaigns_added: int
    campaigns_replaced: int
    pool_codes_added: int


def _promotion_values(spec: PromotionSpec) -> dict[str, object]:
    audience = spec.audience
    validity = spec.validity
    value = spec.value
    return dict(
        title=dict(spec.title), description=dict(spec.description), terms=dict(spec.terms),
        channels=list(spec.channels), followers_only=audience.followers_only,
        followed_since=spec.to_utc(audience.followed_since), audience_tags=list(audience.tags),
        audience_locales=list(audience.locales), starts_at=spec.starts_at_utc, ends_at=spec.ends_at_utc,
        timezone=spec.timezone, quota=spec.quota, per_follower_limit=spec.per_follower_limit,
        code_strategy=spec.code.strategy, code_length=spec.code.length, code_prefix=spec.code.prefix,
        shared_code=spec.code.value, valid_days=validity.days if validity else None,
        valid_until=spec.to_utc(validity.until, end_of_day=True) if validity and validity.until else None,
        keywords={loc: list(words) for loc, words in spec.keywords.items()}, menu_key=spec.menu_key,
        value_amount=str(value.amount) if value else None, value_currency=value.currency if value else None,
        value_kind=value.kind if value else None, friends_needed=spec.friends_needed,
        poster=spec.poster,
    )


async def load_promo_file(session: AsyncSession, parsed: ParsedPromoFile) -> LoadSummary:
    """Upsert every promotion and campaign of the file by slug; the caller commits (all or nothing).

    A replaced promotion keeps its id, its claims and its claimed counter; its unassigned pool
    codes are replaced by the file's (codes already handed out stay with their claims).
    """
    now = utcnow()
    existing = {p.slug: p for p in (await session.execute(
        select(Promotion).where(Promotion.slug.in_([s.slug for s in parsed.promotions])))).scalars()}
    added = replaced = pool_added = 0
    by_slug: dict[str, Promotion] = {}
    for spec in parsed.promotions:
        values = _promotion_values(spec)
        promo = existing.get(spec.slug)
        if promo is None:
            promo = Promotion(slug=spec.slug, claimed=0, created_at=now, updated_at=now, **values)
            session.add(promo)
            added += 1
        else:
            if spec.quota is not None and promo.claimed > spec.quota:
                raise RulesFileError(
                    f"promotion {spec.slug!r} field quota: {promo.claimed} codes are already claimed, "
                    f"more than the new quota {spec.quota}")
            for key, val in values.items():
                setattr(promo, key, val)
            promo.updated_at = now
            replaced += 1
        by_slug[spec.slug] = promo
    await session.flush()
    for slug, codes in parsed.pools.items():
        pool_added += await _replace_pool(session, by_slug[slug].id, codes)
    c_added, c_replaced = await _load_campaigns(session, parsed, by_slug, now)
    return LoadSummary(added, replaced, c_added, c_replaced, pool_added)


async def _replace_pool(session: AsyncSession, promotion_id: int, codes: list[str]) -> int:
    await session.execute(delete(PoolCode).where(
        PoolCode.promotion_id == promotion_id, PoolCode.claim_id.is_(None), PoolCode.code.not_in(codes)))
    have = set((await session.execute(
        select(PoolCode.code).where(PoolCode.promotion_id == promotion_id))).scalars())
    new = [c for c in codes if c not in have]
    for start in range(0, len(new), POOL_BATCH):
        await session.execute(cast(Table, PoolCode.__table__).insert(), [
            {"promotion_id": promotion_id, "code": c, "claim_id": None} for c in new[start:start + POOL_BATCH]])
    return len(new)


async def _load_campaigns(session: AsyncSession, parsed: ParsedPromoFile, by_slug: dict[str, Promotion],
                          now: datetime) -> tuple[int, int]:
    if not parsed.campaigns:
        return 0, 0
    wanted = {c.promotion for c in parsed.campaigns if c.promotion and c.promotion not in by_slug}
    known = {p.slug: p for p in (await session.execute(
        select(Promotion).where(Promotion.slug.in_(wanted)))).scalars()} if wanted else {}
    existing = {c.slug: c for c in (await session.execute(
        select(Campaign).where(Campaign.slug.in_([c.slug for c in parsed.campaigns])))).scalars()}
    added = replaced = 0
    for spec in parsed.campaigns:
        promo = None
        if spec.promotion:
            promo = by_slug.get(spec.promotion) or known.get(spec.promotion)
            if promo is None:
                raise RulesFileError(f"campaign {spec.slug!r} field promotion: no promotion {spec.promotion!r} "
                                     "in this file or the database")
        taken = (await session.execute(select(Campaign.slug).where(
            Campaign.scene == spec.scene, Campaign.slug != spec.slug))).scalar_one_or_none()
        if taken is not None:
            raise RulesFileError(f"campaign {spec.slug!r} field scene: {spec.scene!r} is used by campaign {taken!r}")
        campaign = existing.get(spec.slug)
        if campaign is None:
            session.add(Campaign(slug=spec.slug, scene=spec.scene, source=spec.source,
                                 promotion_id=promo.id if promo else None, created_at=now, updated_at=now))
            added += 1
        else:
            campaign.scene, campaign.source = spec.scene, spec.source
            campaign.promotion_id = promo.id if promo else None
            campaign.updated_at = now
            replaced += 1
        await session.flush()
    return added, replaced


async def list_promotions(session: AsyncSession) -> list[Promotion]:
    return list((await session.execute(select(Promotion).order_by(Promotion.slug))).scalars())


async def get_promotion(session: AsyncSession, slug: str) -> Promotion | None:
    return (await session.execute(select(Promotion).where(Promotion.slug == slug))).scalar_one_or_none()


async def pool_free_count(session: AsyncSession, promotion_id: int) -> int:
    return (await session.execute(select(func.count()).select_from(PoolCode).where(
        PoolCode.promotion_id == promotion_id, PoolCode.claim_id.is_(None)))).scalar_one()


async def redeemed_count(session: AsyncSession, promotion_id: int) -> int:
    """How many of the promotion's claims were redeemed."""
    return (await session.execute(select(func.count()).select_from(Claim).where(
        Claim.promotion_id == promotion_id, Claim.redeemed_at.is_not(None)))).scalar_one()
