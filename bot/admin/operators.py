"""Operator accounts and their API tokens: the service the CLI and the API both call.

Every write adds its audit row to the caller's transaction. A token is checked against its operator
on every request (:func:`authenticate`), so disabling an operator or revoking a token takes effect on
the next request, with no cache to outlive it.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.i18n import N_
from bot.storage.dialect import affected_rows

from .audit import BOOTSTRAP_ACTOR, Actor, record
from .errors import Conflict, Named, NotFound
from .models import ConsoleSession, Operator, OperatorToken
from .roles import Role
from .schemas import OperatorCreate, OperatorUpdate, PasswordReset, TokenCreate
from .secrets import hash_password, new_token, token_hash, token_prefix
from .versions import check_version, flush_or_conflict

OPERATOR = N_("operator")


def operator_record(op: Operator) -> dict[str, Any]:
    """What the API shows and the audit log keeps of an operator (never the password hash)."""
    return {"id": op.id, "name": op.name, "display_name": op.display_name, "role": op.role,
            "disabled": op.disabled_at is not None, "created_at": op.created_at, "updated_at": op.updated_at,
            "version": op.version}


def token_record(token: OperatorToken) -> dict[str, Any]:
    return {"id": token.id, "operator_id": token.operator_id, "label": token.label, "prefix": token.prefix,
            "created_at": token.created_at, "revoked_at": token.revoked_at}


async def add_operator(session: AsyncSession, actor: Actor, body: OperatorCreate) -> Operator:
    now = utcnow()
    op = Operator(name=body.name, display_name=body.display_name, role=body.role.value,
                  password_hash=hash_password(body.password), created_at=now, updated_at=now)
    session.add(op)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(N_("an operator named {name!r} exists"), name=body.name) from None
    await record(session, actor, "operator.add", f"operator:{op.name}", after=operator_record(op))
    return op


async def list_operators(session: AsyncSession, *, limit: int, after_id: int | None = None) -> Sequence[Operator]:
    query = select(Operator).order_by(Operator.id).limit(limit)
    if after_id is not None:
        query = query.where(Operator.id > after_id)
    return (await session.execute(query)).scalars().all()


async def get_operator(session: AsyncSession, key: int | str) -> Operator:
    """The operator of id ``key`` (an int) or named ``key`` (a str); NotFound otherwise."""
    column = Operator.id if isinstance(key, int) else Operator.name
    op = (await session.execute(select(Operator).where(column == key))).scalar_one_or_none()
    if op is None:
        raise NotFound(N_("no operator {key!r}"), key=key)
    return op


async def update_operator(session: AsyncSession, actor: Actor, op: Operator, body: OperatorUpdate, *,
                          version: int | None) -> Operator:
    """Change role, display name or disabled; ``version`` (the ETag the caller read) guards against a lost update."""
    check_version(op.version, version, Named(OPERATOR, op.name))
    if op.id == actor.operator_id and (body.disabled or (body.role is not None and body.role is not Role.ADMIN)):
        raise Conflict(N_("an operator cannot disable or demote itself; ask another admin"))
    before = operator_record(op)
    if body.role is not None:
        op.role = body.role.value
    if "display_name" in body.model_fields_set:
        op.display_name = body.display_name
    if body.disabled is not None:
        op.disabled_at = (op.disabled_at or utcnow()) if body.disabled else None
    op.updated_at = utcnow()
    await flush_or_conflict(session, Named(OPERATOR, op.name))
    await record(session, actor, "operator.update", f"operator:{op.name}", before=before, after=operator_record(op))
    return op


async def reset_password(session: AsyncSession, actor: Actor, op: Operator, body: PasswordReset) -> Operator:
    """A new password; whoever signed in with the old one is signed out (the operator's console sessions end,
    in this transaction), and with ``revoke_tokens`` its API tokens stop working too."""
    op.password_hash = hash_password(body.password)
    op.updated_at = utcnow()
    await flush_or_conflict(session, Named(OPERATOR, op.name))
    ended = affected_rows(await session.execute(delete(ConsoleSession).where(ConsoleSession.operator_id == op.id)))
    revoked: list[int] = []
    if body.revoke_tokens:
        live = await session.execute(select(OperatorToken).where(OperatorToken.operator_id == op.id,
                                                                 OperatorToken.revoked_at.is_(None)))
        now = utcnow()
        for token in live.scalars():
            token.revoked_at = now
            revoked.append(token.id)
        await session.flush()
    # No hash in the log: what ended with the old password.
    await record(session, actor, "operator.reset_password", f"operator:{op.name}",
                 after={"console_sessions_ended": ended, "tokens_revoked": revoked})
    return op


async def create_token(session: AsyncSession, actor: Actor, op: Operator, body: TokenCreate) -> tuple[OperatorToken, str]:
    """A new token for ``op``: the row and the token itself, which is never stored or shown again."""
    token = new_token()
    row = OperatorToken(operator_id=op.id, label=body.label, prefix=token_prefix(token), token_hash=token_hash(token),
                        created_at=utcnow())
    session.add(row)
    await session.flush()
    await record(session, actor, "token.create", f"operator:{op.name}", after=token_record(row))
    return row, token


async def list_tokens(session: AsyncSession, op: Operator) -> Sequence[OperatorToken]:
    query = select(OperatorToken).where(OperatorToken.operator_id == op.id).order_by(OperatorToken.id)
    return (await session.execute(query)).scalars().all()


async def revoke_token(session: AsyncSession, actor: Actor, token_id: int) -> OperatorToken:
    row = await session.get(OperatorToken, token_id)
    if row is None:
        raise NotFound(N_("no token {id}"), id=token_id)
    if row.revoked_at is None:
        before = token_record(row)
        row.revoked_at = utcnow()
        await session.flush()
        await record(session, actor, "token.revoke", f"token:{row.id}", before=before, after=token_record(row))
    return row


async def authenticate(session: AsyncSession, bearer: str, bootstrap: str | None) -> Actor | None:
    """The actor a bearer token stands for, or None: the bootstrap admin token (``ENGAGEBOT_ADMIN_TOKEN``)
    or a live token of an enabled operator, read from the database on every call."""
    given = bearer.encode("utf-8")
    if bootstrap and hmac.compare_digest(given, bootstrap.encode("utf-8")):
        return BOOTSTRAP_ACTOR
    if not bearer.startswith("ebo_") or len(bearer) > 128:
        return None
    # The lookup is by the token's SHA-256: its timing tells nothing about any stored token.
    query = (select(Operator).join(OperatorToken, OperatorToken.operator_id == Operator.id)
             .where(OperatorToken.token_hash == token_hash(bearer), OperatorToken.revoked_at.is_(None),
                    Operator.disabled_at.is_(None)))
    op = (await session.execute(query)).scalar_one_or_none()
    if op is None:
        return None
    return Actor(op.name, Role(op.role), op.id)
