"""What the AI assistant does: write variants per platform, rewrite, describe pictures,
report usage, and accept content plans. Every answer the model gives is untrusted text: it
is parsed into bounded shapes and checked by each platform's own ``validate()`` like any
post, and what still fails is returned with its problems listed, never silently."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.ai import errors, repository
from herald_api.ai.fitting import plain_text_budget, split_into_thread
from herald_api.ai.model import Caller, Model
from herald_api.ai.pictures import read_picture
from herald_api.ai.prompts import POSTS_SCHEMA, alt_text, generate, rewrite
from herald_api.ai.prompts.rewrite import Action
from herald_api.ai.quota import month_of
from herald_api.ai.schemas import (
    AiUsageReport,
    AltTextRequest,
    AltTextResult,
    CallerUsage,
    GenerateRequest,
    GenerateResult,
    PlatformVariants,
    RewriteRequest,
    RewriteResult,
    Variant,
)
from herald_api.ai.streaming import TextDelta, TextDeltas
from herald_api.posts.schemas import MAX_CONTENT_LENGTH, MAX_THREAD_POSTS
from herald_api.problems import FieldProblem, ProblemError
from herald_common import clock
from herald_common.db.repositories.accounts import AccountBrief, account_briefs
from herald_common.platforms.base import Platform, PostContent
from herald_common.settings import Settings

T = TypeVar("T")
# Where a problem of ``validate()`` points, in the AI answers' words.
_FIELDS = {"content": "text"}
# What a streamed token is handed to: the platform it is being written for, and the text.
TokenSink = Callable[[str | None, TextDelta], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AiContext:
    session: AsyncSession
    caller: Caller
    settings: Settings
    platforms: dict[str, Platform]
    model: Model | None
    # How long a call may wait for the app-wide budgets: short for a person, unbounded
    # (None) for the batch worker.
    max_wait: float | None

    @property
    def workspace_id(self) -> uuid.UUID:
        return self.caller.workspace_id

    def require_model(self) -> Model:
        if self.model is None:
            raise errors.not_configured()
        return self.model


class _Post(BaseModel):
    text: str = Field(max_length=MAX_CONTENT_LENGTH)
    thread: list[str] = Field(default_factory=list, max_length=MAX_THREAD_POSTS)


class _Posts(BaseModel):
    variants: list[_Post]


def _parse_posts(content: str) -> list[_Post]:
    """The model's JSON as bounded posts: NUL characters dropped (Postgres cannot store
    them), empty thread posts dropped, at least one variant with some text."""
    posts = _Posts.model_validate_json(content).variants
    cleaned = []
    for post in posts:
        text = post.text.replace("\x00", "").strip()
        thread = [t.replace("\x00", "").strip() for t in post.thread]
        cleaned.append(_Post(text=text, thread=[t for t in thread if t]))
    if not any(p.text for p in cleaned):
        raise ValueError("no variant has any text")
    return [p for p in cleaned if p.text]


@dataclass(frozen=True, slots=True)
class _Fitted:
    text: str
    thread: tuple[str, ...]
    problems: list[FieldProblem]


def fit(platform: Platform, post: _Post, *, may_split: bool) -> _Fitted:
    """``post`` as the platform's rules see it; too long for one post of a platform that
    threads (and ``may_split``), it is cut into a thread between words when that passes."""
    thread = tuple(post.thread)
    found = platform.validate(PostContent(text=post.text, thread=thread))
    if found and may_split and platform.threads:
        split = split_into_thread(platform, " ".join((post.text, *thread)))
        if split is not None and not platform.validate(PostContent(text=split[0], thread=split[1])):
            return _Fitted(split[0], split[1], [])
    problems = [FieldProblem(field=_FIELDS.get(p.field, p.field), message=p.message) for p in found]
    return _Fitted(post.text, thread, problems)


async def workspace_accounts(
    ctx: AiContext, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, AccountBrief]:
    """The workspace's accounts among ``account_ids``, refusing (422, by path) any other."""
    accounts = await account_briefs(ctx.session, ctx.workspace_id, account_ids)
    missing = [
        FieldProblem(
            field=f"account_ids[{i}]", message="No account with this id in this workspace."
        )
        for i, account_id in enumerate(account_ids)
        if account_id not in accounts
    ]
    if missing:
        raise ProblemError(422, "validation-failed", "Some accounts were not found.", missing)
    return accounts


