"""Exclusive offers: promotions, atomic claims and codes, redemption, campaigns, family & friends.

The public API for handlers, the CLI and the admin API; modules below are internal.
"""

from .campaigns import FunnelRow, find_campaign, funnel_stats, get_campaign, record_touch, write_qr_files
from .claims import ClaimOutcome, ClaimResult, FollowerOffers, check_eligibility, claim, offers_for
from .codes import ALPHABET, generate_code
from .index import OFFER_INDEX_SERVICE, OfferIndex, offer_index
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
    "OFFER_INDEX_SERVICE",
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
    "campaign_links",
    "check_eligibility",
    "claim",
    "claim_replies",
    "family_promotion",
    "find_campaign",
    "friend_grant_header",
    "funnel_stats",
    "generate_code",
    "get_campaign",
    "get_or_create_invite",
    "get_promotion",
    "grant_family_offer",
    "invite_caption",
    "invite_code_from_scene",
    "invite_scene",
    "joined_count",
    "list_promotions",
    "load_promo_file",
    "offer_index",
    "offer_list",
    "offers_for",
    "own_invite_text",
    "parse_promo_file",
    "read_promo_file",
    "record_referral",
    "record_touch",
    "redeem",
    "write_qr_files",
]
