"""Campaigns: offline QR codes and KOL links, every touch recorded, a funnel per campaign, QR files."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Follower

from .models import Campaign, CampaignTouch, Claim, Promotion


@dataclass(frozen=True, slots=True)
class FunnelRow:
    slug: str
    source: str
    scene: str
    promotion: str | None
    scans: int  # every scan or follow through the campaign's QR / link
    people: int  # distinct followers among them
    follows: int  # touches that made a new follower
    claims: int  # codes handed out through the campaign
    redemptions: int  # of those codes, used at the till
    channel: str | None = None  # None: every channel together


async def find_campaign(session: AsyncSession, scene: str) -> Campaign | None:
    return (await session.execute(select(Campaign).where(Campaign.scene == scene))).scalar_one_or_none()


async def get_campaign(session: AsyncSession, slug: str) -> Campaign | None:
    return (await session.execute(select(Campaign).where(Campaign.slug == slug))).scalar_one_or_none()


async def record_touch(session: AsyncSession, campaign: Campaign, follower: Any, *, kind: str, new_follower: bool,
                       at: datetime) -> CampaignTouch:
    """Write one touch (committed with the message); the follower's first touch is kept by storage.

    Flushed at once, so the dispatcher sees the handler wrote and commits the message in this transaction.
    """
    touch = CampaignTouch(campaign_id=campaign.id, follower_id=follower.id, kind=kind, at=at,
                          new_follower=new_follower)
    session.add(touch)
    await session.flush()
    return touch


async def funnel_stats(session: AsyncSession, slug: str | None = None) -> list[FunnelRow]:
    """Scans -> follows -> claims -> redemptions per campaign, counted by the database."""
    touches = (select(CampaignTouch.campaign_id.label("cid"),
                      func.count().label("scans"),
                      func.count(func.distinct(CampaignTouch.follower_id)).label("people"),
                      func.count().filter(CampaignTouch.new_follower.is_(True)).label("follows"))
               .group_by(CampaignTouch.campaign_id).subquery())
    claims = (select(Claim.campaign_id.label("cid"),
                     func.count().label("claims"),
                     func.count(Claim.redeemed_at).label("redemptions"))
              .where(Claim.campaign_id.is_not(None)).group_by(Claim.campaign_id).subquery())
    query = (select(Campaign.slug, Campaign.source, Campaign.scene, Promotion.slug.label("promotion"),
                    func.coalesce(touches.c.scans, 0), func.coalesce(touches.c.people, 0),
                    func.coalesce(touches.c.follows, 0), func.coalesce(claims.c.claims, 0),
                    func.coalesce(claims.c.redemptions, 0))
             .outerjoin(touches, touches.c.cid == Campaign.id)
             .outerjoin(claims, claims.c.cid == Campaign.id)
             .outerjoin(Promotion, and_(Promotion.id == Campaign.promotion_id))
             .order_by(Campaign.slug))
    if slug is not None:
        query = query.where(Campaign.slug == slug)
    return [FunnelRow(*row) for row in (await session.execute(query)).all()]


async def funnel_by_channel(session: AsyncSession, slug: str | None = None) -> list[FunnelRow]:
    """The funnel of :func:`funnel_stats` split by the follower's channel: one row per campaign and channel
    with any touch or claim (a campaign with neither has no row here)."""
    touches = (select(CampaignTouch.campaign_id, Follower.channel, func.count(),
                      func.count(func.distinct(CampaignTouch.follower_id)),
                      func.count().filter(CampaignTouch.new_follower.is_(True)))
               .join(Follower, Follower.id == CampaignTouch.follower_id)
               .group_by(CampaignTouch.campaign_id, Follower.channel))
    claims = (select(Claim.campaign_id, Follower.channel, func.count(), func.count(Claim.redeemed_at))
              .join(Follower, Follower.id == Claim.follower_id).where(Claim.campaign_id.is_not(None))
              .group_by(Claim.campaign_id, Follower.channel))
    counts: dict[tuple[int | None, str], list[int]] = {}
    for touched, channel, scans, people, follows in (await session.execute(touches)).all():
        counts.setdefault((touched, channel), [0, 0, 0, 0, 0])[:3] = [scans, people, follows]
    for claimed_through, channel, claimed, redeemed in (await session.execute(claims)).all():
        counts.setdefault((claimed_through, channel), [0, 0, 0, 0, 0])[3:] = [claimed, redeemed]
    query = (select(Campaign.id, Campaign.slug, Campaign.source, Campaign.scene, Promotion.slug)
             .outerjoin(Promotion, Promotion.id == Campaign.promotion_id).order_by(Campaign.slug))
    if slug is not None:
        query = query.where(Campaign.slug == slug)
    rows: list[FunnelRow] = []
    for cid, campaign, source, scene, promotion in (await session.execute(query)).all():
        for (counted, channel), (scans, people, follows, claimed, redeemed) in sorted(
                counts.items(), key=lambda item: item[0][1]):
            if counted == cid:
                rows.append(FunnelRow(campaign, source, scene, promotion, scans, people, follows, claimed, redeemed,
                                      channel))
    return rows


QR_FORMATS = ("png", "svg")


def _draw(url: str, kind: str) -> bytes:
    import segno

    out = io.BytesIO()
    extra = {"xmldecl": True} if kind == "svg" else {}
    segno.make(url, error="m").save(out, kind=kind, scale=8, border=4, **extra)
    return out.getvalue()


async def qr_image(url: str, kind: str) -> bytes:
    """The QR code of ``url`` as PNG or SVG (``kind``), drawn in a worker thread (CPU-bound)."""
    if kind not in QR_FORMATS:
        raise ValueError(f"QR format {kind!r}: one of {QR_FORMATS}")
    return await asyncio.to_thread(_draw, url, kind)


async def write_qr_files(links: dict[str, str], slug: str, out_dir: Path) -> list[Path]:
    """Write ``<slug>-<channel>.png`` and ``.svg`` for each link (``engagebot campaign qr``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for channel, url in sorted(links.items()):
        for kind in QR_FORMATS:
            path = out_dir / f"{slug}-{channel}.{kind}"
            path.write_bytes(await qr_image(url, kind))
            written.append(path)
    return written
