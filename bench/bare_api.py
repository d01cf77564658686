"""The framework's ceiling: POST and GET /v1/posts on a bare FastAPI app with no database, no
auth lookup and no middleware, validated and serialised by pydantic as herald-api's are.
``uvicorn bench.bare_api:app``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

app = FastAPI()


class TargetIn(BaseModel):
    account_id: uuid.UUID


class PostIn(BaseModel):
    content: str = Field(min_length=1)
    scheduled_at: datetime
    targets: list[TargetIn]


class TargetOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    status: str


class PostOut(BaseModel):
    id: uuid.UUID
    content: str
    scheduled_at: datetime
    status: str
    revision: int
    created_at: datetime
    targets: list[TargetOut]


class Page(BaseModel):
    items: list[PostOut]
    next_cursor: str | None


POSTS = [
    PostOut(
        id=uuid.uuid4(),
        content=f"bench post {i}",
        scheduled_at=datetime.now(UTC),
        status="scheduled",
        revision=1,
        created_at=datetime.now(UTC),
        targets=[TargetOut(id=uuid.uuid4(), account_id=uuid.uuid4(), status="pending")],
    )
    for i in range(50)  # herald-api's default page size
]


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/posts", status_code=201)
async def create_post(body: PostIn, authorization: str = Header()) -> PostOut:
    return PostOut(
        id=uuid.uuid4(), content=body.content, scheduled_at=body.scheduled_at,
        status="scheduled", revision=1, created_at=datetime.now(UTC),
        targets=[
            TargetOut(id=uuid.uuid4(), account_id=t.account_id, status="pending")
            for t in body.targets
        ],
    )  # fmt: skip


@app.get("/v1/posts")
async def list_posts(authorization: str = Header()) -> Page:
    return Page(items=POSTS, next_cursor=None)
