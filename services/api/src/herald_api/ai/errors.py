"""What goes wrong with the model, as problem+json. Every AI failure a caller can see is
built here, so the endpoints, the event stream and the batch worker say the same things."""

from __future__ import annotations

import math
from datetime import datetime

from herald_api.problems import ProblemError, Responses, problem_doc

CONFIGURE = (
    "Set HERALD_OPENAI_API_KEY (and HERALD_OPENAI_BASE_URL and HERALD_OPENAI_MODEL for a "
    "server other than OpenAI's: Azure, vLLM, Ollama, LM Studio) and restart the API."
)


def not_configured() -> ProblemError:
    return ProblemError(
        503, "ai-not-configured", "The AI assistant is not configured. " + CONFIGURE
    )


def busy(retry_after: float) -> ProblemError:
    seconds = max(1, math.ceil(retry_after))
    return ProblemError(
        429,
        "ai-rate-limited",
        f"The AI model is at its request or token limit for now; try again in {seconds} s.",
        headers={"Retry-After": str(seconds)},
    )


def quota_exceeded(used: int, quota: int, resets_at: datetime, now: datetime) -> ProblemError:
    seconds = max(1, math.ceil((resets_at - now).total_seconds()))
    when = resets_at.isoformat().replace("+00:00", "Z")
    return ProblemError(
        429,
        "ai-quota-exceeded",
        f"This workspace has used {used:,} of its {quota:,} AI tokens this month; "
        f"the quota resets at {when}.",
        headers={"Retry-After": str(seconds)},
    )


def refused(words: str) -> ProblemError:
    return ProblemError(422, "ai-refused", f"The AI model declined: {words}")


def too_long_for_model() -> ProblemError:
    return ProblemError(
        422, "ai-input-too-long", "The text is longer than the AI model can read; shorten it."
    )


def cannot_see_images(model: str) -> ProblemError:
    return ProblemError(
        422,
        "ai-model-cannot-see",
        f"The configured AI model ({model}) cannot read pictures, so it cannot write alt text. "
        "Configure a vision-capable model (HERALD_OPENAI_MODEL) and set "
        "HERALD_OPENAI_MODEL_SEES_IMAGES=true.",
    )


def upstream(detail: str) -> ProblemError:
    return ProblemError(502, "ai-upstream-error", detail)


def bad_output(detail: str) -> ProblemError:
    return ProblemError(
        502, "ai-bad-output", f"The AI model's answer was not what Herald asked for: {detail}"
    )


def timed_out(seconds: float) -> ProblemError:
    return ProblemError(
        504, "ai-timeout", f"The AI model did not answer within {seconds:g} s; try again."
    )


# Documented on every AI operation.
AI_RESPONSES: Responses = {
    422: problem_doc(
        "Invalid fields, or the model declined (`ai-refused`, with its words), or the text is "
        "too long for it (`ai-input-too-long`)."
    ),
    429: problem_doc(
        "The workspace's monthly token quota is used up (`ai-quota-exceeded`, saying when it "
        "resets), or the model's app-wide request or token budget is (`ai-rate-limited`); "
        "`Retry-After` says how many seconds to wait."
    ),
    502: problem_doc(
        "The model failed after retries (`ai-upstream-error`) or answered something other than "
        "what was asked (`ai-bad-output`)."
    ),
    503: problem_doc("No model is configured (`ai-not-configured`, saying how to set one up)."),
    504: problem_doc("The model did not answer in time, after retries (`ai-timeout`)."),
}
