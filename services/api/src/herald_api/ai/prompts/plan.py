"""Turning a content plan ("three posts a week for the next month about X") into briefs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openai.types.chat import ChatCompletionMessageParam

from herald_api.ai.prompts import UNTRUSTED, as_user_json

SYSTEM = (
    "You plan social-media content for Herald, a scheduling tool. From the plan in the user "
    "message, list the posts it asks for, at most `max_posts`, in publishing order: for each "
    "a one-paragraph `brief` of what that post says, and `publish_at`, an ISO 8601 date-time "
    "with offset after `now` when the plan implies a schedule, else an empty string. Answer "
    "with the JSON object the schema describes. " + UNTRUSTED
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "posts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"brief": {"type": "string"}, "publish_at": {"type": "string"}},
                "required": ["brief", "publish_at"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["posts"],
    "additionalProperties": False,
}


def messages(
    *, plan: str, max_posts: int, now: datetime, language: str | None, tone: str | None
) -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": as_user_json(
                {
                    "plan": plan,
                    "max_posts": max_posts,
                    "now": now.isoformat(),
                    "language": language,
                    "tone": tone,
                }
            ),
        },
    ]
