"""Polite answers for what nothing else handled: unknown kinds, media, unmatched text."""

from bot import NOT_UNDERSTOOD, Context, Inbound, Kind, Reply, Router, TextReply, _

router = Router("fallback", ctx_only=True)  # changes nothing but through ctx: see Router.on

MEDIA_KINDS = (Kind.IMAGE, Kind.VOICE, Kind.LOCATION, Kind.LINK, Kind.UNKNOWN)


@router.on(*MEDIA_KINDS, priority=-900)
async def unsupported(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply(_("Thanks! I can only read text for now. Send /help to see what I can do."))]


@router.on(Kind.UNFOLLOW, Kind.VIEW, priority=-900)
async def silent(msg: Inbound, ctx: Context) -> list[Reply]:
    return []  # nobody to answer (unfollow) or nothing to say (a menu link was opened)


@router.fallback()
async def fallback(msg: Inbound, ctx: Context) -> list[Reply]:
    if not msg.text.strip() and msg.kind in (Kind.TEXT, Kind.COMMAND):
        return [TextReply(_("Did you mean to send something? Send /help to see what I can do."))]
    return [TextReply(_(NOT_UNDERSTOOD))]
