"""``engagebot operator add|list|disable|enable|reset-password|token``: operator accounts (bot.admin)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot.admin import operators as service
from bot.admin.audit import CLI_ACTOR
from bot.admin.errors import Invalid
from bot.admin.roles import Role
from bot.admin.schemas import OperatorCreate, OperatorUpdate, PasswordReset, TokenCreate
from bot.admin.services import first_error
from bot.i18n import N_, operator_time

from .common import open_session, settings_of

M = TypeVar("M", bound=BaseModel)


def _checked(model: type[M], **values: Any) -> M:
    """The CLI's input checked by the API's own model: the same rules, a one-line error naming the field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise first_error(exc) from None


def _password(args: argparse.Namespace) -> str:
    """From stdin with --password-stdin (scripts), else asked twice without echo."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise Invalid("password", N_("the two passwords differ"))
    return first


async def cmd_operator_add(args: argparse.Namespace) -> int:
    body = _checked(OperatorCreate, name=args.name, role=args.role, password=_password(args),
                    display_name=args.display_name)
    async with open_session(args) as session:
        op = await service.add_operator(session, CLI_ACTOR, body)
        await session.commit()
    print(f"added operator {op.name} ({op.role}); make an API token with: engagebot operator token create {op.name}")
    return 0


async def cmd_operator_list(args: argparse.Namespace) -> int:
    tz = settings_of(args).timezone
    async with open_session(args) as session:
        ops = await service.list_operators(session, limit=10_000)
    if not ops:
        print("no operators; add one with: engagebot operator add NAME --role admin")
    for op in ops:
        state = f"disabled {operator_time(op.disabled_at, tz)}" if op.disabled_at else "active"
        print(f"{op.name:<24} {op.role:<9} {state:<28} {op.display_name or ''}")
    return 0


async def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    async with open_session(args) as session:
        op = await service.get_operator(session, args.name)
        await service.update_operator(session, CLI_ACTOR, op, OperatorUpdate(disabled=disabled), version=None)
        await session.commit()
    print(f"operator {args.name} {'disabled: its tokens stop working now' if disabled else 'enabled'}")
    return 0


async def cmd_operator_disable(args: argparse.Namespace) -> int:
    return await _set_disabled(args, True)


async def cmd_operator_enable(args: argparse.Namespace) -> int:
    return await _set_disabled(args, False)


async def cmd_operator_reset_password(args: argparse.Namespace) -> int:
    body = _checked(PasswordReset, password=_password(args), revoke_tokens=args.revoke_tokens)
    async with open_session(args) as session:
        op = await service.get_operator(session, args.name)
        await service.reset_password(session, CLI_ACTOR, op, body)
        await session.commit()
    print(f"password of {args.name} changed; its console sessions ended"
          + ("; its API tokens revoked" if args.revoke_tokens else ""))
    return 0


async def cmd_token_create(args: argparse.Namespace) -> int:
    body = _checked(TokenCreate, label=args.label)
    async with open_session(args) as session:
        op = await service.get_operator(session, args.name)
        row, token = await service.create_token(session, CLI_ACTOR, op, body)
        await session.commit()
    print(token)
    print(f"token {row.id} for {op.name}: shown this once, keep it secret "
          f"(revoke with: engagebot operator token revoke {row.id})", file=sys.stderr)
    return 0


async def cmd_token_list(args: argparse.Namespace) -> int:
    tz = settings_of(args).timezone
    async with open_session(args) as session:
        op = await service.get_operator(session, args.name)
        rows = await service.list_tokens(session, op)
    if not rows:
        print(f"{op.name} has no tokens")
    for t in rows:
        state = f"revoked {operator_time(t.revoked_at, tz)}" if t.revoked_at else "live"
        print(f"{t.id:>6}  {t.prefix}...  {t.label:<24} made {operator_time(t.created_at, tz)}  {state}")
    return 0


async def cmd_token_revoke(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        row = await service.revoke_token(session, CLI_ACTOR, args.token_id)
        await session.commit()
    print(f"token {row.id} ({row.label}) revoked")
    return 0


def add_commands(sub: Any) -> None:
    """Register ``operator`` on the ``engagebot`` command."""
    operator = sub.add_parser("operator", help="operator accounts, roles and API tokens").add_subparsers(
        dest="operator_command", required=True)
    add = operator.add_parser("add", help="add an operator (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--display-name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_operator_add)
    operator.add_parser("list", help="list operators").set_defaults(func=cmd_operator_list)
    for name, func, text in (("disable", cmd_operator_disable, "disable an operator: its tokens stop working at once"),
                             ("enable", cmd_operator_enable, "enable a disabled operator again")):
        cmd = operator.add_parser(name, help=text)
        cmd.add_argument("name")
        cmd.set_defaults(func=func)
    reset = operator.add_parser("reset-password", help="set a new password (asks for it)")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    reset.add_argument("--revoke-tokens", action="store_true", help="also revoke the operator's API tokens")
    reset.set_defaults(func=cmd_operator_reset_password)
    token = operator.add_parser("token", help="API tokens: create, list, revoke").add_subparsers(
        dest="token_command", required=True)
    create = token.add_parser("create", help="make an API token for an operator (printed once)")
    create.add_argument("name")
    create.add_argument("--label", default="api", help="what the token is for (default: api)")
    create.set_defaults(func=cmd_token_create)
    listing = token.add_parser("list", help="an operator's tokens")
    listing.add_argument("name")
    listing.set_defaults(func=cmd_token_list)
    revoke = token.add_parser("revoke", help="revoke a token by its id (see token list)")
    revoke.add_argument("token_id", type=int)
    revoke.set_defaults(func=cmd_token_revoke)
