"""Who may do what in a workspace: the roles of its members and the scopes of its API keys.

What each role and scope allows is decided in one place, ``herald_api.auth.permissions``;
this module only names them, so the database constraints and the API agree on the words.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A member's role, from least to most powerful."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    OWNER = "owner"


class ApiKeyScope(StrEnum):
    READ = "read"
    WRITE = "write"
