"""Group commit for claims made outside a message (admin API, bulk grants, the bench).

On SQLite every write transaction is serialized and each commit is a sync to disk, so one
transaction per claim caps claims per second at the disk's commit rate. A :class:`ClaimBatcher`
gathers the claims that arrive while a transaction is running and makes them all in the next one,
with a handful of statements per promotion whatever the number of claims (the bulk path):

1. the promotions' rows are read first (``FOR UPDATE`` on PostgreSQL: claimers of the same
   promotion in other transactions or processes queue behind the batch, so what it reads next is
   current); on SQLite the batch holds the process's write gate from the start;
2. ONE query reads the existing claims of all the batch's followers (an IN list);
3. who gets a new code, who gets their live code again, who is refused is decided in Python with
   the rules of :func:`~bot.offers.claims.claim` (same order, same :class:`ClaimOutcome`s), in
   first-come order; the same follower twice in a batch gets the code of their first request;
4. ONE conditional ``UPDATE promotion SET claimed = claimed + k WHERE claimed + k <= quota`` takes
   the k codes at once; when fewer than k are left it takes exactly what is left (the first in line
   get them, the rest are sold out), so the database still keeps the quota;
5. codes are generated in Python (pool codes: the k first free rows of the pool), and ALL the
   claims are inserted with ONE executemany (pool rows then assigned with one executemany);
6. ONE commit, then every waiter gets their answer (durable before the answer).

The unique constraints are still there: if the bulk insert hits one (a generated code that
already exists, or a claim made meanwhile by another process on SQLite), the batch is rolled back
and redone through the one-by-one path: each request with :func:`claim` (its SAVEPOINT retries),
still in one transaction and one commit. ``claim()`` itself is unchanged, for handlers that claim
inside a message's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.logs import REQUEST_ID
from bot.metrics import CLAIMS, counter
from bot.storage.dialect import affected_rows, skip_locked
from bot.storage.driver_sql import insert_rows
from bot.storage.engine import sqlite_gate

from .claims import CODE_ATTEMPTS, ClaimOutcome, ClaimResult, check_eligibility, claim, code_valid_until, is_live
from .codes import generate_code
from .models import Claim, PoolCode, Promotion

QUOTA_ATTEMPTS = 8
# Core-level statements on the tables (no ORM objects on the claim path).
_claim = cast(Table, Claim.__table__)
_promotion = cast(Table, Promotion.__table__)
_pool = cast(Table, PoolCode.__table__)
_ASSIGN_POOL = (update(_pool).where(_pool.c.id == bindparam("_pool_id"), _pool.c.claim_id.is_(None))
                .values(claim_id=bindparam("_claim_id")))


def _options(*, now: datetime | None = None, locale: str | None = None, via: str = "api",
             campaign_id: int | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`claim` (a wrong one fails at the caller, not in the batch)."""
    return dict(now=now, locale=locale, via=via, campaign_id=campaign_id)


