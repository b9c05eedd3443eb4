"""Answer with the operator's prompt-reply rules (loaded with `engagebot prompts load`)."""

from bot import Context, Inbound, Kind, Reply, Router, TextReply

router = Router("prompts")


@router.on(Kind.TEXT)
async def prompt_reply(msg: Inbound, ctx: Context) -> list[Reply] | None:
    rules = ctx.services.prompt_rules
    if rules is None or not msg.text.strip():
        return None
    rule = await rules.match(msg.text)
    if rule is None:
        return None
    return [TextReply(rule.reply_for(ctx.locale))]
