"""Tenant isolation and authentication, checked on EVERY route of the OpenAPI document.

- Another workspace's credentials (its owner's token, its API key, and its owner naming the
  first workspace in X-Workspace-ID) get 404 or 403 for the first workspace's ids, and never
  any of its data from any route; afterwards the first workspace is unchanged.
- Without credentials every route answers 401, except the public ones listed here.

A new route fails these tests until it is given a request body below (when it takes one).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import (
    AiBatch,
    ApiKey,
    Invitation,
    Media,
    Notification,
    Post,
    Workspace,
)
from herald_common.roles import Role
from herald_common.settings import Settings
from tests.conftest import Tenant
from tests.fakes.media import image_bytes
from tests.members import PASSWORD, Member, make_member

# Routes anyone may call: probes, and the ways to get credentials in the first place.
PUBLIC = {
    "healthz",
    "readyz",
    "sign_up",
    "log_in",
    "refresh_tokens",
    "verify_email",
    "request_password_reset",
    "reset_password",
    # The platform's OAuth redirect: its single-use state, not credentials, names the workspace.
    "oauth_callback",
}
# Path parameters that are not ids of the first workspace, and the value each route gets.
NOT_IDS = {"platform": "x"}
# Run last: with the second workspace's own credentials these end its session or delete it.
LAST = {"log_out", "delete_workspace"}
SECRET_CONTENT = "first workspace's confidential launch post"
SECRET_ALT_TEXT = "first workspace's unreleased product photo"


def _body(operation_id: str, world: World) -> Any:
    bodies: dict[str, Any] = {
        "sign_up": {"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
        "log_in": {"email": world.owner.email, "password": "not the password"},
        "refresh_tokens": {"refresh_token": "hr_not-a-token"},
        "verify_email": {"token": "not-a-token"},
        "request_password_reset": {"email": f"nobody-{uuid.uuid4().hex[:8]}@example.com"},
        "reset_password": {"token": "not-a-token", "new_password": "a brand new password"},
        "change_password": {"current_password": "wrong password", "new_password": "x" * 12},
        "create_workspace": {"name": "Another"},
        "accept_invitation": {"token": "hi_not-a-token"},
        "create_post": {
            "content": "hello",
            "scheduled_at": (clock.now() + timedelta(hours=1)).isoformat(),
            "targets": [{"account_id": str(world.ids["account_id"])}],
        },
        "validate_post": {
            "content": "hello",
            "targets": [{"account_id": str(world.ids["account_id"])}],
        },
        "update_post": {"content": "taken over"},
        "retry_target": {"accept_duplicate_risk": True},
        "create_account": {"platform": "sandbox", "handle": "intruder"},
        "connect_account": None,  # X: OAuth takes no body
        "update_workspace": {"name": "taken over"},
        "update_member": {"role": "viewer"},
        "create_invitation": {"email": "intruder@example.com", "role": "owner"},
        "create_api_key": {"name": "intruder"},
        "upload_media": Upload({"file": ("intruder.png", image_bytes(width=3), "image/png")}),
        # The AI routes, naming the first workspace's account and picture.
        "generate_post": {"brief": "hello", "account_ids": [str(world.ids["account_id"])]},
        "rewrite_post": {"text": "hello", "action": "rephrase"},
        "generate_alt_text": {"media_id": str(world.ids["media_id"])},
        "create_ai_batch": {"plan": "p", "account_ids": [str(world.ids["account_id"])]},
    }
    if operation_id not in bodies:
        raise AssertionError(f"add a request body for {operation_id} to {__name__}._body")
    return bodies[operation_id]


@dataclass(frozen=True)
class Upload:
    """A multipart body, sent as files rather than JSON."""

    files: dict[str, tuple[str, bytes, str]]


def _send(body: Any) -> dict[str, Any]:
    return {"files": body.files} if isinstance(body, Upload) else {"json": body}


@dataclass
class World:
    first: Tenant
    owner: Member
    ids: dict[str, uuid.UUID]
    secrets: list[str]
    second: Tenant
    second_owner: Member


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    has_body: bool

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


@pytest.fixture
async def world(
    api_url: str,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> World:
    owner = await make_member(sessions, settings, tenant.workspace_id, Role.OWNER)
    editor = await make_member(sessions, settings, tenant.workspace_id, Role.EDITOR)
    second_owner = await make_member(sessions, settings, other_tenant.workspace_id, Role.OWNER)
    async with httpx.AsyncClient(base_url=api_url, headers=owner.headers) as http:
        media = await http.post(
            "/v1/media",
            files={"file": ("secret.png", image_bytes(), "image/png")},
            data={"alt_text": SECRET_ALT_TEXT},
        )
        assert media.status_code == 201, media.text
        post = await http.post(
            "/v1/posts",
            json={
                "content": SECRET_CONTENT,
                "media_ids": [media.json()["id"]],
                "scheduled_at": (clock.now() + timedelta(hours=2)).isoformat(),
                "targets": [{"account_id": str(tenant.account_id)}],
            },
        )
        assert post.status_code == 201, post.text
        invitation = await http.post(
            "/v1/workspace/invitations", json={"email": "guest@first.example", "role": "viewer"}
        )
        key = await http.post("/v1/api-keys", json={"name": "first key"})
    async with sessions.begin() as session:
        batch = AiBatch(
            workspace_id=tenant.workspace_id,
            plan=SECRET_CONTENT,
            account_ids=[tenant.account_id],
            max_posts=3,
        )
        session.add(batch)
        notification = Notification(
            workspace_id=tenant.workspace_id,
            kind="publish_failed",
            message=SECRET_CONTENT,
            dedupe_key=f"isolation-{uuid.uuid4()}",
        )
        session.add(notification)
        await session.flush()
        notification_id = notification.id
        batch_id = batch.id
    ids = {
        "post_id": uuid.UUID(post.json()["id"]),
        "target_id": uuid.UUID(post.json()["targets"][0]["id"]),
        "account_id": tenant.account_id,
        "notification_id": notification_id,
        "user_id": editor.user_id,
        "invitation_id": uuid.UUID(invitation.json()["id"]),
        "key_id": uuid.UUID(key.json()["id"]),
        "media_id": uuid.UUID(media.json()["id"]),
        "batch_id": batch_id,
    }
    secrets = [
        *(str(v) for v in ids.values()),
        str(tenant.workspace_id),
        str(owner.user_id),
        owner.email,
        editor.email,
        "guest@first.example",
        SECRET_CONTENT,
        SECRET_ALT_TEXT,
        media.json()["sha256"],
        key.json()["prefix"],
        "acme-sandbox",
    ]
    return World(tenant, owner, ids, secrets, other_tenant, second_owner)


def operations(spec: dict[str, Any]) -> Iterator[Operation]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield Operation(
                method.upper(), path, operation["operationId"], "requestBody" in operation
            )


async def _spec(api_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api_url) as http:
        spec: dict[str, Any] = (await http.get("/openapi.json")).json()
        return spec


def _request(op: Operation, world: World) -> tuple[str, dict[str, str], Any]:
    path = op.path
    for name in op.path_params:
        if name in NOT_IDS:
            path = path.replace(f"{{{name}}}", NOT_IDS[name])
            continue
        if name not in world.ids:
            raise AssertionError(f"add an id of the first workspace for {{{name}}} ({op.path})")
        path = path.replace(f"{{{name}}}", str(world.ids[name]))
    headers = {"If-Match": '"1"'} if op.method == "PATCH" and op.path_params else {}
    return path, headers, _body(op.operation_id, world) if op.has_body else None


async def test_another_workspace_gets_nothing_of_the_first_from_any_route(
    api_url: str, world: World, sessions: async_sessionmaker[AsyncSession]
) -> None:
    spec = await _spec(api_url)
    ops = sorted(operations(spec), key=lambda op: op.operation_id in LAST)
    callers = {
        "second workspace's key": world.second.headers,
        # Named explicitly: creating a workspace below gives this owner a second one.
        "second workspace's owner": {
            **world.second_owner.headers,
            "X-Workspace-ID": str(world.second.workspace_id),
        },
        "second owner naming the first workspace": {
            **world.second_owner.headers,
            "X-Workspace-ID": str(world.first.workspace_id),
        },
    }
    checked = 0
    async with httpx.AsyncClient(base_url=api_url) as http:
        for op in ops:
            path, extra, body = _request(op, world)
            for caller, headers in callers.items():
                response = await http.request(
                    op.method, path, headers={**headers, **extra}, **_send(body)
                )
                where = f"{op.method} {op.path} as {caller}: {response.status_code}"
                assert response.status_code < 500, where
                leaked = [s for s in world.secrets if s.lower() in response.text.lower()]
                assert not leaked, f"{where} leaked {leaked}"
                if set(op.path_params) - set(NOT_IDS):
                    assert response.status_code in {403, 404}, f"{where} {response.text}"
                checked += 1
    assert checked >= 3 * 35

    # And nothing of the first workspace changed.
    async with sessions() as session:
        post = await session.get(Post, world.ids["post_id"])
        assert post is not None and post.status == "scheduled" and post.content == SECRET_CONTENT
        workspace = await session.get(Workspace, world.first.workspace_id)
        assert workspace is not None and workspace.name == "acme"
        key = await session.get(ApiKey, world.ids["key_id"])
        assert key is not None and key.revoked_at is None
        invitation = await session.get(Invitation, world.ids["invitation_id"])
        assert invitation is not None and invitation.revoked_at is None
        notification = await session.get(Notification, world.ids["notification_id"])
        assert notification is not None and notification.read_at is None
        keys = await session.scalars(
            select(ApiKey.name).where(ApiKey.workspace_id == world.first.workspace_id)
        )
        assert "intruder" not in list(keys)
        media = await session.get(Media, world.ids["media_id"])
        assert media is not None
        uploaded = await session.scalars(
            select(Media.id).where(Media.workspace_id == world.first.workspace_id)
        )
        assert list(uploaded) == [media.id]


@pytest.mark.parametrize(
    "credentials",
    [{}, {"Authorization": "Bearer hk_not-a-key"}, {"Authorization": "Bearer not.a.jwt"}],
    ids=["none", "unknown key", "garbage token"],
)
async def test_every_route_but_the_public_ones_needs_credentials(
    api_url: str, world: World, credentials: dict[str, str]
) -> None:
    spec = await _spec(api_url)
    ops = list(operations(spec))
    assert {op.operation_id for op in ops} >= PUBLIC
    async with httpx.AsyncClient(base_url=api_url) as http:
        for op in ops:
            path, extra, body = _request(op, world)
            response = await http.request(
                op.method, path, headers={**credentials, **extra}, **_send(body)
            )
            where = f"{op.method} {op.path}: {response.status_code} {response.text}"
            assert response.status_code < 500, where
            if op.operation_id in PUBLIC:
                continue
            assert response.status_code == 401, where
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"].startswith("Bearer")
