"""The three platforms' real adapters, built (not started) for the dry runs to render with: no platform is reached."""

from __future__ import annotations

from aiohttp import web

from bot.channels.plugin import Lifetime, PluginContext
from bot.channels.telegram.adapter import TelegramChannel
from bot.channels.telegram.config import TelegramConfig
from bot.channels.wechat.adapter import WeChatChannel
from bot.channels.weibo.adapter import WeiboChannel
from bot.settings import WeChatAccount, WeiboSettings


def preview_channels_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    """Append a WeChat, a Telegram and a Weibo channel to the app's channels, as their plugins would."""
    dispatch = ctx.dispatcher.dispatch
    ctx.channels.append(WeChatChannel(dispatch=dispatch, account="gh_preview", sessions=ctx.sessions,
                                      config=WeChatAccount(token="previewToken1", app_id="wxpreview",
                                                           app_secret="preview-secret")))
    telegram = TelegramChannel(dispatch=dispatch, sessions=ctx.sessions, receive=False,
                               config=TelegramConfig(token="123456:PREVIEW-TOKEN"))
    telegram.bot_username = "preview_bot"  # as getMe would say: its deep links need no call to Telegram
    ctx.channels.append(telegram)
    ctx.channels.append(WeiboChannel(dispatch=dispatch, account="default", sessions=ctx.sessions,
                                     config=WeiboSettings(app_secret="preview-secret", access_token="preview-token",
                                                          brand_uid="1234567")))
    return None
