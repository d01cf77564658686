"""X's counting against the official twitter-text library (npm 3.1.0, run by node).

Every comparison asks the library itself (``parseTweet``, default v3 configuration) and
compares every field it answers: weighted length, validity, permillage and the valid and
display ranges. Strings are generated deterministically (seeded) from pieces that stress the
rules: links with and without a scheme, on IDN and punycode hosts, with labels over 63
characters and paths over 4,096; emoji sequences twemoji-parser 11 knows and newer ones it
does not; CJK, Hangul, combining marks, the light punctuation ranges, directional marks, the
invalid characters; and text glued to all of them.

twitter-text's own conformance cases (``conformance/validate.yml``, the v3 sections
WeightedTweetsWithDiscountedEmojiCounterTest and UnicodeDirectionalMarkerCounterTest,
Apache-2.0, Copyright 2011 Twitter, Inc.) run too when that file is at hand: set
``HERALD_TWITTER_TEXT_CONFORMANCE`` to its path, or place it at
``shared/twitter-text/validate.yml`` beside the repository (docs/text-length.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from herald_common.platforms.twitter_text import (
    x_extract_urls,
    x_noncharacters,
    x_parse,
    x_publishable_text,
    x_weighted_length,
)
from tests.peers.node import peer_dir

SAMPLES = 800
SEED = 20261204
CONFORMANCE_SECTIONS = (
    "WeightedTweetsWithDiscountedEmojiCounterTest",
    "UnicodeDirectionalMarkerCounterTest",
)
# parseTweet's field names, and ours.
FIELDS = {
    "weightedLength": "weighted_length",
    "valid": "valid",
    "permillage": "permillage",
    "validRangeStart": "valid_range_start",
    "validRangeEnd": "valid_range_end",
    "displayRangeStart": "display_range_start",
    "displayRangeEnd": "display_range_end",
}

URLS = [
    "https://example.com",
    "http://example.com/path?q=1&r=2",
    "https://sub.example.co.uk/a/b_(c)",
    "example.com",
    "herald.dev/docs",
    "www.wikipedia.org/wiki/Foo_(bar)",
    "https://t.co/abc123XYZ",
    "https://t.co/" + "a" * 41,
    "https://例え.jp/パス",
    "http://localhost:8000",
    "foo.bar",
    "a.co",
    "https://example.com/" + "x" * 60,
    "mail@example.com",
    "no.such-tld.zz",
    "https://xn--bcher-kva.example/",
    "https://xn--bcher-kva.com/",
    "https://xn--zz/",
    # A label of 64 characters: plain text for twitter-text, with or without a scheme.
    "https://" + "a" * 64 + ".com/x",
    "b" * 64 + ".com",
    "https://" + "a" * 63 + ".com/x",
    # CJK labels whose punycode is 63 characters (52 kana) and 64 (53 kana).
    "http://" + "あいうえおかきくけこ" * 5 + "あい.jp",
    "http://" + "あいうえおかきくけこ" * 5 + "あいう.jp",
    "https://example.中国",
    "https://example.invalidtld/x",
    "https://example.com/" + "p" * 4080,
    "http://foobar.پاکستان/",
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
    "1⃣",
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
    "\ufe0f",
    # Newer than twemoji-parser 11: counted by their parts, as twitter-text counts them.
    "🐦\u200d🔥",  # phoenix, Emoji 15.1
    "🫠",  # melting face, Emoji 14.0
    "🩷",  # pink heart, Emoji 15.0
    "🧑\u200d🧑\u200d🧒",  # family: adult, adult, child, Emoji 15.1
    "🇦🇦",  # two regional indicators that are no country
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
    "\u202a",
    "\u2066",
    "\u200f",
]
WORDS = ["hello", "Herald", "post", "@alice", "#tag", "$AAPL", "(", ")", ".", ",", "!", "-", "_"]
INVALID = ["\ufeff", "\ufffe", "\uffff"]
SEPARATORS = [" ", " ", " ", "", "\n", "\t", "  "]


def generated_texts() -> list[str]:
    rng = random.Random(SEED)
    pools = [URLS, EMOJI, SCRIPTS, WORDS, INVALID]
    texts = []
    for _ in range(SAMPLES):
        pieces = []
        for _ in range(rng.randint(1, 40)):
            pool = rng.choices(pools, weights=[2, 3, 3, 3, 0.1])[0]
            pieces.append(rng.choice(pool) + rng.choice(SEPARATORS))
        texts.append("".join(pieces))
    return texts


def twitter_text_parse(texts: list[str]) -> list[dict[str, Any]]:
    folder = peer_dir("twitter-text")
    result = subprocess.run(
        ["node", "parse_tweet.js"],
        cwd=folder,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


def ours(text: str) -> dict[str, Any]:
    parsed = dataclasses.asdict(x_parse(text))
    return {theirs: parsed[mine] for theirs, mine in FIELDS.items()}


def test_parse_agrees_with_twitter_text_on_generated_posts() -> None:
    texts = generated_texts()
    expected = twitter_text_parse(texts)

    disagreements = [
        (text, mine, theirs)
        for text, mine, theirs in zip(texts, map(ours, texts), expected, strict=True)
        if mine != {field: theirs[field] for field in FIELDS}
    ]

    assert len(texts) >= 500
    assert disagreements == []
    # The samples really do span the rules: short and long, over and under the limit,
    # invalid characters, and links twitter-text refuses for a long label.
    lengths = [parsed["weightedLength"] for parsed in expected]
    assert min(lengths) < 30 and max(lengths) > 280
    assert any(not parsed["valid"] and parsed["weightedLength"] <= 280 for parsed in expected)
    assert sum("a" * 64 + ".com" in text for text in texts) > 10


@pytest.mark.parametrize(
    "text",
    [
        # One input for each rule the v3 conformance sections exercise, built here.
        "Hi http://test.co",
        "x" * 300,
        "285 chars- http://www.twitter.com/jack " + "x" * 250,
        "https://www.twitter.com/aloha " * 10,
        "漢" * 160,
        "😷" * 160,
        "the" + "漢" * 160,
        "A\u0301B",
        "Aשּׁ",
        "H🐱☺👨‍👩‍👧‍👦",
        "🙋🏽👨‍🎤",
        "general punctuation: \u2000\u2001\u200a\u200b " + "".join(map(chr, range(0x2010, 0x2038))),
        "Long url with invalid domain labels: https://" + "long" * 500 + ".com/foo https://ok.com",
        "r" * 64 + ".com",
        "漢" * 120 + " http://" + "あいうえおかきくけこ" * 5 + "あいう.jp/",
        "漢" * 120 + " http://" + "あいうえおかきくけこ" * 5 + "あい.jp/",
        "👨‍👩‍👧‍👦" * 140,
        "1⃣",
        "Unicode 10.0 emoji: 🤪; 🧕; 🧕🏾; 🏴󠁧󠁢󠁥󠁮󠁧󠁿",
        "ABC\u202a\uffffABC\ufffe",
        "\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069",
        "",
    ],
)
def test_parse_agrees_with_twitter_text_on_each_conformance_rule(text: str) -> None:
    [expected] = twitter_text_parse([text])

    assert ours(text) == {field: expected[field] for field in FIELDS}


def conformance_file() -> Path | None:
    configured = os.environ.get("HERALD_TWITTER_TEXT_CONFORMANCE")
    if configured:
        return Path(configured)
    beside = Path(__file__).resolve().parents[3] / "shared" / "twitter-text" / "validate.yml"
    return beside if beside.is_file() else None


def test_twitter_text_conformance_v3_sections() -> None:
    path = conformance_file()
    if path is None:
        pytest.skip(
            "twitter-text's conformance/validate.yml is not at hand: set "
            "HERALD_TWITTER_TEXT_CONFORMANCE to its path (see docs/text-length.md)"
        )
    suite = yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
    cases = [case for section in CONFORMANCE_SECTIONS for case in suite[section]]

    failures = [
        case["description"]
        for case in cases
        if ours(case["text"]) != {field: case["expected"][field] for field in FIELDS}
    ]

    assert len(cases) >= 20
    assert failures == []


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
        # A label over 63 characters makes the whole link plain text (8 + 64 + 6).
        ("https://" + "a" * 64 + ".com/x", 78),
        ("https://" + "a" * 63 + ".com/x", 23),
        # So does a label whose punycode is over 63 characters (7 + 53 kana + 3).
        ("http://" + "あいうえおかきくけこ" * 5 + "あいう.jp", 7 + 106 + 3),
        ("http://" + "あいうえおかきくけこ" * 5 + "あい.jp", 23),
        # A domain that starts as punycode must hold an ASCII domain twitter-text knows
        # (8 + 13 + 1 + 2 * 2 + 4 = 30).
        ("https://xn--bcher-kva.例え.jp/", 30),
        ("https://bcher-kva.例え.jp/", 23),
        # A link is text past 4,096 characters, its scheme counted twice (8 + 20 + 4,068).
        ("https://example.com/" + "p" * 4068, 23),
        ("https://example.com/" + "p" * 4069, 4089),
    ],
)
def test_weighted_length_examples(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


def test_emoji_newer_than_twemoji_parser_11_count_by_their_parts() -> None:
    # Phoenix (Emoji 15.1): bird (2) + zero width joiner (1) + fire (2), as twitter-text
    # counts it; no evidence shows X's servers count it as one emoji (docs/text-length.md).
    assert x_weighted_length("🐦\u200d🔥") == 5


def test_invalid_characters_make_a_post_invalid_at_any_length() -> None:
    for character in ("\ufeff", "\ufffe", "\uffff"):
        parsed = x_parse("hello" + character)
        assert parsed.weighted_length == 7
        assert not parsed.valid
        assert parsed.valid_range_end == 4


def test_byte_order_marks_are_removed_and_noncharacters_named_with_their_position() -> None:
    text = "\ufeffHello 👨‍👩‍👧‍👦 \uffffworld\ufffe"

    assert x_publishable_text(text) == "Hello 👨‍👩‍👧‍👦 \uffffworld\ufffe"
    assert x_noncharacters(x_publishable_text(text)) == [("U+FFFF", 9), ("U+FFFE", 15)]
    assert x_noncharacters("no such characters") == []


def test_x_extract_urls_spans() -> None:
    text = "See herald.dev/docs, https://t.co/abc?x=1 and mail@example.com."

    assert [u.text for u in x_extract_urls(text)] == ["herald.dev/docs", "https://t.co/abc?x=1"]
