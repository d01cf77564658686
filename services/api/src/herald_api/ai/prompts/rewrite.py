"""Rewriting a person's text: shorter, longer, rephrased, corrected, translated, with
hashtags, or split into a thread."""

from __future__ import annotations

from enum import StrEnum

from openai.types.chat import ChatCompletionMessageParam

from herald_api.ai.prompts import UNTRUSTED, as_user_json


class Action(StrEnum):
    SHORTEN = "shorten"
    EXPAND = "expand"
    REPHRASE = "rephrase"
    FIX_GRAMMAR = "fix_grammar"
    TRANSLATE = "translate"
    ADD_HASHTAGS = "add_hashtags"
    SPLIT_THREAD = "split_thread"


INSTRUCTIONS = {
    Action.SHORTEN: "Shorten the text so it fits `max_characters`, keeping what matters.",
    Action.EXPAND: "Expand the text with relevant detail, staying within `max_characters` "
    "when given.",
    Action.REPHRASE: "Say the same thing in other words, keeping its meaning and length.",
    Action.FIX_GRAMMAR: "Correct spelling, grammar and punctuation only; change nothing else.",
    Action.TRANSLATE: "Translate the text into `language`, keeping hashtags, mentions and "
    "links as they are.",
    Action.ADD_HASHTAGS: "Add a few relevant hashtags to the text, changing nothing else.",
    Action.SPLIT_THREAD: "Split the text into a thread: `text` is its first post and `thread` "
    "the posts after it, each within `max_characters`, cut at natural breaks.",
}

SYSTEM = (
    "You edit social-media posts for Herald, a scheduling tool. Apply the action named in the "
    "user message to its `text`: {instruction} Answer with the JSON object the schema "
    "describes, holding exactly one variant; leave `thread` empty unless the action is to "
    "split into a thread. " + UNTRUSTED
)


def messages(
    *,
    action: Action,
    text: str,
    platform: str | None,
    max_characters: int | None,
    language: str | None,
) -> list[ChatCompletionMessageParam]:
    return [
        {"role": "system", "content": SYSTEM.format(instruction=INSTRUCTIONS[action])},
        {
            "role": "user",
            "content": as_user_json(
                {
                    "action": action.value,
                    "text": text,
                    "platform": platform,
                    "max_characters": max_characters,
                    "language": language,
                }
            ),
        },
    ]
