"""The edge's two rules: identifiers refused when malformed, free text cleaned; limits fit the columns."""

from __future__ import annotations

import pytest

from bot.channels import fields
from bot.errors import PayloadError
from bot.storage.models import Follower, Message


def test_the_limits_are_the_widths_of_the_columns_the_fields_are_stored_in() -> None:
    columns = Follower.__table__.c, Message.__table__.c
    assert fields.MAX_EXTERNAL_ID == columns[0].external_id.type.length
    assert fields.MAX_DISPLAY_NAME == columns[0].display_name.type.length
    assert fields.MAX_LANGUAGE_HINT == columns[0].locale_hint.type.length
    assert fields.MAX_MESSAGE_ID == columns[1].dedupe_key.type.length
    assert fields.MAX_PAYLOAD == columns[1].payload.type.length


@pytest.mark.parametrize("value", ["o" * 129, "o\x00X", "o X", "o\tX", "开发者", "o\x7fX"])
def test_a_malformed_identifier_is_refused_naming_the_field_never_altered(value: str) -> None:
    with pytest.raises(PayloadError, match="field FromUserName"):
        fields.identifier("FromUserName", value, max_length=128)


def test_a_well_formed_identifier_passes_unchanged() -> None:
    assert fields.identifier("FromUserName", "oAbC-_9" * 4, max_length=128) == "oAbC-_9" * 4
    assert fields.identifier("username", "", max_length=64, required=False) == ""
    with pytest.raises(PayloadError, match="missing field MsgType"):
        fields.identifier("MsgType", "", max_length=32)


def test_text_has_nul_and_lone_surrogates_replaced_and_is_refused_only_when_too_long() -> None:
    assert fields.text("first_name", "Li\x00\ud800 雷", max_length=10) == "Li\ufffd\ufffd 雷"
    with pytest.raises(PayloadError, match="field text is longer than 4 characters"):
        fields.text("text", "hello", max_length=4)


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, True, "42"])
def test_an_id_that_is_not_a_63_bit_integer_is_refused(value: object) -> None:
    with pytest.raises(PayloadError, match="field chat.id"):
        fields.number("chat.id", value)  # type: ignore[arg-type]
