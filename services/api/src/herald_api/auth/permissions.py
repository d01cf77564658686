"""Who may do what: every permission, and which roles and API key scopes grant it.

This table is the whole authorization policy; docs/permissions.md shows it to people, and
``herald_api.deps.require`` is the only place it is enforced.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from herald_common.roles import ApiKeyScope, Role


class Permission(StrEnum):
    # Posts, accounts, sandbox publications and notifications: reading them.
    CONTENT_READ = "content:read"
    # Creating, editing, scheduling, cancelling, publishing and retrying posts.
    CONTENT_WRITE = "content:write"
    # Adding, connecting and removing social accounts.
    ACCOUNTS_MANAGE = "accounts:manage"
    # Seeing the workspace's members and pending invitations.
    MEMBERS_READ = "members:read"
    # Inviting people, changing roles, removing members (below owner).
    MEMBERS_MANAGE = "members:manage"
    # Granting the owner role, and changing or removing an owner.
    OWNERS_MANAGE = "owners:manage"
    # Listing, creating and revoking API keys.
    KEYS_MANAGE = "keys:manage"
    # Renaming the workspace (its settings).
    WORKSPACE_MANAGE = "workspace:manage"
    WORKSPACE_DELETE = "workspace:delete"


_VIEWER = frozenset({Permission.CONTENT_READ, Permission.MEMBERS_READ})
_EDITOR = _VIEWER | {Permission.CONTENT_WRITE}
_ADMIN = _EDITOR | {
    Permission.ACCOUNTS_MANAGE,
    Permission.MEMBERS_MANAGE,
    Permission.KEYS_MANAGE,
}
_OWNER = _ADMIN | {
    Permission.OWNERS_MANAGE,
    Permission.WORKSPACE_MANAGE,
    Permission.WORKSPACE_DELETE,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.EDITOR: _EDITOR,
    Role.ADMIN: _ADMIN,
    Role.OWNER: _OWNER,
}

# Keys act for programs, not people: they read and write the workspace's content (and add
# accounts, as integrations do), but never manage members, keys or the workspace, so a leaked
# key cannot mint more keys or lock its owners out.
SCOPE_PERMISSIONS: dict[ApiKeyScope, frozenset[Permission]] = {
    ApiKeyScope.READ: frozenset({Permission.CONTENT_READ}),
    # Writing answers with what was written, so write implies read.
    ApiKeyScope.WRITE: frozenset(
        {Permission.CONTENT_READ, Permission.CONTENT_WRITE, Permission.ACCOUNTS_MANAGE}
    ),
}


def key_permissions(scopes: list[str]) -> frozenset[Permission]:
    granted: frozenset[Permission] = frozenset()
    for scope in scopes:
        granted |= SCOPE_PERMISSIONS[ApiKeyScope(scope)]
    return granted


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a workspace route: a member (by access token) or an API key."""

    workspace_id: uuid.UUID
    permissions: frozenset[Permission]
    user_id: uuid.UUID | None = None
    role: Role | None = None
    api_key_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """A person signed in with an access token, before any workspace is chosen."""

    user_id: uuid.UUID
    session_id: uuid.UUID