async def _destinations(
    ctx: AiContext, account_ids: Sequence[uuid.UUID], platforms: Sequence[str]
) -> dict[str, list[uuid.UUID]]:
    """Each platform asked for, with the requested accounts on it, in the order named."""
    accounts = await workspace_accounts(ctx, account_ids)
    found: dict[str, list[uuid.UUID]] = {}
    for account_id in account_ids:
        found.setdefault(accounts[account_id].platform, []).append(account_id)
    for name in platforms:
        found.setdefault(name, [])
    return found


@dataclass(frozen=True, slots=True)
class GeneratePlan:
    model: Model
    destinations: dict[str, list[uuid.UUID]]


async def prepare_generate(ctx: AiContext, request: GenerateRequest) -> GeneratePlan:
    """Everything that can refuse a generate before the model is asked (so a streamed
    request is refused with a plain problem rather than an error event)."""
    model = ctx.require_model()
    destinations = await _destinations(ctx, request.account_ids, request.platforms)
    await model.check_quota(ctx.caller)
    return GeneratePlan(model, destinations)


async def generate_posts(
    ctx: AiContext, plan: GeneratePlan, request: GenerateRequest, on_token: TokenSink | None = None
) -> GenerateResult:
    """Variants for every platform, written concurrently (one call each, plus one repair
    call for a platform whose variants fail its rules)."""

    async def one(name: str) -> list[Variant]:
        platform = ctx.platforms[name]
        messages = generate.messages(
            brief=request.brief,
            platform=name,
            max_characters=plain_text_budget(platform),
            threads=platform.threads,
            variants=request.variants,
            link=str(request.link) if request.link else None,
            tone=request.tone,
            language=request.language,
        )
        return await _write(ctx, plan.model, platform, messages, request.variants, on_token)

    written = await _gather([one(name) for name in plan.destinations])
    return GenerateResult(
        model=plan.model.name,
        results=[
            PlatformVariants(platform=name, account_ids=accounts, variants=variants)
            for (name, accounts), variants in zip(plan.destinations.items(), written, strict=True)
        ],
    )


async def _write(
    ctx: AiContext,
    model: Model,
    platform: Platform,
    messages: list[ChatCompletionMessageParam],
    wanted: int,
    on_token: TokenSink | None,
    *,
    task: str = "generate",
    may_split: bool = True,
    keep_thread: bool = True,
) -> list[Variant]:
    sink = None
    if on_token is not None:
        deltas = TextDeltas()

        async def sink_fn(fragment: str) -> None:
            for delta in deltas.feed(fragment):
                await on_token(platform.name, delta)

        sink = sink_fn
    posts = await model.complete_json(
        ctx.caller, task, messages, POSTS_SCHEMA, _parse_posts, max_wait=ctx.max_wait, on_token=sink
    )
    posts = (
        posts[:wanted]
        if keep_thread
        else [p.model_copy(update={"thread": []}) for p in posts[:wanted]]
    )
    fitted = [fit(platform, post, may_split=may_split) for post in posts]
    failing = [i for i, f in enumerate(fitted) if f.problems]
    repaired: set[int] = set()
    if failing:
        answer = json.dumps({"variants": [p.model_dump() for p in posts]}, ensure_ascii=False)
        problems: list[dict[str, object]] = [
            {
                "variant": i + 1,
                "text": fitted[i].text,
                "thread": list(fitted[i].thread),
                "problems": [p.message for p in fitted[i].problems],
            }
            for i in failing
        ]
        fixes = await model.complete_json(
            ctx.caller,
            task,
            generate.repair(messages, answer, problems),
            POSTS_SCHEMA,
            _parse_posts,
            max_wait=ctx.max_wait,
        )
        for i, fix in zip(failing, fixes, strict=False):
            if not keep_thread:
                fix = fix.model_copy(update={"thread": []})
            fitted[i] = fit(platform, fix, may_split=may_split)
            repaired.add(i)
    return [
        Variant(
            text=f.text,
            thread=list(f.thread),
            valid=not f.problems,
            problems=f.problems,
            repaired=i in repaired,
        )
        for i, f in enumerate(fitted)
    ]


