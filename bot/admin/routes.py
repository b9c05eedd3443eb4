"""The admin API's routes (``/admin/api/v1``): each a thin call into the service layer, listed in ROUTES."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.follower import HandoffState
from bot.i18n import Catalogs, default_catalogs
from bot.offers.admin import RedeemBody
from bot.offers.redeem import RedeemOutcome
from bot.offers.spec import PromotionSpec
from bot.rules import PromptRuleSpec

from . import broadcasts as broadcast_service
from . import conversations as conversation_service
from . import followers as follower_service
from . import operators as operator_service
from . import previews, services
from . import stats as stats_service
from .api import Call, Route
from .audit import list_entries
from .followers import FollowerFilter
from .inbox import ConversationSummary, Inbox
from .preview_schemas import PreviewQuery, PreviewView, TryMessage, TryView, preview_view, try_view
from .roles import PERMISSIONS, Permission
from .schemas import (
    ActivityView,
    AuditPage,
    AuditView,
    Body,
    BroadcastPage,
    BroadcastStart,
    BroadcastView,
    CampaignPage,
    CampaignView,
    ConversationPage,
    ConversationView,
    DismissView,
    FollowerPage,
    FollowerView,
    FunnelList,
    FunnelView,
    HandoffView,
    MessagePage,
    MessageView,
    MeView,
    OperatorCreate,
    OperatorPage,
    OperatorUpdate,
    OperatorView,
    PasswordReset,
    PromotionPage,
    PromotionUpdate,
    PromotionView,
    RedeemView,
    ReplyBody,
    ReplyView,
    RulePage,
    RuleUpdate,
    RuleView,
    TagsUpdate,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenView,
)
from .stats import DEFAULT_DAYS, MAX_DAYS

log = logging.getLogger("engagebot.admin.api")
P = Permission


# --- queries -------------------------------------------------------------------------------------------
class PageQuery(Body):
    limit: int = Field(default=50, ge=1, le=200, description="items per page")
    cursor: str | None = Field(default=None, pattern=r"^[0-9]{1,15}$", description="next_cursor of the page before")

    def after(self) -> int | None:
        return int(self.cursor) if self.cursor else None


def next_cursor(ids: list[int], limit: int) -> str | None:
    return str(ids[-1]) if len(ids) == limit else None


class FollowerQuery(PageQuery):
    channel: str | None = Field(default=None, max_length=32)
    locale: str | None = Field(default=None, max_length=16)
    tag: str | None = Field(default=None, max_length=32)
    source: str | None = Field(default=None, max_length=128, description="first-touch campaign scene")

    def where(self) -> FollowerFilter:
        return FollowerFilter(channel=self.channel, locale=self.locale, tag=self.tag, source=self.source)


class FollowerExportQuery(Body):
    channel: str | None = Field(default=None, max_length=32)
    locale: str | None = Field(default=None, max_length=16)
    tag: str | None = Field(default=None, max_length=32)
    source: str | None = Field(default=None, max_length=128)


class AuditQuery(PageQuery):
    action: str | None = Field(default=None, max_length=64)
    actor: str | None = Field(default=None, max_length=80)


class QrQuery(Body):
    channel: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$",
                         description="a channel with a link for the scene (wechat, telegram, weibo, ...)")
    format: Literal["png", "svg"] = "png"


class ConversationQuery(PageQuery):
    """``cursor`` here counts the conversations already read (they move as followers write)."""

    state: HandoffState | None = None
    channel: str | None = Field(default=None, max_length=32)
    agent: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[!-~]+$",
                              description="only the conversations this agent has")
    owed: bool | None = Field(default=None, description="true: only followers owed an answer after the queue's "
                              "timeout; false: only the others")


class ReleaseQuery(Body):
    force: bool = Field(default=False, description="release another agent's conversation (inbox.manage)")


class ActivityQuery(Body):
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="the last this many days, today included")


class FunnelQuery(Body):
    campaign: str | None = Field(default=None, max_length=64, description="one campaign's slug")
    per_channel: bool = Field(default=False, description="one row per campaign and channel")


# --- me and operators ----------------------------------------------------------------------------------
async def me(call: Call) -> MeView:
    a = call.actor
    return MeView(name=a.name, role=a.role, operator_id=a.operator_id,
                  permissions=sorted(p.value for p in PERMISSIONS[a.role]))


async def operators_list(call: Call) -> OperatorPage:
    q = call.query
    ops = await operator_service.list_operators(call.session, limit=q.limit, after_id=q.after())
    return OperatorPage(items=[OperatorView.model_validate(operator_service.operator_record(o)) for o in ops],
                        next_cursor=next_cursor([o.id for o in ops], q.limit))


async def operator_create(call: Call) -> OperatorView:
    op = await operator_service.add_operator(call.session, call.actor, call.body)
    return OperatorView.model_validate(operator_service.operator_record(op))


async def operator_show(call: Call) -> OperatorView:
    op = await operator_service.get_operator(call.session, call.ids["operator_id"])
    return OperatorView.model_validate(operator_service.operator_record(op))


async def operator_update(call: Call) -> OperatorView:
    op = await operator_service.get_operator(call.session, call.ids["operator_id"])
    op = await operator_service.update_operator(call.session, call.actor, op, call.body, version=call.version)
    return OperatorView.model_validate(operator_service.operator_record(op))


async def operator_password(call: Call) -> OperatorView:
    op = await operator_service.get_operator(call.session, call.ids["operator_id"])
    op = await operator_service.reset_password(call.session, call.actor, op, call.body)
    return OperatorView.model_validate(operator_service.operator_record(op))


async def tokens_list(call: Call) -> TokenList:
    op = await operator_service.get_operator(call.session, call.ids["operator_id"])
    rows = await operator_service.list_tokens(call.session, op)
    return TokenList(items=[TokenView.model_validate(operator_service.token_record(t)) for t in rows])


async def token_create(call: Call) -> TokenCreated:
    op = await operator_service.get_operator(call.session, call.ids["operator_id"])
    row, token = await operator_service.create_token(call.session, call.actor, op, call.body)
    return TokenCreated(**operator_service.token_record(row), token=token)


async def token_revoke(call: Call) -> TokenView:
    row = await operator_service.revoke_token(call.session, call.actor, call.ids["token_id"])
    return TokenView.model_validate(operator_service.token_record(row))


# --- rules ---------------------------------------------------------------------------------------------
async def rules_list(call: Call) -> RulePage:
    q = call.query
    rules = await services.list_rules(call.session, limit=q.limit, after_id=q.after())
    return RulePage(items=[RuleView.model_validate(services.rule_record(r)) for r in rules],
                    next_cursor=next_cursor([r.id for r in rules], q.limit))


async def rule_create(call: Call) -> RuleView:
    return RuleView.model_validate(services.rule_record(await services.create_rule(call.session, call.actor, call.body)))


async def rule_show(call: Call) -> RuleView:
    return RuleView.model_validate(services.rule_record(await services.get_rule(call.session, call.ids["rule_id"])))


async def rule_update(call: Call) -> RuleView:
    rule = await services.get_rule(call.session, call.ids["rule_id"])
    rule = await services.update_rule(call.session, call.actor, rule, call.body, version=call.version)
    return RuleView.model_validate(services.rule_record(rule))


async def rule_delete(call: Call) -> None:
    rule = await services.get_rule(call.session, call.ids["rule_id"])
    await services.delete_rule(call.session, call.actor, rule, version=call.version)


async def rule_try(call: Call) -> TryView:
    """A dry run: reads the rules, writes nothing (the console's "try a message" box, ``engagebot prompts try``)."""
    body: TryMessage = call.body
    result = await previews.try_message(call.session, body.text, channels=call.channels, catalogs=_catalogs(call),
                                        dispatcher=call.dispatcher,
                                        max_chars=call.settings.prompt_rules_max_chars, only_channels=body.channels,
                                        only_locales=body.locales)
    return try_view(result)


def _catalogs(call: Call) -> Catalogs:
    return call.catalogs if call.catalogs is not None else default_catalogs()


# --- promotions and codes ------------------------------------------------------------------------------
async def promotions_list(call: Call) -> PromotionPage:
    q = call.query
    rows = await services.list_promotions(call.session, limit=q.limit, after_id=q.after())
    return PromotionPage(items=[PromotionView.model_validate(r) for r in rows],
                         next_cursor=next_cursor([r["id"] for r in rows], q.limit))


async def promotion_create(call: Call) -> PromotionView:
    promo = await services.create_promotion(call.session, call.actor, call.body)
    return PromotionView.model_validate(await services.promotion_view(call.session, promo))


async def promotion_show(call: Call) -> PromotionView:
    promo = await services.get_promotion(call.session, call.ids["promotion_id"])
    return PromotionView.model_validate(await services.promotion_view(call.session, promo))


async def promotion_update(call: Call) -> PromotionView:
    promo = await services.get_promotion(call.session, call.ids["promotion_id"])
    promo = await services.update_promotion(call.session, call.actor, promo, call.body, version=call.version)
    return PromotionView.model_validate(await services.promotion_view(call.session, promo))


async def promotion_preview(call: Call) -> PreviewView:
    q: PreviewQuery = call.query
    result = await previews.promotion_preview(call.session, call.ids["promotion_id"], channels=call.channels,
                                              catalogs=_catalogs(call), only_channels=[q.channel] if q.channel else [],
                                              only_locales=[q.locale] if q.locale else [])
    return preview_view(result)


async def code_redeem(call: Call) -> RedeemView:
    """A refusal (already redeemed, expired, unknown) is an answer, not an error: 200 with its outcome."""
    body: RedeemBody = call.body
    result = await services.redeem_code(call.session, call.actor, body.code, promotion=body.promotion, by=body.by)
    if result.outcome is RedeemOutcome.UNKNOWN:
        await call.count_failure()  # guessing codes is throttled like guessing tokens
    return RedeemView(outcome=str(result.outcome), code=result.code, promotion=result.promotion,
                      message=result.describe(call.settings.timezone), redeemed_at=result.redeemed_at,
                      valid_until=result.valid_until)


# --- campaigns -----------------------------------------------------------------------------------------
async def campaigns_list(call: Call) -> CampaignPage:
    q = call.query
    rows = await services.list_campaigns(call.session, limit=q.limit, after_id=q.after())
    return CampaignPage(items=[CampaignView.model_validate(r) for r in rows],
                        next_cursor=next_cursor([r["id"] for r in rows], q.limit))


async def campaign_qr(call: Call) -> web.Response:
    q: QrQuery = call.query
    campaign, image = await services.campaign_qr(call.session, call.channels, call.ids["campaign_id"], q.channel,
                                                 q.format)
    media = "image/png" if q.format == "png" else "image/svg+xml"
    name = f"{campaign.slug}-{q.channel}.{q.format}"
    return web.Response(body=image, content_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- followers -----------------------------------------------------------------------------------------
async def followers_list(call: Call) -> FollowerPage:
    q = call.query
    rows = await follower_service.search_followers(call.session, q.where(), limit=q.limit, after_id=q.after())
    return FollowerPage(items=[FollowerView.model_validate(follower_service.follower_record(f)) for f in rows],
                        next_cursor=next_cursor([f.id for f in rows], q.limit))


async def follower_show(call: Call) -> FollowerView:
    f = await follower_service.get_follower(call.session, call.ids["follower_id"])
    return FollowerView.model_validate(follower_service.follower_record(f))


async def follower_tag(call: Call) -> FollowerView:
    f = await follower_service.tag_follower(call.session, call.actor, call.ids["follower_id"], call.body)
    return FollowerView.model_validate(follower_service.follower_record(f))


async def followers_export(call: Call) -> web.StreamResponse:
    q = call.query
    where = FollowerFilter(channel=q.channel, locale=q.locale, tag=q.tag, source=q.source)
    return await stream_followers_csv(call.request, call.session, where)


class ExportBroken(ConnectionError):
    """The export failed after its first bytes went out: the connection is cut, not the file ended."""


async def stream_followers_csv(request: web.Request, session: AsyncSession, where: FollowerFilter,
                               headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """The followers' CSV, streamed (the API's and the console's export).

    The first batch is read before the headers go out, so a refusal or a database error is still an error
    status. A failure later cuts the connection: ending the chunked body cleanly would hand the client a
    short file that looks complete.
    """
    chunks = follower_service.export_csv(session, where)
    first = await anext(chunks)
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": 'attachment; filename="followers.csv"',
                                           **(headers or {})})
    await response.prepare(request)
    try:
        await response.write(first.encode("utf-8"))
        async for chunk in chunks:
            await response.write(chunk.encode("utf-8"))
    except Exception as exc:
        log.exception("follower export broken off after it started")
        if request.transport is not None:
            request.transport.abort()
        raise ExportBroken("the follower export failed after it started") from exc
    await response.write_eof()
    return response


# --- conversations (the inbox) -------------------------------------------------------------------------
def _inbox(call: Call) -> Inbox:
    assert call.sessions is not None
    return conversation_service.inbox_for(call.settings, call.sessions, call.channels, catalogs=call.catalogs,
                                          deliver=call.deliver)


def _conversation_view(c: ConversationSummary) -> ConversationView:
    return ConversationView.model_validate(c)


async def conversations_list(call: Call) -> ConversationPage:
    q: ConversationQuery = call.query
    offset = int(q.cursor) if q.cursor else 0
    rows = await _inbox(call).conversations(state=q.state, channel=q.channel, agent=q.agent, owed=q.owed,
                                            limit=q.limit, offset=offset)
    return ConversationPage(items=[_conversation_view(c) for c in rows],
                            next_cursor=str(offset + q.limit) if len(rows) == q.limit else None)


async def conversation_messages(call: Call) -> MessagePage:
    q: PageQuery = call.query
    found = await _inbox(call).conversation(call.ids["follower_id"], limit=q.limit, before=q.after())
    return MessagePage(conversation=_conversation_view(found.summary),
                       items=[MessageView.model_validate(m) for m in found.messages],
                       next_cursor=next_cursor([m.id for m in reversed(found.messages)], q.limit))


async def conversation_take(call: Call) -> HandoffView:
    change = await conversation_service.take(_inbox(call), call.actor, call.ids["follower_id"])
    return HandoffView(follower_id=change.follower_id, state=change.state, agent=change.agent,
                       changed=change.changed, told=change.told)


async def conversation_reply(call: Call) -> ReplyView:
    body: ReplyBody = call.body
    queued = await conversation_service.reply(_inbox(call), call.actor, call.ids["follower_id"], body.text)
    return ReplyView.model_validate(queued)


async def conversation_release(call: Call) -> HandoffView:
    q: ReleaseQuery = call.query
    change = await conversation_service.release(_inbox(call), call.actor, call.ids["follower_id"], force=q.force)
    return HandoffView(follower_id=change.follower_id, state=change.state, agent=change.agent,
                       changed=change.changed, told=change.told)


async def conversation_dismiss(call: Call) -> DismissView:
    changed = await conversation_service.dismiss(_inbox(call), call.actor, call.ids["follower_id"])
    return DismissView(follower_id=call.ids["follower_id"], changed=changed)


# --- broadcasts ----------------------------------------------------------------------------------------
async def broadcasts_list(call: Call) -> BroadcastPage:
    q: PageQuery = call.query
    rows = await broadcast_service.list_broadcasts(call.session, limit=q.limit, before_id=q.after())
    return BroadcastPage(items=[BroadcastView.model_validate(await broadcast_service.broadcast_record(call.session, b))
                                for b in rows], next_cursor=next_cursor([b.id for b in rows], q.limit))


async def broadcast_start(call: Call) -> BroadcastView:
    broadcast = await broadcast_service.start_broadcast(call.session, call.actor, call.body,
                                                        default_locale=call.settings.default_locale,
                                                        timezone=call.settings.timezone)
    return BroadcastView.model_validate(await broadcast_service.broadcast_record(call.session, broadcast))


async def broadcast_show(call: Call) -> BroadcastView:
    broadcast = await broadcast_service.get_broadcast(call.session, call.ids["broadcast_id"])
    return BroadcastView.model_validate(await broadcast_service.broadcast_record(call.session, broadcast))


async def broadcast_cancel(call: Call) -> BroadcastView:
    await broadcast_service.cancel(call.session, call.actor, call.ids["broadcast_id"])
    broadcast = await broadcast_service.get_broadcast(call.session, call.ids["broadcast_id"])
    return BroadcastView.model_validate(await broadcast_service.broadcast_record(call.session, broadcast))


# --- stats and audit -----------------------------------------------------------------------------------
async def funnel(call: Call) -> FunnelList:
    rows = await services.campaign_funnel(call.session, call.query.campaign, per_channel=call.query.per_channel)
    return FunnelList(items=[FunnelView(campaign=r.slug, source=r.source, scene=r.scene, promotion=r.promotion,
                                        channel=r.channel, scans=r.scans, people=r.people, follows=r.follows,
                                        claims=r.claims, redemptions=r.redemptions) for r in rows])


async def activity(call: Call) -> ActivityView:
    figures = await stats_service.activity(call.session, timezone=call.settings.timezone, days=call.query.days)
    return ActivityView.model_validate(figures)


async def audit_list(call: Call) -> AuditPage:
    q = call.query
    rows = await list_entries(call.session, limit=q.limit, before_id=q.after(), action=q.action, actor=q.actor)
    return AuditPage(items=[AuditView.model_validate(r) for r in rows],
                     next_cursor=next_cursor([r.id for r in rows], q.limit))


ROUTES: list[Route] = [
    Route("GET", "/me", me, "Who this token is, and what it may do", "operators", answer=MeView),
    Route("GET", "/operators", operators_list, "List operators", "operators", P.OPERATORS_READ, query=PageQuery,
          answer=OperatorPage),
    Route("POST", "/operators", operator_create, "Add an operator", "operators", P.OPERATORS_WRITE,
          body=OperatorCreate, answer=OperatorView, status=201, etag=True),
    Route("GET", "/operators/{operator_id}", operator_show, "One operator", "operators", P.OPERATORS_READ,
          answer=OperatorView, etag=True),
    Route("PATCH", "/operators/{operator_id}", operator_update, "Change role, name, or disable", "operators",
          P.OPERATORS_WRITE, body=OperatorUpdate, answer=OperatorView, etag=True, if_match=True),
    Route("POST", "/operators/{operator_id}/password", operator_password, "Set a new password", "operators",
          P.OPERATORS_WRITE, body=PasswordReset, answer=OperatorView, etag=True),
    Route("GET", "/operators/{operator_id}/tokens", tokens_list, "An operator's API tokens", "operators",
          P.OPERATORS_READ, answer=TokenList),
    Route("POST", "/operators/{operator_id}/tokens", token_create, "Make an API token (shown once)", "operators",
          P.OPERATORS_WRITE, body=TokenCreate, answer=TokenCreated, status=201),
    Route("DELETE", "/tokens/{token_id}", token_revoke, "Revoke an API token", "operators", P.OPERATORS_WRITE,
          answer=TokenView),
    Route("GET", "/rules", rules_list, "List prompt rules", "rules", P.RULES_READ, query=PageQuery, answer=RulePage),
    Route("POST", "/rules", rule_create, "Add a prompt rule", "rules", P.RULES_WRITE, body=PromptRuleSpec,
          answer=RuleView, status=201, etag=True),
    Route("GET", "/rules/{rule_id}", rule_show, "One prompt rule", "rules", P.RULES_READ, answer=RuleView, etag=True),
    Route("PATCH", "/rules/{rule_id}", rule_update, "Change a prompt rule", "rules", P.RULES_WRITE, body=RuleUpdate,
          answer=RuleView, etag=True, if_match=True),
    Route("DELETE", "/rules/{rule_id}", rule_delete, "Delete a prompt rule", "rules", P.RULES_WRITE, status=204,
          if_match=True),
    Route("POST", "/try-message", rule_try,
          "Try a message: the rule it matches and the reply per channel and language (a dry run)", "rules",
          P.RULES_READ, body=TryMessage, answer=TryView),
    Route("GET", "/promotions", promotions_list, "List promotions with live claimed/quota", "promotions",
          P.PROMOTIONS_READ, query=PageQuery, answer=PromotionPage),
    Route("POST", "/promotions", promotion_create, "Add a promotion (the promotions file's fields)", "promotions",
          P.PROMOTIONS_WRITE, body=PromotionSpec, answer=PromotionView, status=201, etag=True),
    Route("GET", "/promotions/{promotion_id}", promotion_show, "One promotion", "promotions", P.PROMOTIONS_READ,
          answer=PromotionView, etag=True),
    Route("PATCH", "/promotions/{promotion_id}", promotion_update, "Change quota, dates or title", "promotions",
          P.PROMOTIONS_WRITE, body=PromotionUpdate, answer=PromotionView, etag=True, if_match=True),
    Route("GET", "/promotions/{promotion_id}/preview", promotion_preview,
          "What a follower claiming it receives, per channel and language (a dry run, a sample code)",
          "promotions", P.PROMOTIONS_READ, query=PreviewQuery, answer=PreviewView),
    Route("POST", "/codes/redeem", code_redeem, "Redeem a code at the till (once)", "codes", P.CODES_REDEEM,
          body=RedeemBody, answer=RedeemView),
    Route("GET", "/campaigns", campaigns_list, "List campaigns", "campaigns", P.CAMPAIGNS_READ, query=PageQuery,
          answer=CampaignPage),
    Route("GET", "/campaigns/{campaign_id}/qr", campaign_qr, "A campaign's QR code on one channel (PNG or SVG)",
          "campaigns", P.CAMPAIGNS_READ, query=QrQuery, media=("image/png", "image/svg+xml")),
    Route("GET", "/followers", followers_list, "Search followers", "followers", P.FOLLOWERS_READ,
          query=FollowerQuery, answer=FollowerPage),
    Route("GET", "/followers/export.csv", followers_export, "Export matching followers as CSV", "followers",
          P.FOLLOWERS_EXPORT, query=FollowerExportQuery, media=("text/csv",)),
    Route("GET", "/followers/{follower_id}", follower_show, "One follower", "followers", P.FOLLOWERS_READ,
          answer=FollowerView),
    Route("POST", "/followers/{follower_id}/tags", follower_tag, "Add and remove tags", "followers",
          P.FOLLOWERS_WRITE, body=TagsUpdate, answer=FollowerView),
    Route("GET", "/conversations", conversations_list, "Conversations across channels, newest first", "inbox",
          P.INBOX_READ, query=ConversationQuery, answer=ConversationPage),
    Route("GET", "/conversations/{follower_id}/messages", conversation_messages,
          "One conversation and its messages (the newest page first, each page oldest first)", "inbox",
          P.INBOX_READ, query=PageQuery, answer=MessagePage),
    Route("POST", "/conversations/{follower_id}/take", conversation_take,
          "Take the conversation over: the bot stops answering it", "inbox", P.INBOX_WRITE, answer=HandoffView),
    Route("POST", "/conversations/{follower_id}/reply", conversation_reply,
          "Reply in a conversation you took (within the platform's window)", "inbox", P.INBOX_WRITE,
          body=ReplyBody, answer=ReplyView, status=201),
    Route("POST", "/conversations/{follower_id}/release", conversation_release,
          "Hand the conversation back to the bot", "inbox", P.INBOX_WRITE, query=ReleaseQuery, answer=HandoffView),
    Route("POST", "/conversations/{follower_id}/dismiss", conversation_dismiss,
          "Let a follower owed an answer (timed out of the queue) go without one", "inbox", P.INBOX_WRITE,
          answer=DismissView),
    Route("GET", "/broadcasts", broadcasts_list, "Broadcasts with their progress, newest first", "broadcasts",
          P.BROADCASTS_READ, query=PageQuery, answer=BroadcastPage),
    Route("POST", "/broadcasts", broadcast_start,
          "Start a broadcast (queued: the running server's broadcast worker writes and sends it)", "broadcasts",
          P.BROADCASTS_WRITE, body=BroadcastStart, answer=BroadcastView, status=201),
    Route("GET", "/broadcasts/{broadcast_id}", broadcast_show, "One broadcast's progress (rows by status)",
          "broadcasts", P.BROADCASTS_READ, answer=BroadcastView),
    Route("POST", "/broadcasts/{broadcast_id}/cancel", broadcast_cancel, "Stop a broadcast: nothing more is sent",
          "broadcasts", P.BROADCASTS_WRITE, answer=BroadcastView),
    Route("GET", "/stats/funnel", funnel, "Scans -> follows -> claims -> redemptions per campaign", "stats",
          P.STATS_READ, query=FunnelQuery, answer=FunnelList),
    Route("GET", "/stats/activity", activity,
          "Messages per day and channel, passive vs deferred replies, median answer time", "stats", P.STATS_READ,
          query=ActivityQuery, answer=ActivityView),
    Route("GET", "/audit", audit_list, "The audit log, newest first", "audit", P.AUDIT_READ, query=AuditQuery,
          answer=AuditPage),
]
