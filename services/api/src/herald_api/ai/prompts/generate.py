"""Writing new posts for one platform from a brief."""

from __future__ import annotations

from openai.types.chat import ChatCompletionMessageParam

from herald_api.ai.prompts import UNTRUSTED, as_user_json

SYSTEM = (
    "You write social-media posts for Herald, a scheduling tool. From the brief in the user "
    "message, write the requested number of distinct variants of one post for the named "
    "platform, each within that platform's length (`max_characters` of plain text; links, "
    "emoji and mentions may count differently there). Keep hashtags and mentions few and "
    "relevant, include the link when one is given, and follow the tone and language when "
    "given. When `threads` is true and the brief needs more room than one post, put the rest "
    "in `thread` as further posts, each within the same length; otherwise leave `thread` "
    "empty. Answer with the JSON object the schema describes. " + UNTRUSTED
)

REPAIR = (
    "Some variants break the platform's rules, as listed. Rewrite each listed variant so it "
    "keeps its meaning and passes; answer with the same JSON shape holding only the "
    "rewritten variants, in the order listed."
)


def messages(
    *,
    brief: str,
    platform: str,
    max_characters: int,
    threads: bool,
    variants: int,
    link: str | None,
    tone: str | None,
    language: str | None,
) -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": as_user_json(
                {
                    "brief": brief,
                    "link": link,
                    "tone": tone,
                    "language": language,
                    "platform": platform,
                    "max_characters": max_characters,
                    "threads": threads,
                    "variants": variants,
                }
            ),
        },
    ]


def repair(
    asked: list[ChatCompletionMessageParam], answer: str, problems: list[dict[str, object]]
) -> list[ChatCompletionMessageParam]:
    """The first exchange, then the problems of each failing variant."""
    return [
        {"role": "system", "content": SYSTEM + " " + REPAIR},
        *asked[1:],
        {"role": "assistant", "content": answer},
        {"role": "user", "content": as_user_json({"fix": problems})},
    ]
