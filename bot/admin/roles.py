"""Roles and what each may do: the one permission table every check reads (API and console alike)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # everything, operator accounts and the audit log included
    MARKETER = "marketer"  # rules, promotions, campaigns, broadcasts, stats, followers
    AGENT = "agent"  # the inbox, and the followers it answers
    STAFF = "staff"  # redeems codes at the till, nothing else
    VIEWER = "viewer"  # reads, never writes


class Permission(StrEnum):
    OPERATORS_READ = "operators.read"
    OPERATORS_WRITE = "operators.write"
    AUDIT_READ = "audit.read"
    RULES_READ = "rules.read"
    RULES_WRITE = "rules.write"
    PROMOTIONS_READ = "promotions.read"
    PROMOTIONS_WRITE = "promotions.write"
    CAMPAIGNS_READ = "campaigns.read"
    CODES_REDEEM = "codes.redeem"
    FOLLOWERS_READ = "followers.read"
    FOLLOWERS_WRITE = "followers.write"
    FOLLOWERS_EXPORT = "followers.export"  # a file of personal data leaves the system
    STATS_READ = "stats.read"
    INBOX_READ = "inbox.read"
    INBOX_WRITE = "inbox.write"


_P = Permission
# The table. Admin holds every permission; the others hold what the issue gives their job.
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.MARKETER: frozenset({_P.RULES_READ, _P.RULES_WRITE, _P.PROMOTIONS_READ, _P.PROMOTIONS_WRITE, _P.CAMPAIGNS_READ,
                              _P.FOLLOWERS_READ, _P.FOLLOWERS_WRITE, _P.FOLLOWERS_EXPORT, _P.STATS_READ}),
    Role.AGENT: frozenset({_P.FOLLOWERS_READ, _P.FOLLOWERS_WRITE, _P.INBOX_READ, _P.INBOX_WRITE}),
    Role.STAFF: frozenset({_P.CODES_REDEEM}),
    Role.VIEWER: frozenset({_P.RULES_READ, _P.PROMOTIONS_READ, _P.CAMPAIGNS_READ, _P.FOLLOWERS_READ, _P.STATS_READ,
                            _P.INBOX_READ}),
}


def allows(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS[role]


def roles_with(permission: Permission) -> list[Role]:
    """The roles holding ``permission``, in the table's order (for docs and the OpenAPI document)."""
    return [role for role in Role if allows(role, permission)]
