"""Making text fit a platform, asking only the platform's own ``validate()``.

Nothing here counts characters: a platform's rules (weighted length, graphemes, URL
lengths) live in its adapter and nowhere else, so its ``validate()`` is the oracle: how
much plain text it takes (for the prompt), and where a long text can be cut into the posts
of a thread on the platforms that thread.
"""

from __future__ import annotations

from functools import lru_cache

from herald_api.posts.schemas import MAX_CONTENT_LENGTH, MAX_THREAD_POSTS
from herald_common.platforms.base import ContentProblem, Platform, PostContent


def text_problems(
    platform: Platform, text: str, thread: tuple[str, ...] = ()
) -> list[ContentProblem]:
    return platform.validate(PostContent(text=text, thread=thread))


def _fits(platform: Platform, text: str) -> bool:
    return not any(p.field == "content" for p in text_problems(platform, text))


@lru_cache(maxsize=64)
def plain_text_budget(platform: Platform) -> int:
    """The longest run of plain letters one post of ``platform`` takes, found by bisection
    over ``validate()``: what the prompt tells the model to write within."""
    low, high = 1, MAX_CONTENT_LENGTH
    if _fits(platform, "a" * high):
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if _fits(platform, "a" * middle):
            low = middle
        else:
            high = middle - 1
    return low


def split_into_thread(platform: Platform, text: str) -> tuple[str, tuple[str, ...]] | None:
    """``text`` as the posts of a thread, each as long as ``platform`` takes, cut between
    words (inside a word only when one word alone is too long); None when it would need more
    than a thread may hold."""
    words = text.split()
    parts: list[str] = []
    while words:
        if len(parts) == MAX_THREAD_POSTS:
            return None
        count = _most_words(platform, words)
        if count == 0:
            head, tail = _cut_word(platform, words[0])
            parts.append(head)
            words[0] = tail
            continue
        parts.append(" ".join(words[:count]))
        words = words[count:]
    if not parts:
        return None
    return parts[0], tuple(parts[1:])


def _most_words(platform: Platform, words: list[str]) -> int:
    low, high = 0, len(words)
    while low < high:
        middle = (low + high + 1) // 2
        if _fits(platform, " ".join(words[:middle])):
            low = middle
        else:
            high = middle - 1
    return low


def _cut_word(platform: Platform, word: str) -> tuple[str, str]:
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if _fits(platform, word[:middle]):
            low = middle
        else:
            high = middle - 1
    return word[:low], word[low:]
