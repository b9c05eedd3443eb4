"""The rate limiter and the retry policy on their own: exact times and counts, no wall clock.

The limiter takes a clock: :class:`SteppedClock` moves only when the limiter waits on it, so every turn
and every wait is an exact number (intervals are powers of two: no rounding). The outbox tests check the
same numbers through real sends.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable

import pytest

from bot.delivery.ratelimit import RateLimiter
from bot.delivery.retry import MAX_ATTEMPTS, RetryPolicy
from bot.errors import NotSent, QuotaExceeded

START = 1000.0


class SteppedClock:
    """Time moves only when waited on; each wait is recorded and takes no real time."""

    def __init__(self) -> None:
        self.now = START
        self.waits: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class SharedTurns:
    """Stands for the account's pace held in the database (``SharedPace``), as on PostgreSQL."""

    def __init__(self, clock: SteppedClock, active: bool) -> None:
        self.clock = clock
        self.active = active
        self.turns: list[float] = []

    async def wait_turn(self) -> None:
        self.turns.append(self.clock.now - START)


async def turns(limiter: RateLimiter, clock: SteppedClock, chats: Iterable[str], *, step: str = "acquire") -> list[float]:
    """When (seconds from the start) each chat's turn came, one after the other."""
    out = []
    for chat in chats:
        await getattr(limiter, step)(chat)
        out.append(clock.now - START)
    return out


# --- the limiter's pace -------------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["acquire", "depart"])
async def test_sends_take_turns_one_interval_apart_whatever_their_chat(step: str) -> None:
    clock = SteppedClock()
    limiter = RateLimiter(per_second=4, clock=clock)  # 0.25 s apart
    assert await turns(limiter, clock, "abac", step=step) == [0, 0.25, 0.5, 0.75]
    assert clock.waits == [0.25] * 3


@pytest.mark.parametrize("step", ["acquire", "depart"])
async def test_one_chat_waits_its_own_interval_and_another_chat_does_not(step: str) -> None:
    clock = SteppedClock()
    limiter = RateLimiter(per_chat=2, clock=clock)  # 0.5 s apart per chat, no overall limit
    assert await turns(limiter, clock, "aba", step=step) == [0, 0, 0.5]
    assert await turns(limiter, clock, "b", step=step) == [0.5]  # b's gap passed while a waited


@pytest.mark.parametrize("step", ["acquire", "depart"])
async def test_the_longer_of_the_chats_and_the_overall_interval_holds(step: str) -> None:
    clock = SteppedClock()
    limiter = RateLimiter(per_second=4, per_chat=2, clock=clock)
    assert await turns(limiter, clock, "aab", step=step) == [0, 0.5, 0.75]


async def test_without_rates_nothing_waits() -> None:
    clock = SteppedClock()
    limiter = RateLimiter(clock=clock)
    assert await turns(limiter, clock, "aab") == [0, 0, 0]
    assert await turns(limiter, clock, "aab", step="depart") == [0, 0, 0]
    assert clock.waits == []


async def test_a_departure_counts_from_the_previous_real_one_not_from_the_turn() -> None:
    """Two sends whose turns came together (their bookkeeping took time) still leave one interval apart."""
    clock = SteppedClock()
    limiter = RateLimiter(per_second=4, clock=clock)
    await limiter.acquire("a")
    clock.now += 1  # the first send's bookkeeping took a second: its turn's interval is long past
    await limiter.acquire("b")
    await limiter.depart("a")
    await limiter.depart("b")
    assert clock.now - START == 1.25


async def test_with_a_shared_pace_the_databases_turn_spaces_departures_and_not_the_local_interval_too() -> None:
    clock = SteppedClock()
    shared = SharedTurns(clock, active=True)
    limiter = RateLimiter(per_second=4, shared=shared, clock=clock)  # type: ignore[arg-type]
    assert await turns(limiter, clock, "abc", step="depart") == [0, 0, 0]
    assert shared.turns == [0, 0, 0]  # one turn across instances per departure, taken right before it

    clock = SteppedClock()
    idle = SharedTurns(clock, active=False)  # SQLite: nothing shared, the local interval spaces them
    limiter = RateLimiter(per_second=4, shared=idle, clock=clock)  # type: ignore[arg-type]
    assert await turns(limiter, clock, "abc", step="depart") == [0, 0.25, 0.5]
    assert idle.turns == [0, 0.25, 0.5]


# --- pauses the platform asks for -----------------------------------------------------------------------


async def test_a_pause_stops_everyone_or_one_chat_and_a_shorter_one_never_shortens_it() -> None:
    clock = SteppedClock()
    limiter = RateLimiter(clock=clock)
    limiter.pause(3)
    limiter.pause(1)
    limiter.pause(5, chat="a")
    limiter.pause(2, chat="a")
    assert (limiter.paused_for(), limiter.paused_for("a"), limiter.paused_for("b")) == (3, 5, 3)
    clock.now += 4
    assert (limiter.paused_for(), limiter.paused_for("a"), limiter.paused_for("b")) == (0, 1, 0)
    clock.now += 2
    assert (limiter.paused_for(), limiter.paused_for("a"), limiter.paused_for("b")) == (0, 0, 0)


