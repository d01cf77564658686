"""X's weighted length against the official twitter-text library (npm, run by node).

Strings are generated deterministically (seeded) from pieces that stress the rule: URLs with
and without a scheme, emoji sequences (ZWJ families, skin tones, flags, keycaps, tags),
CJK, Hangul, combining marks, the light punctuation ranges, and text glued to all of them.
Emoji are drawn from those twemoji-parser 11 (bundled with twitter-text 3.1.0) knows (Emoji
12.0): for newer emoji, and for sequences Unicode's grammar allows but does not recommend,
Herald deliberately counts one emoji where the old package counts the parts (see text.py).
"""

from __future__ import annotations

import json
import random
import subprocess

import pytest

from herald_common.platforms.text import x_extract_urls, x_weighted_length
from tests.peers.node import peer_dir

SAMPLES = 600
SEED = 20261123

URLS = [
    "https://example.com",
    "http://example.com/path?q=1&r=2",
    "https://sub.example.co.uk/a/b_(c)",
    "example.com",
    "herald.dev/docs",
    "www.wikipedia.org/wiki/Foo_(bar)",
    "https://t.co/abc123XYZ",
    "https://例え.jp/パス",
    "http://localhost:8000",
    "foo.bar",
    "a.co",
    "https://example.com/" + "x" * 60,
    "mail@example.com",
    "no.such-tld.zz",
    "https://xn--bcher-kva.example/",
]
EMOJI = [
    "😀",
    "👍",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "👩🏽‍💻",
    "🏳️‍🌈",
    "🇫🇷",
    "🇯🇵",
    "🇺🇸",
    "1️⃣",
    "#️⃣",
    "❤️",
    "❤",
    "©",
    "©️",
    "®",
    "™",
    "☺️",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "✨",
    "🎉",
    "🏽",
]
SCRIPTS = [
    "漢字",
    "かな",
    "カタカナ",
    "한국어",
    "ㄱ",
    "русский",
    "ελληνικά",
    "עברית",
    "العربية",
    "हिन्दी",
    "ไทย",
    "café",
    "e\u0301",
    "a\u0308\u0301",
    "n\u0303",
    "\u1100\u1161\u11a8",
    "“quotes”",
    "—dash\u2013",
    "…",
    "‰",
    "†",
    "\u2028",
    "ﬁ",
    "\uff21",
    "\U0001d518",
    "\U0001d7d8",
]
WORDS = ["hello", "Herald", "post", "@alice", "#tag", "$AAPL", "(", ")", ".", ",", "!", "-", "_"]
SEPARATORS = [" ", " ", " ", "", "\n", "\t", "  "]


def generated_texts() -> list[str]:
    rng = random.Random(SEED)
    pools = [URLS, EMOJI, SCRIPTS, WORDS]
    texts = []
    for _ in range(SAMPLES):
        pieces = []
        for _ in range(rng.randint(1, 40)):
            pool = rng.choices(pools, weights=[2, 3, 3, 3])[0]
            piece = rng.choice(pool)
            if piece == "🏽":
                # A skin tone glued to a ZWJ family is a sequence Unicode's grammar allows
                # but its list does not: there Herald counts one emoji (see text.py).
                piece = " " + piece
            pieces.append(piece + rng.choice(SEPARATORS))
        texts.append("".join(pieces))
    return texts


def twitter_text_lengths(texts: list[str]) -> list[int]:
    folder = peer_dir("twitter-text")
    result = subprocess.run(
        ["node", "weighted_length.js"],
        cwd=folder,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lengths: list[int] = json.loads(result.stdout)
    return lengths


def test_weighted_length_agrees_with_twitter_text_on_generated_posts() -> None:
    texts = generated_texts()
    expected = twitter_text_lengths(texts)

    disagreements = [
        (text, ours, theirs)
        for text, ours, theirs in zip(texts, map(x_weighted_length, texts), expected, strict=True)
        if ours != theirs
    ]

    assert len(texts) >= 500
    assert disagreements == []
    # The samples really do span the rule: short and long, over and under the limit.
    assert min(expected) < 30 and max(expected) > 280


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", 5),
        ("漢字", 4),  # CJK weighs 2
        ("👨‍👩‍👧‍👦", 2),  # a ZWJ family is one emoji
        ("👍🏽", 2),
        ("🇫🇷", 2),
        ("©", 1),  # text presentation, inside the light ranges
        ("©\ufe0f", 2),  # ... made an emoji
        ("e\u0301", 1),  # NFC makes it é
        ("https://example.com/" + "x" * 100, 23),
        ("herald.dev", 23),  # no scheme, known TLD
        ("no.such-tld.zz", 14),  # unknown TLD: text
        ("mail@example.com", 16),  # an e-mail address is not a link
        ("\u2014\u2019", 2),  # dash and quote: in the light punctuation ranges
        ("\u2026", 2),  # the ellipsis is not
    ],
)
def test_weighted_length_examples(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


def test_newer_emoji_sequences_count_as_one_emoji() -> None:
    # Phoenix (Emoji 15.1): twemoji-parser 11 does not know it and counts its parts (5);
    # Herald follows the Unicode sequence, as X's current list does.
    assert x_weighted_length("🐦\u200d🔥") == 2


def test_x_extract_urls_spans() -> None:
    text = "See herald.dev/docs, https://t.co/abc?x=1 and mail@example.com."

    assert [u.text for u in x_extract_urls(text)] == ["herald.dev/docs", "https://t.co/abc?x=1"]
