"""Tables of the offers part: promotions, claims, pool codes, campaigns and their touches, referrals.

Counters and limits are enforced by the database (a conditional UPDATE for the quota, unique
constraints for the per-follower limit and the codes), so several processes can hand out codes
at once without handing out one too many.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, BigId

__all__ = ["Campaign", "CampaignTouch", "Claim", "PoolCode", "Promotion", "Referral", "ReferralInvite"]


class Promotion(Base):
    """An offer followers claim codes for; texts are per locale, times are UTC with the operator's zone."""

    __tablename__ = "promotion"
    __table_args__ = (
        CheckConstraint("claimed >= 0", name="claimed_not_negative"),
        CheckConstraint("quota IS NULL OR claimed <= quota", name="claimed_within_quota"),
        CheckConstraint("per_follower_limit >= 1", name="limit_positive"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[dict[str, Any]] = mapped_column(JSON)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    channels: Mapped[list[str]] = mapped_column(JSON)  # empty: every channel
    # Audience
    followers_only: Mapped[bool] = mapped_column(Boolean, default=True)
    followed_since: Mapped[datetime | None]
    audience_tags: Mapped[list[str]] = mapped_column(JSON)  # empty: everyone; else any one of them
    audience_locales: Mapped[list[str]] = mapped_column(JSON)
    # When
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    timezone: Mapped[str] = mapped_column(String(64))
    # How many
    quota: Mapped[int | None] = mapped_column(Integer)
    per_follower_limit: Mapped[int] = mapped_column(Integer, default=1)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    # Codes: "unique" (generated), "shared" (one for all), "pool" (imported)
    code_strategy: Mapped[str] = mapped_column(String(8))
    code_length: Mapped[int] = mapped_column(Integer, default=8)
    code_prefix: Mapped[str] = mapped_column(String(16), default="")
    shared_code: Mapped[str | None] = mapped_column(String(64))
    valid_days: Mapped[int | None] = mapped_column(Integer)
    valid_until: Mapped[datetime | None]
    # How followers ask for it
    keywords: Mapped[dict[str, Any]] = mapped_column(JSON)  # locale -> [words]
    menu_key: Mapped[str | None] = mapped_column(String(64))
    # What it is worth, for display: a decimal as text (exact on SQLite too), ISO currency, kind
    value_amount: Mapped[str | None] = mapped_column(String(24))
    value_currency: Mapped[str | None] = mapped_column(String(3))
    value_kind: Mapped[str | None] = mapped_column(String(16))  # "discount" | "price"
    friends_needed: Mapped[int | None] = mapped_column(Integer)  # set: a family & friends offer
    poster: Mapped[str | None] = mapped_column(String(1024))  # an image URL or an absolute file path
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Bumped by every ORM update (migration 0015): the admin API's ETag. ``claimed`` moves by plain UPDATEs
    # (bot/offers/claims.py), which leave it alone: claims do not make an operator's edit stale.
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class Claim(Base):
    """One code handed to one follower; ``seq`` counts the follower's claims of the promotion from 1.

    ``code`` is NULL for a shared-code promotion (the code is the promotion's, shown to everyone).
    """

    __tablename__ = "claim"
    __table_args__ = (
        UniqueConstraint("promotion_id", "code"),
        UniqueConstraint("promotion_id", "follower_id", "seq"),
        Index("ix_claim_code", "code"),
        Index("ix_claim_follower", "follower_id", "promotion_id"),
        Index("ix_claim_campaign", "campaign_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotion.id", ondelete="CASCADE"))
    follower_id: Mapped[int] = mapped_column(ForeignKey("follower.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    code: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    redeemed_at: Mapped[datetime | None]
    redeemed_by: Mapped[str | None] = mapped_column(String(128))
    via: Mapped[str] = mapped_column(String(16))  # keyword, button, campaign, referral, api
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id", ondelete="SET NULL"))


class PoolCode(Base):
    """A code imported from the operator's CSV; ``claim_id`` is set once, when it is handed out."""

    __tablename__ = "pool_code"
    __table_args__ = (
        UniqueConstraint("promotion_id", "code"),
        Index("ix_pool_code_free", "promotion_id", "claim_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotion.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claim.id", ondelete="SET NULL"))


class Campaign(Base):
    """An offline-to-online source (a poster, a product pack, a KOL) with its own QR scene."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    scene: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(128))
    promotion_id: Mapped[int | None] = mapped_column(ForeignKey("promotion.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CampaignTouch(Base):
    """Every scan or follow through a campaign (first touch alone is on the follower row)."""

    __tablename__ = "campaign_touch"
    __table_args__ = (Index("ix_campaign_touch_campaign", "campaign_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    follower_id: Mapped[int] = mapped_column(ForeignKey("follower.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "scan" | "follow"
    at: Mapped[datetime]
    new_follower: Mapped[bool] = mapped_column(Boolean)


class ReferralInvite(Base):
    """A follower's personal invite: ``code`` is random (unguessable), the scene is ``ref-<code>``."""

    __tablename__ = "referral_invite"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("follower.id", ondelete="CASCADE"), unique=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime]


class Referral(Base):
    """A friend who followed through an invite and counts for it; unique friend: one inviter, once."""

    __tablename__ = "referral"
    __table_args__ = (Index("ix_referral_inviter", "inviter_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invite_id: Mapped[int] = mapped_column(ForeignKey("referral_invite.id", ondelete="CASCADE"))
    inviter_id: Mapped[int] = mapped_column(ForeignKey("follower.id", ondelete="CASCADE"))
    friend_id: Mapped[int] = mapped_column(ForeignKey("follower.id", ondelete="CASCADE"), unique=True)
    at: Mapped[datetime]
