"""Typed failures; ``bot.web`` maps them to HTTP status in one place."""

from __future__ import annotations

import re
from collections.abc import Callable

# Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: a platform's text must
# not forge log lines or terminal escapes once it is logged or stored.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
PLATFORM_TEXT_LIMIT = 200


def platform_text(value: object, limit: int = PLATFORM_TEXT_LIMIT) -> str:
    """Return a platform's free text (``errmsg``, an error description) fit to log and store.

    Control characters become one space and the text is cut at ``limit`` characters: a platform
    (or whoever answers in its place) decides what it says, not what our logs look like.
    """
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EngagebotError(Exception):
    """Root of every error engagebot raises on purpose."""

    http_status = 500


class ConfigError(EngagebotError):
    """A setting is missing or invalid."""


class SignatureError(EngagebotError):
    """A request's signature does not match."""

    http_status = 403


class ReplayError(SignatureError):
    """A signed request used again: its timestamp is outside the window, or its signature came with another body."""


class PayloadError(EngagebotError):
    """A request body or parameter is malformed."""

    http_status = 400


class PayloadTooLarge(PayloadError):
    http_status = 413


class RequestTimeout(PayloadError, TimeoutError):
    """The client did not send the request body in time (a TimeoutError, so aiohttp stops reading quietly)."""

    http_status = 408


class ServerStopping(EngagebotError, TimeoutError):
    """The server is stopping and the client had not finished sending its request: try again (elsewhere)."""

    http_status = 503


class DecryptError(PayloadError):
    """An encrypted body does not decrypt (wrong key, bad padding, wrong app id)."""


class PlatformAPIError(EngagebotError):
    """A platform's API answered with an error code."""

    http_status = 502

    def __init__(self, errcode: int, errmsg: str = "") -> None:
        errmsg = platform_text(errmsg)
        super().__init__(f"platform error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class QuotaExceeded(EngagebotError):
    """A platform limit was hit; try again after ``retry_after`` seconds.

    ``chat_only``: the limit is the one chat's own (Telegram's 429 per chat); other chats may go on.
    """

    http_status = 429

    def __init__(self, message: str = "quota exceeded", *, retry_after: float | None = None,
                 chat_only: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.chat_only = chat_only


class NotSent(QuotaExceeded):
    """The request surely never reached the platform (refused before it was written, or a 5xx): safe to repeat."""


class OutsideReplyWindow(EngagebotError):
    """The platform would refuse this send: the follower's reply window is closed or used up."""

    http_status = 409


class ValueRefusal(ValueError):
    """A validator's refusal as a message id (``N_``) and its parameters; ``str()`` is the English text.

    Pydantic keeps the exception, so the admin layer (``first_error``) can show it in an operator's language."""

    def __init__(self, message: str, /, **params: object) -> None:
        self.message = message
        self.params = params
        super().__init__(message.format(**params) if params else message)

    def render(self, translate: Callable[[str], str] | None = None) -> str:
        """The refusal in ``translate``'s language (English without it); a refusal inside it, too."""
        if translate is None:
            return str(self)
        params = {k: v.render(translate) if isinstance(v, ValueRefusal) else v for k, v in self.params.items()}
        return translate(self.message).format(**params) if params else translate(self.message)


class RulesFileError(EngagebotError):
    """An operator's YAML file (prompts, promotions) is malformed; nothing was loaded."""


class FollowerGone(EngagebotError):
    """The follower blocked the bot or unfollowed; the platform will not deliver to them."""

    http_status = 410
