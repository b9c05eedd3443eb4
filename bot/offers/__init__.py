"""Exclusive offers: promotions, atomic claims and codes, redemption, campaigns, family & friends.

The public API for handlers, the CLI and the admin API; modules below are internal.
"""

from .api import (
    campaign_for_scene,
    campaign_promotion,
    claim_offer,
    count_referral,
    family_offer,
    follower_invite,
    friends_joined,
    grant_family,
    offer_named_in,
    promotion_for_payload,
    record_campaign_touch,
    running_offers,
)
from .campaigns import FunnelRow, find_campaign, funnel_stats, get_campaign, record_touch, write_qr_files
from .claims import ClaimOutcome, ClaimResult, FollowerOffers, check_eligibility, claim, offers_for
from .codes import ALPHABET, generate_code
from .index import OfferIndex, offer_index
from .links import campaign_links
from .loader import LoadSummary, get_promotion, list_promotions, load_promo_file
from .models import Campaign, CampaignTouch, Claim, PoolCode, Promotion, Referral, ReferralInvite
from .redeem import RedeemOutcome, RedeemResult, redeem
from .referrals import (
    ReferralResult,
    ReferralStatus,
    family_promotion,
    get_or_create_invite,
    grant_family_offer,
    invite_code_from_scene,
    invite_scene,
    joined_count,
    record_referral,
)
from .render import (
    LocaleText,
    claim_replies,
    friend_grant_header,
    invite_caption,
    offer_list,
    own_invite_text,
)
from .spec import ParsedPromoFile, parse_promo_file, read_promo_file

__all__ = [
    "ALPHABET",
    "Campaign",
    "CampaignTouch",
    "Claim",
    "ClaimOutcome",
    "ClaimResult",
    "FollowerOffers",
    "FunnelRow",
    "LoadSummary",
    "LocaleText",
    "OfferIndex",
    "ParsedPromoFile",
    "PoolCode",
    "Promotion",
    "RedeemOutcome",
    "RedeemResult",
    "Referral",
    "ReferralInvite",
    "ReferralResult",
    "ReferralStatus",
    "campaign_for_scene",
    "campaign_links",
    "campaign_promotion",
    "check_eligibility",
    "claim",
    "claim_offer",
    "claim_replies",
    "count_referral",
    "family_offer",
    "family_promotion",
    "find_campaign",
    "follower_invite",
    "friend_grant_header",
    "friends_joined",
    "funnel_stats",
    "generate_code",
    "get_campaign",
    "get_or_create_invite",
    "get_promotion",
    "grant_family",
    "grant_family_offer",
    "invite_caption",
    "invite_code_from_scene",
    "invite_scene",
    "joined_count",
    "list_promotions",
    "load_promo_file",
    "offer_index",
    "offer_list",
    "offer_named_in",
    "offers_for",
    "own_invite_text",
    "parse_promo_file",
    "promotion_for_payload",
    "read_promo_file",
    "record_campaign_touch",
    "record_referral",
    "record_touch",
    "redeem",
    "running_offers",
    "write_qr_files",
]
