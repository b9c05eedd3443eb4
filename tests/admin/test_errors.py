"""One family of refusals (``bot/admin/errors.py``): the inbox's refusals are the admin layer's, and each
refusal is a message id with parameters, English in ``str()``, the operator's language in ``localized``."""

from __future__ import annotations

from bot.admin.errors import AdminError, Conflict, Invalid, Named, NotFound, Term
from bot.admin.handoff import ConversationNotFound, HandoffRefused, InboxInputError, ReplyWindowClosed
from bot.admin.services import RULE
from bot.errors import OutsideReplyWindow
from bot.i18n import default_catalogs

CATALOGS = default_catalogs()


def zh(message: str) -> str:
    return CATALOGS.gettext("zh_Hans", message)


def test_the_inbox_refusals_are_admin_errors_with_their_status_and_code() -> None:
    cases = [(ConversationNotFound("no conversation {id}", id=3), NotFound, 404, "notfound"),
             (HandoffRefused("conversation {id} changed hands meanwhile; look again", id=3), Conflict, 409, "conflict"),
             (InboxInputError("text", "the reply is empty"), Invalid, 422, "invalid")]
    for error, family, status, code in cases:
        assert isinstance(error, family) and isinstance(error, AdminError)
        assert (error.http_status, error.code) == (status, code)
    closed = ReplyWindowClosed("conversation {id}: {reason}; the follower must write first", id=3,
                               reason=Term("outside the reply window"))
    assert isinstance(closed, OutsideReplyWindow) and isinstance(closed, Conflict) and closed.http_status == 409
    assert str(closed) == "conversation 3: outside the reply window; the follower must write first"
    assert closed.localized(zh) == "会话 3：已超出回复时限；须等粉丝先发消息"


def test_a_refusal_is_english_in_str_and_localized_with_its_parameters() -> None:
    missing = NotFound("no operator {key!r}", key="mei")
    assert str(missing) == "no operator 'mei'"
    assert missing.localized(zh) == "没有操作员 'mei'"
    stale = Conflict("{what} changed since it was read (now version {current}): read it again, then edit",
                     what=Named(RULE, "greet"), current=4)
    assert str(stale).startswith("prompt rule 'greet' changed since it was read (now version 4)")
    assert stale.localized(zh).startswith("提示规则 'greet' 在读取后已被更改（现为版本 4）")
    invalid = Invalid("text", "at most {most} characters", most=4000)
    assert (str(invalid), invalid.field) == ("text: at most 4000 characters", "text")
    assert invalid.localized(zh) == "text: 最多 4000 个字符"
    # A validator's own words (no catalog entry, braces and all) are shown as they are.
    foreign = Invalid("name", "String should match pattern '^[a-z]{1,3}$'")
    assert foreign.localized(zh) == "name: String should match pattern '^[a-z]{1,3}$'"