@dataclass(slots=True)
class _Request:
    promotion: Promotion
    follower: Any
    options: dict[str, Any]
    future: asyncio.Future[ClaimResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class _PoolConflict(Exception):
    """A pool row picked by the bulk path was assigned by someone else meanwhile."""


@dataclass(slots=True)
class _New:
    """A claim the batch will insert (attributes as :func:`is_live` reads them)."""

    promotion: Promotion
    values: dict[str, Any]
    claim: Claim | None = None

    @property
    def seq(self) -> int:
        return self.values["seq"]

    @property
    def valid_until(self) -> datetime | None:
        return self.values["valid_until"]

    @property
    def redeemed_at(self) -> None:
        return None


class ClaimBatcher:
    """``await batcher.claim(promotion, follower)`` from many tasks; one transaction per batch.

    ``bulk=False`` makes every claim of a batch with :func:`claim` (one-by-one, still one commit).
    ``batches`` counts the batches committed through the bulk path, ``fallbacks`` those redone
    one-by-one after a unique constraint stopped the bulk insert.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, max_batch: int = 256,
                 bulk: bool = True) -> None:
        self.sessions = sessions
        self.max_batch = max_batch
        bind = sessions.kw.get("bind")
        self.engine: AsyncEngine | None = bind if bulk and isinstance(bind, AsyncEngine) else None
        self._queue: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        self.fallbacks = 0

    async def claim(self, promotion: Promotion, follower: Any, **options: Any) -> ClaimResult:
        request = _Request(promotion, follower, _options(**options))
        self._queue.append(request)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="claim-batcher")
        return await request.future

    async def _drain(self) -> None:
        REQUEST_ID.set(None)  # started by some request, it serves them all: its lines are no one request's
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
            try:
                results = await self._run(batch)
            except Exception:
                # Something unexpected failed the shared transaction: retry each alone, so one
                # bad request cannot fail the others.
                for request in batch:
                    try:
                        result = (await self._run([request]))[0]
                    except Exception as exc:
                        if not request.future.done():
                            request.future.set_exception(exc)
                    else:
                        if not request.future.done():
                            request.future.set_result(result)
                continue
            for request, result in zip(batch, results):
                if not request.future.done():
                    request.future.set_result(result)

    async def _run(self, batch: list[_Request]) -> list[ClaimResult]:
        if self.engine is None:
            return await self._run_each(batch)
        try:
            results = await self._run_bulk(self.engine, batch)
        except (IntegrityError, _PoolConflict):
            # Rolled back (and the write gate given back): sort it out one by one, where a code
            # collision is drawn again and a claim made meanwhile is found and answered with.
            self.fallbacks += 1
            return await self._run_each(batch)
        self.batches += 1
        for result in results:  # the path through _run_each counts in claim()
            counter(CLAIMS, result.outcome).inc()
        return results

    async def _run_each(self, batch: list[_Request]) -> list[ClaimResult]:
        async with self.sessions() as session:
            results = [await claim(session, r.promotion, r.follower, **r.options) for r in batch]
            await session.commit()
        return results

    # The bulk path ---------------------------------------------------------------------------

    async def _run_bulk(self, engine: AsyncEngine, batch: list[_Request]) -> list[ClaimResult]:
        now = utcnow()
        groups: dict[int, list[int]] = defaultdict(list)  # promotion id -> positions, first come first
        for position, request in enumerate(batch):
            groups[request.promotion.id].append(position)
        results: list[ClaimResult | None] = [None] * len(batch)
        gate = sqlite_gate(engine)
        # Connection first, then the gate: whoever holds the gate already has its connection, so
        # nobody waits for the pool while holding the gate (no deadlock). The sessions of this
        # process (claim() in a message) share the gate, so nobody writes between our reads and
        # our writes; on PostgreSQL the FOR UPDATE below does that across processes.
        async with engine.connect() as conn, gate.lock if gate is not None else contextlib.nullcontext():
            async with conn.begin():
                counters = {row.id: row for row in await conn.execute(
                    select(_promotion.c.id, _promotion.c.claimed, _promotion.c.quota)
                    .where(_promotion.c.id.in_(sorted(groups))).order_by(_promotion.c.id).with_for_update())}
                for promotion_id in sorted(groups):
                    positions = groups[promotion_id]
                    answers = await _claim_group(conn, [batch[p] for p in positions], counters.get(promotion_id), now)
                    for position, answer in zip(positions, answers):
                        results[position] = answer
        return results  # type: ignore[return-value]  # every position was filled above


async def _claim_group(conn: AsyncConnection, requests: list[_Request], counter: Any,
                       now: datetime) -> list[ClaimResult]:
    """Claims of one promotion, in the order they came; nothing committed here."""
    promotion = requests[0].promotion
    rows = await conn.execute(
        select(_claim).where(_claim.c.promotion_id == promotion.id,
                             _claim.c.follower_id.in_(sorted({r.follower.id for r in requests})))
        .order_by(_claim.c.follower_id, _claim.c.seq))
    existing: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        existing[row.follower_id].append(row)

    _answers, new = _decide(requests, existing, budget=None, now=now)
    granted = await _take_quota(conn, promotion.id, len(new), counter) if new else 0
    pool_rows: list[Any] = []
    if granted and promotion.code_strategy == "pool":
        query = (select(_pool.c.id, _pool.c.code)
                 .where(_pool.c.promotion_id == promotion.id, _pool.c.claim_id.is_(None))
                 .order_by(_pool.c.id).limit(granted))
        query = skip_locked(conn, query)  # concurrent batches take different codes
        pool_rows = list(await conn.execute(query))
        if len(pool_rows) < granted:  # the pool ran dry first: give back what cannot be handed out
            await conn.execute(update(_promotion).where(_promotion.c.id == promotion.id)
                               .values(claimed=_promotion.c.claimed - (granted - len(pool_rows))))
            granted = len(pool_rows)
    # Again with the codes actually taken: the first ``granted`` newcomers in line get one, the
    # others are sold out (and a later request of theirs in this batch too, as with claim()).
    answers, new = _decide(requests, existing, budget=granted, now=now)
    if len(new) != granted:
        raise RuntimeError(f"bulk claim of {promotion.slug!r}: {len(new)} claims for {granted} codes taken")
    if not new:
        return _resolve(answers)

    if promotion.code_strategy == "pool":
        for item, pool_row in zip(new, pool_rows):
            item.values["code"] = pool_row.code
    elif promotion.code_strategy != "shared":
        drawn: set[str] = set()
        for item in new:
            for _attempt in range(CODE_ATTEMPTS):
                code = generate_code(promotion.code_length, promotion.code_prefix)
                if code not in drawn:
                    break
            drawn.add(code)  # still a duplicate after all attempts: the unique key stops the batch
            item.values["code"] = code
    claims = [item.values for item in new]
    ids = await conn.run_sync(lambda sync: insert_rows(sync, _claim, claims, returning_ids=True))
    for item, claim_id in zip(new, ids):
        item.claim = Claim(id=claim_id, **item.values)
    if pool_rows:
        await conn.execute(_ASSIGN_POOL, [{"_pool_id": row.id, "_claim_id": claim_id}
                                          for row, claim_id in zip(pool_rows, ids)])
        assigned = (await conn.execute(select(func.count()).select_from(_pool).where(
            _pool.c.claim_id.in_(ids)))).scalar_one()
        if assigned != len(ids):
            raise _PoolConflict()
    return _resolve(answers)


async def _take_quota(conn: AsyncConnection, promotion_id: int, wanted: int, counter: Any) -> int:
    """Take up to ``wanted`` codes of the quota with one conditional UPDATE; return how many were taken.

    ``counter`` is the promotion's (claimed, quota) read at the start of the transaction; should
    the UPDATE still find fewer left (another process took some meanwhile), the count is read
    again and exactly what is left is taken. The condition is in the UPDATE, so the database keeps
    the quota whatever was read.
    """
    if counter is None:  # the promotion is gone
        return 0
    remaining = None if counter.quota is None else max(counter.quota - counter.claimed, 0)
    for _attempt in range(QUOTA_ATTEMPTS):
        k = wanted if remaining is None else min(wanted, remaining)
        if k <= 0:
            return 0
        taken = await conn.execute(
            update(_promotion).where(_promotion.c.id == promotion_id,
                                     or_(_promotion.c.quota.is_(None), _promotion.c.claimed + k <= _promotion.c.quota))
            .values(claimed=_promotion.c.claimed + k))
        if affected_rows(taken) == 1:
            return k
        counter = (await conn.execute(select(_promotion.c.claimed, _promotion.c.quota)
                                      .where(_promotion.c.id == promotion_id))).first()
        if counter is None:
            return 0
        remaining = None if counter.quota is None else max(counter.quota - counter.claimed, 0)
    raise RuntimeError(f"the quota of promotion {promotion_id} kept changing under the batch")


def _decide(requests: list[_Request], existing: dict[int, list[Any]], *, budget: int | None,
            now: datetime) -> tuple[list[ClaimResult | _New | tuple[Promotion, Any]], list[_New]]:
    """What :func:`claim` would answer to each request, made one after the other.

    ``budget`` is how many new codes there are (None: as many as asked for). An answer is a
    ClaimResult, a ``_New`` (claimed: inserted later) or ``(promotion, claim)`` for a live code
    already held (an existing row, or a ``_New`` of an earlier request of the same follower).
    """
    held = {follower_id: list(rows) for follower_id, rows in existing.items()}
    answers: list[ClaimResult | _New | tuple[Promotion, Any]] = []
    new: list[_New] = []
    for request in requests:
        promotion, follower, options = request.promotion, request.follower, request.options
        at = options["now"] or now
        claims = held.setdefault(follower.id, [])
        live = [c for c in claims if is_live(c, at)]
        if live:
            answers.append((promotion, live[-1]))
            continue
        refusal = check_eligibility(promotion, follower, now=at, locale=options["locale"])
        if refusal is not None:
            answers.append(ClaimResult(refusal, promotion))
            continue
        if len(claims) >= promotion.per_follower_limit:
            answers.append(ClaimResult(ClaimOutcome.LIMIT_REACHED, promotion))
            continue
        if budget is not None and len(new) >= budget:
            answers.append(ClaimResult(ClaimOutcome.SOLD_OUT, promotion))
            continue
        item = _New(promotion, dict(
            promotion_id=promotion.id, follower_id=follower.id, seq=(claims[-1].seq if claims else 0) + 1,
            code=None, claimed_at=at, valid_until=code_valid_until(promotion, at), redeemed_at=None,
            redeemed_by=None, via=options["via"], campaign_id=options["campaign_id"]))
        claims.append(item)
        new.append(item)
        answers.append(item)
    return answers, new


def _resolve(answers: list[ClaimResult | _New | tuple[Promotion, Any]]) -> list[ClaimResult]:
    results: list[ClaimResult] = []
    loaded: dict[int, Claim] = {}
    for answer in answers:
        if isinstance(answer, ClaimResult):
            results.append(answer)
        elif isinstance(answer, _New):
            assert answer.claim is not None
            results.append(ClaimResult(ClaimOutcome.CLAIMED, answer.promotion, answer.claim))
        else:
            promotion, held = answer
            if isinstance(held, _New):
                assert held.claim is not None
                found = held.claim
            else:
                found = loaded.get(held.id) or loaded.setdefault(held.id, Claim(**held._mapping))
            results.append(ClaimResult(ClaimOutcome.ALREADY_CLAIMED, promotion, found))
    return results
