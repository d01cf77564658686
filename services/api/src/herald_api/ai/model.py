"""Calling the model: budgets, quota, retries, streaming, refusals and usage rows.

``AsyncOpenAI`` speaks the wire format; this module decides what a failure means. The SDK's
own retries are off (``max_retries=0``) because it would sleep through a 429 inside itself,
where the app-wide buckets never learn of it; here a 429 drains the bucket it names first,
so every replica and worker waits, and then the call is tried again within the caller's
wait (limits.py). 5xx answers, timeouts and dropped connections are retried after
``HERALD_OPENAI_RETRY_BACKOFF_SECONDS`` (doubled each time), ``HERALD_OPENAI_MAX_RETRIES``
times, then answered 502 or 504.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.ai import errors, limits, repository
from herald_api.ai.quota import check_quota
from herald_api.problems import ProblemError
from herald_common import clock
from herald_common.db.models import AiUsage
from herald_common.http import TRANSPORT_ERRORS
from herald_common.logging import get_logger
from herald_common.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")
TokenSink = Callable[[str], Awaitable[None]]
Messages = Sequence[ChatCompletionMessageParam]
# Retryable statuses besides 5xx, as the OpenAI SDK itself retries them: request timeout and
# lock timeout (openai._base_client.BaseClient._should_retry).
RETRYABLE_STATUSES = frozenset({408, 409})
# What one picture sent at "low" detail costs on gpt-4o-mini, the dearest of OpenAI's vision
# models per picture (platform.openai.com/docs/guides/images-vision, "Calculating costs").
IMAGE_TOKENS = 2833
# What a stream that broke off halfway raises: an error event, or the connection failing.
_BROKEN_OFF: tuple[type[BaseException], ...] = (openai.APIError, *TRANSPORT_ERRORS)


@dataclass(frozen=True, slots=True)
class Caller:
    """On whose behalf the model is called: the usage row and the quota are theirs."""

    workspace_id: uuid.UUID
    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    batch_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    content: str
    prompt_tokens: int
    completion_tokens: int


class _Failed(Exception):
    """A call that may be tried again; ``problem`` is what to answer if it is not."""

    def __init__(self, problem: ProblemError, *, rate_limited: bool = False) -> None:
        super().__init__(problem.detail)
        self.problem = problem
        self.rate_limited = rate_limited


def build_client(settings: Settings, http: httpx.AsyncClient) -> AsyncOpenAI | None:
    """The SDK client over the process's shared HTTP client (its pool and transport), or
    None when no key is configured."""
    if settings.openai_api_key is None:
        return None
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=httpx.Timeout(settings.openai_timeout_seconds),
        max_retries=0,
        http_client=http,
    )


class Model:
    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        sessions: async_sessionmaker[AsyncSession],
        client: AsyncOpenAI,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.sessions = sessions
        self.client = client
        self.name = settings.openai_model

    async def check_quota(self, caller: Caller) -> None:
        async with self.sessions() as session:
            await check_quota(session, self.settings, caller.workspace_id, clock.now())

    async def complete(
        self,
        caller: Caller,
        task: str,
        messages: Messages,
        *,
        schema: dict[str, Any] | None = None,
        max_wait: float | None,
        on_token: TokenSink | None = None,
    ) -> Answer:
        """The model's answer to ``messages`` (JSON text when ``schema`` is given), its tokens
        recorded against ``caller``. With ``on_token`` the answer is streamed through it."""
        await self.check_quota(caller)
        prompt_tokens = _prompt_tokens(messages)
        reserve = prompt_tokens + self.settings.openai_max_completion_tokens
        attempt = 0
        while True:
            try:
                await limits.take(self.redis, self.settings, reserve, max_wait)
            except limits.BudgetExhausted as exc:
                raise errors.busy(exc.retry_after) from None
            try:
                if on_token is None:
                    answer = await self._once(messages, schema)
                else:
                    answer = await self._streamed(messages, schema, on_token)
            except _Failed as failure:
                if attempt >= self.settings.openai_max_retries:
                    raise failure.problem from None
                attempt += 1
                log.info("ai call retried", attempt=attempt, reason=failure.problem.slug)
                if not failure.rate_limited:  # a drained bucket makes take() wait instead
                    backoff = self.settings.openai_retry_backoff_seconds
                    await asyncio.sleep(backoff * 2 ** (attempt - 1))
                continue
            except _Usage as spent:  # refused or cut off: the tokens still count
                await self._record(caller, task, spent.answer, prompt_tokens)
                raise spent.problem from None
            await self._record(caller, task, answer, prompt_tokens)
            return answer

    async def complete_json(
        self,
        caller: Caller,
        task: str,
        messages: Messages,
        schema: dict[str, Any],
        parse: Callable[[str], T],
        *,
        max_wait: float | None,
        on_token: TokenSink | None = None,
    ) -> T:
        """``parse`` of the model's structured answer. An answer that does not parse (not
        JSON, or not the shape asked for) is asked for once more, saying what was wrong; a
        second one is a 502."""
        answer = await self.complete(
            caller, task, messages, schema=schema, max_wait=max_wait, on_token=on_token
        )
        try:
            return parse(answer.content)
        except ValueError as exc:
            log.info("ai answer did not parse; asking again", task=task, error=str(exc)[:200])
            again: list[ChatCompletionMessageParam] = [
                *messages,
                {"role": "assistant", "content": answer.content},
                {
                    "role": "user",
                    "content": "That answer was not a JSON object of the required schema "
                    f"({_short(exc)}). Answer again with only that JSON object.",
                },
            ]
        answer = await self.complete(caller, task, again, schema=schema, max_wait=max_wait)
        try:
            return parse(answer.content)
        except ValueError as exc:
            raise errors.bad_output(_short(exc)) from None

    async def _once(self, messages: Messages, schema: dict[str, Any] | None) -> Answer:
        try:
            raw = await self.client.chat.completions.with_raw_response.create(
                **self._arguments(messages, schema)
            )
        except openai.APIError as exc:
            raise await self._failure(exc) from exc
        await limits.note_headers(self.redis, self.settings, raw.headers)
        try:
            completion = raw.parse()
        except (ValueError, openai.APIResponseValidationError) as exc:
            raise errors.bad_output("the response body is not a chat completion") from exc
        if not completion.choices:
            raise errors.bad_output("the response has no choices")
        choice = completion.choices[0]
        usage = completion.usage
        answer = Answer(
            content=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )
        _check_finish(answer, choice.message.refusal, choice.finish_reason)
        return answer

    async def _streamed(
        self, messages: Messages, schema: dict[str, Any] | None, on_token: TokenSink
    ) -> Answer:
        try:
            stream = await self.client.chat.completions.create(
                **self._arguments(messages, schema),
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.APIError as exc:
            raise await self._failure(exc) from exc
        await limits.note_headers(self.redis, self.settings, stream.response.headers)
        content: list[str] = []
        refusal: list[str] = []
        finish: str | None = None
        prompt_tokens = completion_tokens = 0
        try:
            async for chunk in stream:
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens
                    completion_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices[:1]:
                    if choice.delta.refusal:
                        refusal.append(choice.delta.refusal)
                    if choice.delta.content:
                        content.append(choice.delta.content)
                        await on_token(choice.delta.content)
                    finish = choice.finish_reason or finish
        except _BROKEN_OFF as exc:
            # Tokens were shown already: trying again would show a second, different answer.
            raise errors.upstream(f"The AI model's answer broke off: {_short(exc)}") from exc
        finally:
            await stream.close()
        answer = Answer("".join(content), prompt_tokens, completion_tokens)
        _check_finish(answer, "".join(refusal) or None, finish)
        return answer

    def _arguments(self, messages: Messages, schema: dict[str, Any] | None) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.name,
            "messages": list(messages),
            "max_completion_tokens": self.settings.openai_max_completion_tokens,
        }
        if schema is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "strict": True, "schema": schema},
            }
        return arguments

    async def _failure(self, exc: openai.APIError) -> Exception:
        """What an SDK error means: a retryable _Failed, or a ProblemError to answer now."""
        if isinstance(exc, openai.APITimeoutError):
            return _Failed(errors.timed_out(self.settings.openai_timeout_seconds))
        if isinstance(exc, openai.APIConnectionError):
            return _Failed(errors.upstream("The AI model could not be reached."))
        if isinstance(exc, openai.RateLimitError):
            if exc.code == "insufficient_quota":  # billing, not pace: waiting will not help
                return errors.upstream(
                    "The AI provider's account has no quota left; an operator must add credit."
                )
            wait = await limits.note_rate_limited(
                self.redis, self.settings, exc.response.headers, exc.type
            )
            return _Failed(errors.busy(wait), rate_limited=True)
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            log.warning("ai call failed", status=status, type=exc.type, code=exc.code)
            if status >= 500 or status in RETRYABLE_STATUSES:
                return _Failed(errors.upstream(f"The AI model failed (HTTP {status})."))
            if exc.code == "context_length_exceeded":
                return errors.too_long_for_model()
            # 400/401/403/404: Herald's configuration or request is wrong; the provider's own
            # message may quote the key, so only its type and code are passed on.
            kind = ", ".join(str(v) for v in (exc.type, exc.code) if v)
            return errors.upstream(
                f"The AI model refused Herald's request (HTTP {status}"
                + (f": {kind}" if kind else "")
                + "); an operator should check the HERALD_OPENAI_* settings."
            )
        return errors.upstream(f"The AI model's answer could not be read: {_short(exc)}")

    async def _record(self, caller: Caller, task: str, answer: Answer, prompt_tokens: int) -> None:
        """One usage row per call, committed at once: a request that fails later still
        spent the tokens. A server that reports no usage is charged an estimate."""
        prompt = answer.prompt_tokens or prompt_tokens
        completion = answer.completion_tokens or limits.estimate_tokens(len(answer.content))
        async with self.sessions() as session:
            await repository.record_usage(
                session,
                AiUsage(
                    workspace_id=caller.workspace_id,
                    user_id=caller.user_id,
                    api_key_id=caller.api_key_id,
                    batch_id=caller.batch_id,
                    model=self.name,
                    task=task,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                ),
            )
            await session.commit()


class _Usage(Exception):
    """A call that answered but cannot be used (refused, cut off): its tokens still count."""

    def __init__(self, problem: ProblemError, answer: Answer) -> None:
        super().__init__(problem.detail)
        self.problem = problem
        self.answer = answer


def _check_finish(answer: Answer, refusal: str | None, finish: str | None) -> None:
    if refusal:
        raise _Usage(errors.refused(refusal), answer)
    if finish == "content_filter":
        raise _Usage(errors.refused("the provider's content filter stopped the answer."), answer)
    if finish == "length":
        raise _Usage(errors.bad_output("it was cut off at the token limit"), answer)


def _prompt_tokens(messages: Messages) -> int:
    """An estimate of what the model will count for ``messages``: text at four characters a
    token, each picture at IMAGE_TOKENS (a data URL's characters say nothing of it)."""
    characters = images = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            characters += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    images += 1
                else:
                    characters += len(str(part.get("text", "")))
    return limits.estimate_tokens(characters) + images * IMAGE_TOKENS


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