@dataclass(frozen=True, slots=True)
class RewritePlan:
    model: Model
    platform: Platform | None


async def prepare_rewrite(ctx: AiContext, request: RewriteRequest) -> RewritePlan:
    model = ctx.require_model()
    platform = ctx.platforms[request.platform] if request.platform else None
    if request.action == Action.SPLIT_THREAD and platform is not None and not platform.threads:
        raise ProblemError(
            422,
            "validation-failed",
            f"{request.platform} does not publish threads.",
            [FieldProblem(field="platform", message="Pick a platform that threads (X, Bluesky).")],
        )
    await model.check_quota(ctx.caller)
    return RewritePlan(model, platform)


async def rewrite_text(
    ctx: AiContext, plan: RewritePlan, request: RewriteRequest, on_token: TokenSink | None = None
) -> RewriteResult:
    platform = plan.platform
    messages = rewrite.messages(
        action=request.action,
        text=request.text,
        platform=request.platform,
        max_characters=plain_text_budget(platform) if platform else None,
        language=request.language,
    )
    split = request.action == Action.SPLIT_THREAD
    if platform is None:
        posts = await plan.model.complete_json(
            ctx.caller,
            "rewrite",
            messages,
            POSTS_SCHEMA,
            _parse_posts,
            max_wait=ctx.max_wait,
            on_token=_unplaced(on_token),
        )
        thread = list(posts[0].thread) if split else []
        variant = Variant(
            text=posts[0].text, thread=thread, valid=True, problems=[], repaired=False
        )
    else:
        # Only a split makes a thread: a thread the model adds to a shortened text is dropped.
        [variant] = await _write(
            ctx,
            plan.model,
            platform,
            messages,
            1,
            on_token,
            task="rewrite",
            may_split=split,
            keep_thread=split,
        )
    return RewriteResult(
        model=plan.model.name,
        action=request.action,
        platform=request.platform,
        text=variant.text,
        thread=variant.thread,
        valid=variant.valid,
        problems=variant.problems,
    )


def _unplaced(on_token: TokenSink | None) -> Callable[[str], Awaitable[None]] | None:
    if on_token is None:
        return None
    deltas = TextDeltas()

    async def sink(fragment: str) -> None:
        for delta in deltas.feed(fragment):
            await on_token(None, delta)

    return sink


async def describe_picture(ctx: AiContext, request: AltTextRequest) -> AltTextResult:
    model = ctx.require_model()
    if not ctx.settings.openai_model_sees_images:
        raise errors.cannot_see_images(model.name)
    picture = await read_picture(ctx.session, ctx.workspace_id, request.media_id)
    answer = await model.complete(
        ctx.caller,
        "alt_text",
        alt_text.messages(data_url=picture.data_url, language=request.language),
        max_wait=ctx.max_wait,
    )
    text = " ".join(answer.content.replace("\x00", "").split())
    if not text:
        raise errors.bad_output("the alt text is empty")
    if len(text) > alt_text.MAX_ALT_TEXT:
        raise errors.bad_output(f"the alt text is longer than {alt_text.MAX_ALT_TEXT} characters")
    return AltTextResult(model=model.name, media_id=request.media_id, alt_text=text)


async def usage_report(ctx: AiContext) -> AiUsageReport:
    start, resets_at = month_of(clock.now())
    lines = await repository.usage_by_caller(ctx.session, ctx.workspace_id, start)
    used = sum(line.prompt_tokens + line.completion_tokens for line in lines)
    quota = ctx.settings.ai_monthly_token_quota
    return AiUsageReport(
        period_start=start,
        resets_at=resets_at,
        quota_tokens=quota,
        used_tokens=used,
        remaining_tokens=max(0, quota - used),
        callers=[
            CallerUsage(
                user_id=line.user_id,
                api_key_id=line.api_key_id,
                prompt_tokens=line.prompt_tokens,
                completion_tokens=line.completion_tokens,
                total_tokens=line.prompt_tokens + line.completion_tokens,
                calls=line.calls,
            )
            for line in lines
        ],
    )


async def _gather(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Every call run to its end (each one's tokens are recorded either way); the first
    failure is then raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]
