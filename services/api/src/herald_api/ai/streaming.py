"""Turning the model's streamed JSON into the text a person sees appear.

A streamed structured answer arrives as fragments of ``{"variants": [{"text": ..., "thread":
[...]}]}``. Each fragment is re-read as partial JSON (jiter's ``trailing-strings`` mode keeps
the unfinished string), and only what is new in each text is handed on, located by variant
and part (0 is the post, 1.. the posts of its thread), so a web app can show the words as
they come without showing JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jiter


@dataclass(frozen=True, slots=True)
class TextDelta:
    variant: int
    part: int
    text: str


@dataclass(slots=True)
class TextDeltas:
    _buffer: list[str] = field(default_factory=list)
    _shown: dict[tuple[int, int], int] = field(default_factory=dict)

    def feed(self, fragment: str) -> list[TextDelta]:
        self._buffer.append(fragment)
        try:
            partial = jiter.from_json(
                "".join(self._buffer).encode(), partial_mode="trailing-strings"
            )
        except ValueError:
            return []  # not yet the start of an object
        deltas = []
        for (variant, part), text in _texts(partial):
            shown = self._shown.get((variant, part), 0)
            if len(text) > shown:
                deltas.append(TextDelta(variant, part, text[shown:]))
                self._shown[(variant, part)] = len(text)
        return deltas


def _texts(partial: Any) -> list[tuple[tuple[int, int], str]]:
    if not isinstance(partial, dict) or not isinstance(partial.get("variants"), list):
        return []
    found = []
    for variant, item in enumerate(partial["variants"]):
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("text"), str):
            found.append(((variant, 0), item["text"]))
        thread = item.get("thread")
        if isinstance(thread, list):
            found += [
                ((variant, part), text)
                for part, text in enumerate(thread, start=1)
                if isinstance(text, str)
            ]
    return found
