"""engagebot: talk with a brand's followers on several channels at once, in Mandarin and English.

The public API for handlers and extensions; everything else is internal. Handlers import from here
only (``from bot import ...``).
"""

# First, before the heavy imports below (a second or more): the ``engagebot`` command ends cleanly on
# SIGTERM or Ctrl-C while it starts (``bot/startsignals.py``); whoever else imports ``bot`` is left alone.
from bot import startsignals as _startsignals

if _startsignals.is_engagebot_command():
    _startsignals.install()

from bot.core.capabilities import Capabilities, ReplyWindow
from bot.core.context import Context
from bot.core.dispatcher import Dispatcher, Middleware, Next
from bot.core.follower import FollowerRecord
from bot.core.inbound import Inbound, Kind
from bot.core.reply import (
    NOT_UNDERSTOOD,
    Article,
    ArticlesReply,
    Button,
    ButtonsReply,
    ImageReply,
    LocationRequestReply,
    QrReply,
    Reply,
    TextReply,
)
from bot.core.router import Router
from bot.core.services import PromptRule, PromptRules, Services
from bot.i18n import N_, _, chinese_locale, fold, ngettext, normalize_locale
from bot.offers import (
    Campaign,
    ClaimOutcome,
    ClaimResult,
    FollowerOffers,
    Promotion,
    ReferralInvite,
    ReferralResult,
    ReferralStatus,
    campaign_for_scene,
    campaign_promotion,
    claim_offer,
    claim_replies,
    count_referral,
    family_offer,
    follower_invite,
    friend_grant_header,
    friends_joined,
    grant_family,
    invite_caption,
    invite_code_from_scene,
    invite_scene,
    offer_list,
    offer_named_in,
    own_invite_text,
    promotion_for_payload,
    record_campaign_touch,
    running_offers,
)
from bot.stores import any_stores, describe_stores, reported_position, shared_position, stores_near
from bot.welcome import welcome_replies

__all__ = [
    "Article",
    "ArticlesReply",
    "Button",
    "ButtonsReply",
    "Campaign",
    "Capabilities",
    "ClaimOutcome",
    "ClaimResult",
    "Context",
    "Dispatcher",
    "FollowerOffers",
    "FollowerRecord",
    "ImageReply",
    "Inbound",
    "Kind",
    "LocationRequestReply",
    "Middleware",
    "NOT_UNDERSTOOD",
    "N_",
    "Next",
    "Promotion",
    "PromptRule",
    "PromptRules",
    "QrReply",
    "ReferralInvite",
    "ReferralResult",
    "ReferralStatus",
    "Reply",
    "ReplyWindow",
    "Router",
    "Services",
    "TextReply",
    "_",
    "any_stores",
    "describe_stores",
    "reported_position",
    "shared_position",
    "stores_near",
    "campaign_for_scene",
    "campaign_promotion",
    "chinese_locale",
    "claim_offer",
    "claim_replies",
    "count_referral",
    "family_offer",
    "follower_invite",
    "fold",
    "friend_grant_header",
    "friends_joined",
    "grant_family",
    "invite_caption",
    "invite_code_from_scene",
    "invite_scene",
    "ngettext",
    "normalize_locale",
    "offer_list",
    "offer_named_in",
    "own_invite_text",
    "promotion_for_payload",
    "record_campaign_touch",
    "running_offers",
    "welcome_replies",
]
