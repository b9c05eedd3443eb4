"""Claiming a promotion's code: atomic in the database, idempotent for the follower.

The quota is a conditional ``UPDATE ... SET claimed = claimed + 1 WHERE claimed < quota``; the
per-follower limit is the unique (promotion, follower, seq) key; codes are unique per promotion
(a generated code that collides is retried inside a SAVEPOINT); a pool code is taken with a
conditional update of an unassigned row. Nothing here commits: inside a message the dispatcher
commits with the reply, elsewhere the caller does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.metrics import CLAIMS, counter
from bot.storage.dialect import affected_rows, skip_locked

from .codes import generate_code
from .models import Claim, PoolCode, Promotion

CODE_ATTEMPTS = 8
# Core-level statements on the tables (no ORM objects on the claim path).
_claim = cast(Table, Claim.__table__)
_promotion = cast(Table, Promotion.__table__)
_pool = cast(Table, PoolCode.__table__)


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # a new code
    ALREADY_CLAIMED = "already_claimed"  # the follower's live code, again
    SOLD_OUT = "sold_out"
    NOT_STARTED = "not_started"
    ENDED = "ended"
    LIMIT_REACHED = "limit_reached"
    NOT_FOLLOWING = "not_following"
    NOT_IN_AUDIENCE = "not_in_audience"
    NOT_ON_CHANNEL = "not_on_channel"


@dataclass(frozen=True, slots=True)
class ClaimResult:
    outcome: ClaimOutcome
    promotion: Promotion
    claim: Claim | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (ClaimOutcome.CLAIMED, ClaimOutcome.ALREADY_CLAIMED)

    @property
    def code(self) -> str | None:
        """The code to show: the claim's own, or the promotion's shared code."""
        if self.claim is None:
            return None
        return self.claim.code or self.promotion.shared_code


class _SeqTaken(Exception):
    """Another claim of this follower took the same sequence number first."""


class _PoolCodeTaken(Exception):
    """The pool row picked was assigned by someone else meanwhile."""


def is_live(claim: Claim, now: datetime) -> bool:
    """True while the code can still be used: not redeemed, not expired."""
    until = claim.valid_until
    return claim.redeemed_at is None and (until is None or until >= now)


def code_valid_until(promotion: Promotion, claimed_at: datetime) -> datetime | None:
    """When a code claimed now stops working: N days (to the end of that day, in the promotion's zone),
    an absolute date, or else the promotion's end."""
    if promotion.valid_days:
        tz = ZoneInfo(promotion.timezone)
        last_day = claimed_at.astimezone(tz).date() + timedelta(days=promotion.valid_days)
        end = datetime.combine(last_day, time(23, 59, 59), tzinfo=tz)
        return end.astimezone(UTC)
    return promotion.valid_until or promotion.ends_at


def check_eligibility(promotion: Promotion, follower: Any, *, now: datetime,
                      locale: str | None = None) -> ClaimOutcome | None:
    """Return why this follower may not claim now (the operator's rules, not races), or None."""
    if promotion.channels and follower.channel not in promotion.channels:
        return ClaimOutcome.NOT_ON_CHANNEL
    starts, ends = promotion.starts_at, promotion.ends_at
    if starts is not None and now < starts:
        return ClaimOutcome.NOT_STARTED
    if ends is not None and now > ends:
        return ClaimOutcome.ENDED
    if promotion.followers_only and not follower.following:
        return ClaimOutcome.NOT_FOLLOWING
    since = promotion.followed_since
    if since is not None and (follower.followed_at is None or follower.followed_at < since):
        return ClaimOutcome.NOT_IN_AUDIENCE
    if promotion.audience_tags and not set(follower.tags or ()) & set(promotion.audience_tags):
        return ClaimOutcome.NOT_IN_AUDIENCE
    if promotion.audience_locales:
        follower_locale = locale or follower.locale
        if follower_locale not in promotion.audience_locales:
            return ClaimOutcome.NOT_IN_AUDIENCE
    return None


@dataclass(frozen=True, slots=True)
class FollowerOffers:
    """What a follower sees in the offers list: what they can claim now, and the codes they hold."""

    claimable: list[Promotion]
    held: list[tuple[Promotion, str]]  # a live code (not used, not expired) of the promotion

    def __bool__(self) -> bool:
        return bool(self.claimable or self.held)


async def offers_for(session: AsyncSession, promotions: Sequence[Promotion], follower: Any, *, now: datetime,
                     locale: str | None = None) -> FollowerOffers:
    """Sort ``promotions`` for this follower: claimable now (started, not ended, in the audience,
    under their limit, codes left), or held (their live code); the rest are left out.

    Two queries whatever the number of promotions: the follower's claims, and which pools have codes left.
    """
    if not promotions:
        return FollowerOffers([], [])
    ids = [p.id for p in promotions]
    claims: dict[int, list[Claim]] = {}
    for c in (await session.execute(select(Claim).where(
            Claim.follower_id == follower.id, Claim.promotion_id.in_(ids)).order_by(Claim.seq))).scalars():
        claims.setdefault(c.promotion_id, []).append(c)
    pools = [p.id for p in promotions if p.code_strategy == "pool"]
    stocked = set((await session.execute(select(_pool.c.promotion_id).where(
        _pool.c.promotion_id.in_(pools), _pool.c.claim_id.is_(None)).distinct())).scalars()) if pools else set()
    claimable: list[Promotion] = []
    held: list[tuple[Promotion, str]] = []
    for promo in promotions:
        mine = claims.get(promo.id, [])
        live = [c for c in mine if is_live(c, now)]
        if live:
            code = live[-1].code or promo.shared_code
            if code:
                held.append((promo, code))
            continue
        sold_out = (promo.quota is not None and promo.claimed >= promo.quota) or (
            promo.code_strategy == "pool" and promo.id not in stocked)
        if (check_eligibility(promo, follower, now=now, locale=locale) is None and not sold_out
                and len(mine) < promo.per_follower_limit):
            claimable.append(promo)
    return FollowerOffers(claimable, held)


async def claims_of(session: AsyncSession, promotion_id: int, follower_id: int) -> list[Claim]:
    return list((await session.execute(
        select(Claim).where(Claim.promotion_id == promotion_id, Claim.follower_id == follower_id)
        .order_by(Claim.seq).execution_options(populate_existing=True))).scalars())


async def claim(
    session: AsyncSession, promotion: Promotion, follower: Any, *, now: datetime | None = None,
    locale: str | None = None, via: str = "api", campaign_id: int | None = None,
) -> ClaimResult:
    """Hand ``follower`` a code of ``promotion``, or say why not; safe under any concurrency.

    A follower who holds a live code (not redeemed, not expired) gets that same code again; a new
    one only once the last is used up, and at most ``per_follower_limit`` in all.
    """
    result = await _answer_claim(session, promotion, follower, now=now or utcnow(), locale=locale, via=via,
                                 campaign_id=campaign_id)
    counter(CLAIMS, result.outcome).inc()  # the answer given; the caller's transaction commits it
    return result


async def _answer_claim(session: AsyncSession, promotion: Promotion, follower: Any, *, now: datetime,
                        locale: str | None, via: str, campaign_id: int | None) -> ClaimResult:
    for _attempt in range(3):
        existing = await claims_of(session, promotion.id, follower.id)
        live = [c for c in existing if is_live(c, now)]
        if live:
            return ClaimResult(ClaimOutcome.ALREADY_CLAIMED, promotion, live[-1])
        refusal = check_eligibility(promotion, follower, now=now, locale=locale)
        if refusal is not None:
            return ClaimResult(refusal, promotion)
        if len(existing) >= promotion.per_follower_limit:
            return ClaimResult(ClaimOutcome.LIMIT_REACHED, promotion)
        if promotion.quota is not None and promotion.claimed >= promotion.quota:
            return ClaimResult(ClaimOutcome.SOLD_OUT, promotion)  # the counter only grows: no write needed
        seq = (existing[-1].seq if existing else 0) + 1
        try:
            return await _take(session, promotion, follower.id, seq, now, via=via, campaign_id=campaign_id)
        except _SeqTaken:
            continue  # the same follower claimed at the same moment: read again, answer with that code
    raise RuntimeError(f"claim of {promotion.slug!r} kept racing with itself")


async def _take(session: AsyncSession, promotion: Promotion, follower_id: int, seq: int, now: datetime, *,
                via: str, campaign_id: int | None) -> ClaimResult:
    # The quota first: it is the first write of the transaction, so on SQLite it takes the write lock
    # before any SAVEPOINT (pysqlite opens transactions lazily; a SAVEPOINT opening one would commit
    # on RELEASE), and on PostgreSQL the promotion's row lock queues claimers until we commit. Either
    # way nobody sees the counter between here and the commit, so undoing it below is invisible.
    taken = await session.execute(
        update(_promotion).where(_promotion.c.id == promotion.id,
                                 or_(_promotion.c.quota.is_(None), _promotion.c.claimed < _promotion.c.quota))
        .values(claimed=_promotion.c.claimed + 1))
    if affected_rows(taken) != 1:
        return ClaimResult(ClaimOutcome.SOLD_OUT, promotion)
    valid_until = code_valid_until(promotion, now)
    try:
        for _attempt in range(CODE_ATTEMPTS):
            pool_row: Any = None
            if promotion.code_strategy == "pool":
                pool_row = await _free_pool_code(session, promotion.id)
                if pool_row is None:
                    await _give_back(session, promotion.id)
                    return ClaimResult(ClaimOutcome.SOLD_OUT, promotion)
                code: str | None = pool_row.code
            elif promotion.code_strategy == "shared":
                code = None
            else:
                code = generate_code(promotion.code_length, promotion.code_prefix)
            values = dict(promotion_id=promotion.id, follower_id=follower_id, seq=seq, code=code, claimed_at=now,
                          valid_until=valid_until, redeemed_at=None, redeemed_by=None, via=via,
                                 campaign_id=campaign_id)
            try:
                async with session.begin_nested():
                    claim_id = (await session.execute(
                        insert(_claim).values(**values).returning(_claim.c.id))).scalar_one()
                    if pool_row is not None:
                        assigned = await session.execute(update(_pool).where(
                            _pool.c.id == pool_row.id, _pool.c.claim_id.is_(None)).values(claim_id=claim_id))
                        if affected_rows(assigned) != 1:
                            raise _PoolCodeTaken()
            except IntegrityError as exc:
                message = str(exc.orig)
                if "seq" in message:
                    raise _SeqTaken() from None
                if "code" in message:
                    continue  # a generated code collided, or a pool code was just taken: draw again
                raise
            except _PoolCodeTaken:
                continue
            return ClaimResult(ClaimOutcome.CLAIMED, promotion, Claim(id=claim_id, **values))
    except _SeqTaken:
        await _give_back(session, promotion.id)
        raise
    raise RuntimeError(f"no free code found for {promotion.slug!r} after {CODE_ATTEMPTS} attempts")


async def _give_back(session: AsyncSession, promotion_id: int) -> None:
    """Undo this transaction's quota increment (no claim was made after all)."""
    await session.execute(update(_promotion).where(_promotion.c.id == promotion_id)
                          .values(claimed=_promotion.c.claimed - 1))


async def _free_pool_code(session: AsyncSession, promotion_id: int) -> Any:
    query = (select(_pool.c.id, _pool.c.code)
             .where(_pool.c.promotion_id == promotion_id, _pool.c.claim_id.is_(None))
             .order_by(_pool.c.id).limit(1))
    query = skip_locked(session, query)  # concurrent claimers take different rows
    return (await session.execute(query)).first()
