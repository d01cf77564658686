"""HTTP for the AI assistant: thin; the behaviour is in service.py, batches.py and tasks.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.ai import batches, service
from herald_api.ai.errors import AI_RESPONSES, not_configured
from herald_api.ai.events import DESCRIPTION, EVENT_STREAM, streamed_response, wants_stream
from herald_api.ai.model import Caller
from herald_api.ai.schemas import (
    AiUsageReport,
    AltTextRequest,
    AltTextResult,
    Batch,
    BatchCreate,
    GenerateRequest,
    GenerateResult,
    RewriteRequest,
    RewriteResult,
)
from herald_api.ai.service import AiContext, TokenSink
from herald_api.auth.permissions import Permission, Principal
from herald_api.deps import SessionDep, require, resources_of
from herald_api.problems import NOT_FOUND, Responses, problem_doc

router = APIRouter(prefix="/v1/ai", tags=["ai"])


def _context(request: Request, session: AsyncSession, principal: Principal) -> AiContext:
    resources = resources_of(request)
    if resources.ai_model is None:
        raise not_configured()
    return AiContext(
        session=session,
        caller=Caller(principal.workspace_id, principal.user_id, principal.api_key_id),
        settings=resources.settings,
        platforms=resources.platforms,
        model=resources.ai_model,
        max_wait=resources.settings.openai_max_wait_seconds,
    )


async def _writer(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require(Permission.CONTENT_WRITE)],
) -> AiContext:
    return _context(request, session, principal)


async def _reader(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, require(Permission.CONTENT_READ)],
) -> AiContext:
    return _context(request, session, principal)


WriterDep = Annotated[AiContext, Depends(_writer)]
ReaderDep = Annotated[AiContext, Depends(_reader)]


def _streamable(description: str) -> Responses:
    return {
        200: {
            "description": description,
            "content": {EVENT_STREAM: {"schema": {"type": "string"}}},
        },
        **AI_RESPONSES,
    }


@router.post(
    "/generate",
    response_model=GenerateResult,
    responses=_streamable("Variants per platform, each checked by that platform's rules."),
    description="Write new posts from a brief, per platform, checked by each platform's own "
    "rules: a variant that fails them gets one repair round with the problems stated; what "
    "still fails is returned with `valid: false` and its problems.\n\n" + DESCRIPTION,
)
async def generate_post(ctx: WriterDep, data: GenerateRequest, request: Request) -> Any:
    plan = await service.prepare_generate(ctx, data)
    if wants_stream(request):

        async def run(on_token: TokenSink) -> GenerateResult:
            return await service.generate_posts(ctx, plan, data, on_token)

        return streamed_response(run)
    return await service.generate_posts(ctx, plan, data)


@router.post(
    "/rewrite",
    response_model=RewriteResult,
    responses=_streamable("The rewritten text, checked by the named platform's rules."),
    description="Shorten (to fit a platform), expand, rephrase, fix grammar, translate, add "
    "hashtags or split into a thread.\n\n" + DESCRIPTION,
)
async def rewrite_post(ctx: WriterDep, data: RewriteRequest, request: Request) -> Any:
    plan = await service.prepare_rewrite(ctx, data)
    if wants_stream(request):

        async def run(on_token: TokenSink) -> RewriteResult:
            return await service.rewrite_text(ctx, plan, data, on_token)

        return streamed_response(run)
    return await service.rewrite_text(ctx, plan, data)


@router.post(
    "/alt-text",
    response_model=AltTextResult,
    responses={
        **AI_RESPONSES,
        **NOT_FOUND,
        422: problem_doc(
            "Invalid fields, the model declined (`ai-refused`), or the configured model cannot "
            "read pictures (`ai-model-cannot-see`)."
        ),
    },
)
async def generate_alt_text(ctx: WriterDep, data: AltTextRequest) -> AltTextResult:
    """Alt text for a stored picture, written by a vision-capable model."""
    return await service.describe_picture(ctx, data)


@router.post(
    "/batches",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Batch,
    responses={
        **AI_RESPONSES,
        503: problem_doc("No model is configured, or the job queue is unavailable."),
    },
)
async def create_ai_batch(
    ctx: WriterDep, data: BatchCreate, request: Request, response: Response
) -> Batch:
    """Turn a content plan into drafts in the background; poll the batch for progress."""
    batch = await batches.create_batch(ctx, resources_of(request).redis, data)
    response.headers["Location"] = f"/v1/ai/batches/{batch.id}"
    return batch


_NO_MODEL: Responses = {503: AI_RESPONSES[503]}


@router.get("/batches/{batch_id}", response_model=Batch, responses=NOT_FOUND | _NO_MODEL)
async def get_ai_batch(ctx: ReaderDep, batch_id: uuid.UUID) -> Batch:
    """A content plan's progress: its posts, each planned, written, drafted or failed."""
    return await batches.get_batch(ctx, batch_id)


@router.get("/usage", response_model=AiUsageReport, responses=_NO_MODEL)
async def get_ai_usage(ctx: ReaderDep) -> AiUsageReport:
    """Tokens used this month by the workspace, per person and API key, against its quota."""
    return await service.usage_report(ctx)
