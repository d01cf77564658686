"""A post with pictures, through the HTTP API, the real scheduler and real arq workers: the
pictures' bytes reach the platform, in order, once."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import MediaUpload, SandboxPublication
from tests.conftest import Tenant
from tests.fakes.media import image_bytes
from tests.services import wait_for


async def test_a_post_with_pictures_is_published_with_their_bytes(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    pipeline: None,
) -> None:
    pictures = [image_bytes("image/jpeg", width=40), image_bytes("image/png", width=7)]
    media_ids = []
    for data in pictures:
        uploaded = await client.post(
            "/v1/media", files={"file": ("p", data, "image/png")}, data={"alt_text": "A dot"}
        )
        assert uploaded.status_code == 201, uploaded.text
        media_ids.append(uploaded.json()["id"])
    post = await client.post(
        "/v1/posts",
        json={
            "content": "Pictures, once.",
            "media_ids": media_ids,
            "scheduled_at": (clock.now() + timedelta(seconds=1)).isoformat(),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert post.status_code == 201, post.text
    target_id = uuid.UUID(post.json()["targets"][0]["id"])

    async def published() -> bool:
        body = (await client.get(f"/v1/posts/{post.json()['id']}")).json()
        return bool(body["status"] == "published")

    await wait_for(published, timeout=20)
    async with sessions() as session:
        [publication] = await session.scalars(
            select(SandboxPublication).where(
                SandboxPublication.idempotency_key == f"herald-{target_id}"
            )
        )
        kept = list(
            await session.scalars(select(MediaUpload).where(MediaUpload.target_id == target_id))
        )
    assert publication.media == [
        f"image/jpeg;sha256={hashlib.sha256(pictures[0]).hexdigest()}",
        f"image/png;sha256={hashlib.sha256(pictures[1]).hexdigest()}",
    ]
    assert {str(k.media_id) for k in kept} == set(media_ids)

    # The sandbox's own record, through the API, shows the same.
    listed = (await client.get("/v1/sandbox/publications")).json()["items"]
    assert listed[0]["media"] == publication.media