async def test_a_chats_pause_holds_that_chat_only_at_its_turn_and_at_its_departure() -> None:
    clock = SteppedClock()
    limiter = RateLimiter(clock=clock)  # no rates: only the pause makes anyone wait
    limiter.pause(2, chat="a")
    assert await turns(limiter, clock, "b") == [0]
    assert await turns(limiter, clock, "b", step="depart") == [0]
    assert await turns(limiter, clock, "a") == [2]

    limiter.pause(1.5, chat="a")  # asked again after its turn came: the departure waits it out
    assert await turns(limiter, clock, "b", step="depart") == [2]
    assert await turns(limiter, clock, "a", step="depart") == [3.5]


async def test_a_pause_of_everyone_holds_every_chats_turn_and_departure() -> None:
    clock = SteppedClock()
    limiter = RateLimiter(per_second=4, clock=clock)
    limiter.pause(2)
    assert await turns(limiter, clock, "a") == [2]
    limiter.pause(1)
    assert await turns(limiter, clock, "b", step="depart") == [3]


async def test_pauses_that_are_over_are_forgotten_and_the_others_kept() -> None:
    clock = SteppedClock()
    limiter = RateLimiter(clock=clock)
    limiter.pause(100, chat="long")
    for n in range(10_000):
        limiter.pause(1, chat=f"c{n}")
    clock.now += 2
    limiter.pause(1, chat="new")
    assert limiter._chat_paused.keys() == {"long", "new"}
    assert limiter.paused_for("long") == 98


@pytest.mark.parametrize("step", ["acquire", "depart"])
async def test_chats_whose_gap_has_passed_are_forgotten_and_the_others_kept(step: str) -> None:
    clock = SteppedClock()
    limiter = RateLimiter(per_chat=2, clock=clock)  # 0.5 s per chat
    await turns(limiter, clock, [f"c{n}" for n in range(10_000)], step=step)
    clock.now += 0.75
    await turns(limiter, clock, ["recent"], step=step)  # the 10 001st chat: the others' gaps are over
    assert (limiter._chat_next if step == "acquire" else limiter._chat_departed).keys() == {"recent"}
    # the chat just served is still within its gap: kept, so its next send still waits for it
    assert await turns(limiter, clock, ["recent"], step=step) == [1.25]


# --- the retry policy ------------------------------------------------------------------------------------


def test_the_backoff_doubles_with_each_claim_up_to_its_longest() -> None:
    policy = RetryPolicy()
    assert [policy.backoff(n) for n in (0, 1, 4, 8, 9, 20)] == [1, 2, 16, 256, 300, 300]
    assert RetryPolicy(longest_backoff=10).backoff(4) == 10


def test_a_row_is_given_up_at_its_last_claim_not_before() -> None:
    policy = RetryPolicy()
    assert [policy.gives_up(n) for n in (1, MAX_ATTEMPTS - 1, MAX_ATTEMPTS, MAX_ATTEMPTS + 1)] == [
        False, False, True, True]
    assert RetryPolicy(max_attempts=2).gives_up(2) and not RetryPolicy(max_attempts=3).gives_up(2)


@pytest.mark.parametrize(("retry_after", "postponed"), [(None, False), (0.5, True), (120, True), (120.5, False)])
def test_a_mass_send_is_postponed_only_for_a_known_short_enough_wait(retry_after: float | None,
                                                                    postponed: bool) -> None:
    assert RetryPolicy().postpones_mass_send(QuotaExceeded("later", retry_after=retry_after)) is postponed


def test_a_send_that_surely_did_not_go_is_repeated_after_each_quick_pause_then_recorded() -> None:
    policy, tries = RetryPolicy(), Counter[str]()
    assert [policy.wait_in_place(NotSent("down", retry_after=30), tries) for _ in range(3)] == [0.5, 1.0, None]
    assert tries == {"quick": 2}
    policy, tries = RetryPolicy(quick_pauses=(2.0,)), Counter[str]()
    assert [policy.wait_in_place(NotSent("down"), tries) for _ in range(2)] == [2.0, None]


def test_a_chats_own_retry_after_is_waited_out_in_place_a_few_times_if_short_enough() -> None:
    policy, tries = RetryPolicy(), Counter[str]()
    chat_429 = QuotaExceeded("429", retry_after=60, chat_only=True)
    assert [policy.wait_in_place(chat_429, tries) for _ in range(4)] == [60, 60, 60, None]
    assert tries == {"chat": 3}
    tries = Counter[str]()
    assert policy.wait_in_place(QuotaExceeded("429", retry_after=60.5, chat_only=True), tries) is None
    assert policy.wait_in_place(QuotaExceeded("429", chat_only=True), tries) is None  # no time given
    assert policy.wait_in_place(QuotaExceeded("quota", retry_after=1), tries) is None  # the account's: rescheduled
    assert policy.wait_in_place(RuntimeError("bug"), tries) is None
    assert tries == {}
    tries = Counter[str]()
    assert [RetryPolicy(waits_in_place=1).wait_in_place(chat_429, tries) for _ in range(2)] == [60, None]
