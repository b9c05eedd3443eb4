"""Answer with the operator's prompt-reply rules (loaded with `engagebot prompts load`), to a message
or to a menu key that names one of their keywords."""

from bot import Context, Inbound, Kind, Reply, Router, TextReply

router = Router("prompts", ctx_only=True)  # changes nothing but through ctx: see Router.on


async def _matching_rule(msg: Inbound, ctx: Context) -> object | None:
    """The rule ``prompt_reply`` would answer with, read only."""
    rules = ctx.services.prompt_rules
    return await rules.match(msg.text) if rules is not None and msg.text.strip() else None


@router.on(Kind.TEXT, answers="rule", probe=_matching_rule)
async def prompt_reply(msg: Inbound, ctx: Context) -> list[Reply] | None:
    rules = ctx.services.prompt_rules
    if rules is None or not msg.text.strip():
        return None
    rule = await rules.match(msg.text)
    if rule is None:
        return None
    return [TextReply(rule.reply_for(ctx.locale))]


# After the built-in keys (help, lang, offers, invite, stores) and the promotions' menu keys.
@router.on(Kind.CLICK, priority=-5)
async def prompt_click(msg: Inbound, ctx: Context) -> list[Reply] | None:
    """A menu key naming a prompt-reply keyword (``key: hours``) is answered like that keyword."""
    rules = ctx.services.prompt_rules
    key = (msg.payload or "").strip()
    if rules is None or not key:
        return None
    rule = await rules.match(key)
    return [TextReply(rule.reply_for(ctx.locale))] if rule is not None else None
