"""Redeeming a code at the till: once, with a conditional update, and a clear reason when not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.i18n import operator_time
from bot.storage.dialect import affected_rows

from .codes import normalize_code
from .models import Claim, Promotion


class RedeemOutcome(StrEnum):
    REDEEMED = "redeemed"
    ALREADY_REDEEMED = "already_redeemed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"
    AMBIGUOUS = "ambiguous"  # the same code in several promotions: name the promotion
    SHARED = "shared"  # a shared code is the same for everyone: not redeemed one by one


@dataclass(frozen=True, slots=True)
class RedeemResult:
    outcome: RedeemOutcome
    code: str
    promotion: str | None = None
    redeemed_at: datetime | None = None
    redeemed_by: str | None = None
    valid_until: datetime | None = None

    def describe(self, tz: str = "UTC") -> str:
        """One line for the operator (CLI and admin API), times in ``tz`` (ENGAGEBOT_TIMEZONE)."""
        where = f" ({self.promotion})" if self.promotion else ""
        match self.outcome:
            case RedeemOutcome.REDEEMED:
                return f"code {self.code}{where} redeemed"
            case RedeemOutcome.ALREADY_REDEEMED:
                return (f"code {self.code}{where} was already redeemed at {operator_time(self.redeemed_at, tz)}"
                        + (f" by {self.redeemed_by}" if self.redeemed_by else ""))
            case RedeemOutcome.EXPIRED:
                return f"code {self.code}{where} expired at {operator_time(self.valid_until, tz)}"
            case RedeemOutcome.AMBIGUOUS:
                return f"code {self.code} exists in several promotions; name one"
            case RedeemOutcome.SHARED:
                return f"code {self.code}{where} is a shared code: it is not redeemed one by one"
            case _:
                return f"code {self.code} is unknown"


async def redeem(session: AsyncSession, code: str, *, by: str | None = None, promotion: str | None = None,
                 now: datetime | None = None) -> RedeemResult:
    """Mark the claim holding ``code`` redeemed, exactly once; the caller commits."""
    now = now or utcnow()
    code = normalize_code(code)
    candidates = {code, code.upper()}
    query = (select(Claim.id, Promotion.slug).join(Promotion, Promotion.id == Claim.promotion_id)
             .where(Claim.code.in_(candidates)))
    if promotion is not None:
        query = query.where(Promotion.slug == promotion)
    rows = (await session.execute(query)).all()
    if not rows:
        shared = select(Promotion.slug).where(Promotion.shared_code.in_(candidates))
        if promotion is not None:
            shared = shared.where(Promotion.slug == promotion)
        slug = (await session.execute(shared.limit(1))).scalar_one_or_none()
        return RedeemResult(RedeemOutcome.SHARED if slug else RedeemOutcome.UNKNOWN, code, slug)
    if len(rows) > 1:
        return RedeemResult(RedeemOutcome.AMBIGUOUS, code)
    claim_id, slug = rows[0]
    claims = cast(Table, Claim.__table__)
    done = await session.execute(
        update(claims)
        .where(claims.c.id == claim_id, claims.c.redeemed_at.is_(None),
               or_(claims.c.valid_until.is_(None), claims.c.valid_until >= now))
        .values(redeemed_at=now, redeemed_by=(by or None) and by[:128]))
    row = (await session.execute(select(Claim.code, Claim.redeemed_at, Claim.redeemed_by, Claim.valid_until)
                                 .where(Claim.id == claim_id))).one()
    if affected_rows(done) == 1:
        return RedeemResult(RedeemOutcome.REDEEMED, row.code, slug, now, by, row.valid_until)
    if row.redeemed_at is not None:
        return RedeemResult(RedeemOutcome.ALREADY_REDEEMED, row.code, slug, row.redeemed_at,
                            row.redeemed_by, row.valid_until)
    return RedeemResult(RedeemOutcome.EXPIRED, row.code, slug, valid_until=row.valid_until)
